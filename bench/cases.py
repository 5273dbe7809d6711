"""The benchmark cases of bench/run. Each takes the prepared Setup and the
number of rounds and returns a result dict: "rows" of {name, samples (ms)
or value}, plus notes. Commands of one case run in alternation, round
after round, so that a slow moment of the machine hits all of them."""

import json
import os
import subprocess
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import (ISOLA, PODMAN_LIMITS, REPO, RUNTIME, boot_of_trace, cpu_percent, layout_tar, mappings_pss_kib,
                      private_tmpfs, pss_kib, run, say, summary, timed)
from cri_pod import case_cri


class Setup:
    """isola's store, its VM template directory, podman's private store and
    an OCI bundle, all in the work directory, each with the same busybox
    image."""

    def __init__(self, work, layout, peers_missing):
        self.work = work
        self.layout = layout
        self.store = work / "isola"
        self.peers_missing = peers_missing
        # Templates of the benchmark's own, on tmpfs as in /run: every run
        # measures the templates it made (none left over from another
        # build, none removed under it by someone else), and leaves none.
        # Set in the environment, so every isola command (and the monitors
        # they start) uses it.
        self.templates = private_tmpfs(work / "templates")
        os.environ["ISOLA_TEMPLATE_DIR"] = str(self.templates)
        self.template_keys = {}  # VM shape (run flags) → template key, see ensure_template
        run([ISOLA, "--root", str(self.store), "load", "-q", "-i", str(layout)])
        self.podman_base = work / "podman"
        self.podman_ok = "podman" not in peers_missing and "runc" not in peers_missing
        if self.podman_ok:
            (self.podman_base).mkdir()
            run(self.podman_cmd("runc", "load", "-q", "-i", str(layout_tar(layout, work / "busybox.tar"))))
        self.bundle = work / "bundle"
        self._make_bundle()

    def isola(self, *args):
        return [ISOLA, "--root", str(self.store), *map(str, args)]

    def podman_cmd(self, runtime, *args):
        b = self.podman_base
        rt = "/usr/sbin/runc" if runtime == "runc" else RUNTIME
        return ["podman", "--root", str(b / "root"), "--runroot", str(b / "runroot"), "--tmpdir", str(b / "tmp"),
                "--network-config-dir", str(b / "net"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--runtime", rt, *map(str, args)]

    def podman_run(self, runtime, *args):
        return self.podman_cmd(runtime, "run", "--network", "none", *PODMAN_LIMITS, *args)

    def remove_containers(self):
        """Removes whatever a case left running in isola's store (a case
        that failed half-way): its monitors and VMs would outlive the run."""
        try:
            ids = run(self.isola("ps", "-aq", "--no-trunc"), check=False).stdout.split()
            if ids:
                say(f"removing {len(ids)} containers left behind")
                run(self.isola("rm", "-f", *ids), check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            say(f"could not remove what the cases left in {self.store}: {e}")

    def _make_bundle(self):
        """The busybox image as an OCI bundle: its rootfs copied out of
        isola's store, a config.json from `isola-runtime spec`."""
        self.bundle.mkdir()
        mounted = run(self.isola("image", "mount", "busybox")).stdout.strip()
        try:
            run(["cp", "-a", mounted + "/.", str(self.bundle / "rootfs")])
        finally:
            run(self.isola("image", "unmount", "busybox"), check=False)
        run([RUNTIME, "spec", "--bundle", str(self.bundle)])
        cfg = json.loads((self.bundle / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["true"]
        (self.bundle / "config.json").write_text(json.dumps(cfg, indent=2))


def alternate(commands, rounds, warmup=True):
    """{name: [ms...]}: each command once per round, in order; a command
    that fails is reported with its error and left out of later rounds."""
    return alternate_ms({name: (lambda make: lambda r: timed(make(r)))(make) for name, make in commands.items()},
                        rounds, warmup)


def alternate_ms(measures, rounds, warmup=True):
    """alternate() for measures that time themselves: each is called with
    the round (-1 for the warm-up) and returns ms, or raises RuntimeError."""
    samples = {name: [] for name in measures}
    errors = {}
    if warmup:
        for name, measure in measures.items():
            try:
                measure(-1)
            except (RuntimeError, OSError) as e:  # OSError: a binary being reinstalled
                errors[name] = str(e)
    for r in range(rounds):
        for name, measure in measures.items():
            if name in errors:
                continue
            try:
                samples[name].append(measure(r))
            except (RuntimeError, OSError) as e:  # OSError: a binary being reinstalled
                errors[name] = str(e)
    return samples, errors


def rows_with_ratio(samples, errors, reference):
    ref = summary(samples.get(reference, []))
    rows = []
    for name, s in samples.items():
        st = summary(s)
        row = {"name": name, "samples": s, "stats": st}
        if name in errors:
            row["error"] = errors[name].splitlines()[0][:300]
        if st and ref and name != reference:
            row["ratio_to_isola"] = st["median"] / ref["median"]
        rows.append(row)
    return rows


def case_engine(setup, rounds):
    """`isola run --rm busybox true` against podman with runc, and podman
    with isola-runtime: the whole engine path a user waits for."""
    # --network none on both sides: podman here runs without a network too.
    cmds = {"isola run --rm": lambda r: setup.isola("run", "--rm", "--network", "none", "busybox", "true")}
    if setup.podman_ok:
        cmds["podman run --rm (runc)"] = lambda r: setup.podman_run("runc", "--rm", "busybox", "true")
        cmds["podman run --rm (isola-runtime)"] = lambda r: setup.podman_run("isola", "--rm", "busybox", "true")
    samples, errors = alternate(cmds, rounds)
    return {"title": "Engine level, process isolation: run --rm busybox true",
            "rows": rows_with_ratio(samples, errors, "isola run --rm")}


def case_runtime(setup, rounds):
    """`run` of one prepared bundle by isola-runtime, runc and crun."""
    roots = {name: setup.work / f"root-{name}" for name in ("isola-runtime", "runc", "crun", "crun-nocg")}

    def runtime_cmd(binary, name, extra=()):
        return lambda r: [binary, *extra, "--root", str(roots[name]), "run", "--bundle", str(setup.bundle),
                          f"bench-{name}-{r + 1}"]

    cmds = {"isola-runtime run": runtime_cmd(RUNTIME, "isola-runtime")}
    if "runc" not in setup.peers_missing:
        cmds["runc run"] = runtime_cmd("/usr/sbin/runc", "runc")
    if "crun" not in setup.peers_missing:
        cmds["crun run"] = runtime_cmd("/usr/bin/crun", "crun")
        cmds["crun run (cgroups disabled)"] = runtime_cmd("/usr/bin/crun", "crun-nocg", ["--cgroup-manager=disabled"])
    samples, errors = alternate(cmds, rounds)
    return {"title": "Runtime level: run of a prepared OCI bundle (busybox true)",
            "rows": rows_with_ratio(samples, errors, "isola-runtime run")}


def bare_boot_ms():
    out = run([str(REPO / "bench" / "bare-boot"), "-n", "1"], timeout=300).stdout
    for word in out.split():
        if word.startswith("median_wall_ms="):
            return float(word.split("=")[1])
    raise RuntimeError("bench/bare-boot printed no median_wall_ms")


TEMPLATE_ROW = "isola run --rm --isolation=vm, from a template"
COLD_ROW = "isola run --rm --isolation=vm --vm-boot=cold"
BARE_ROW = "bare QEMU + kernel + init"
# The targets for VM templates.
TEMPLATE_START_TARGET = 0.15  # a clone's `run --rm` against the bare boot
TEMPLATE_PSS_TARGET_MIB = 40  # an idle clone, ten running at once


def ensure_template(setup, *flags):
    """Makes the template for the VM shape of `run --isolation=vm *flags`
    once per run; returns its key. (The template directory is the run's
    own, so a template made by an earlier case is still there; a `build`
    when it is costs a VM start.)"""
    if flags not in setup.template_keys:
        out = run(setup.isola("system", "template", "build", *flags), timeout=300).stdout.split()
        if not out:
            raise RuntimeError("isola system template build printed no key")
        setup.template_keys[flags] = out[0]
    return setup.template_keys[flags]


def template_mib(setup, key):
    """The size of a template on its tmpfs (held once per host)."""
    listed = json.loads(run(setup.isola("system", "template", "ls", "--format", "json")).stdout)
    return next((t["SizeBytes"] / 2**20 for t in listed if t["Key"] == key), None)


def inspect_all(setup, ids):
    return json.loads(run(setup.isola("inspect", *ids)).stdout)


def remove_isola(setup, ids):
    if ids:
        run(setup.isola("rm", "-f", *ids), timeout=600)


def check_boot(setup, want, *flags):
    """Starts one detached VM container and returns its VM section of
    inspect, raising RuntimeError unless it started the way `want` says:
    inspect's own word, which a `run --rm` leaves no container to ask."""
    cid = run(setup.isola("run", "-d", "--isolation=vm", *flags, "busybox", "sleep", "100000")).stdout.strip()
    try:
        vm = inspect_all(setup, [cid])[0]["VM"]
    finally:
        run(setup.isola("rm", "-f", cid), check=False)
    if vm.get("Boot") != want:
        raise RuntimeError(f"a detached VM container started {vm.get('Boot')} ({vm.get('BootReason')}), not {want}")
    return vm


def vm_run_ms(setup, want, *flags, env=None):
    """Wall ms of one `run --rm --isolation=vm busybox true`, which must
    have started the way `want` says. Its ISOLA_TRACE tells a clone from a
    cold boot, so every sample is checked: a template that went missing
    (or a clone that fell back to a cold boot) fails the row instead of
    passing a cold boot off as a clone."""
    trace = setup.work / "vm-run.trace"
    trace.unlink(missing_ok=True)
    ms = timed(setup.isola("run", "--rm", "--isolation=vm", *flags, "busybox", "true"),
               env=dict(os.environ, ISOLA_TRACE=str(trace), **(env or {})))
    got = boot_of_trace(trace)
    if got != want:
        raise RuntimeError(f"the VM started {got or 'in an unknown way'}, not {want}")
    return ms


def rows_against_bare(samples, errors):
    """rows_with_ratio() with the bare boot as the reference."""
    rows = rows_with_ratio(samples, errors, BARE_ROW)
    for row in rows:
        if "ratio_to_isola" in row:
            row["ratio_to_bare"] = row.pop("ratio_to_isola")
    return rows


def clone_note(vm):
    phases = ", ".join(f"{k} {v}" for k, v in vm.get("Phases", {}).items())
    return (f"A detached clone, as inspect saw it: Boot {vm['Boot']}; BootMs {vm.get('BootMs')} (QEMU start to the "
            f"agent's hello: {phases}); StartMs {vm.get('StartMs')} (then the container's create in the guest).")


def case_vm(setup, rounds):
    """VM isolation started from a template (a clone) and booted cold,
    against the bare QEMU boot of a trivial init with the same kernel,
    machine type and accelerator (bench/bare-boot), in alternation."""
    measures = {TEMPLATE_ROW: lambda r: vm_run_ms(setup, "template"),
                COLD_ROW: lambda r: vm_run_ms(setup, "cold", "--vm-boot=cold"),
                BARE_ROW: lambda r: bare_boot_ms()}
    errors, notes, clone = {}, [], None
    try:
        # The template of the default shape (a NIC on the bridge), made
        # before the rounds: this also warms the template path up.
        ensure_template(setup)
        clone = check_boot(setup, "template")
        notes.append(clone_note(clone))
    except RuntimeError as e:
        errors[TEMPLATE_ROW] = str(e)
        del measures[TEMPLATE_ROW]  # its samples would not be clones
    samples, failed = alternate_ms(measures, rounds, warmup=False)
    samples = {name: samples.get(name, []) for name in (TEMPLATE_ROW, COLD_ROW, BARE_ROW)}
    rows = rows_against_bare(samples, {**errors, **failed})
    for row, boot in zip(rows, ("template", "cold")):
        if row["samples"]:
            row["boot"] = boot  # every sample was checked by its trace
    notes.insert(0, f"Target: from a template ≤ {TEMPLATE_START_TARGET}× the bare boot. Each sample's trace "
                    "was checked: template rows are clones, cold rows cold boots.")
    return {"title": "VM isolation: run --rm --isolation=vm busybox true, from a template and cold, vs the bare boot",
            "rows": rows, "notes": notes, "clone_check": clone}


def start_many(make_cmd, n, parallel=8):
    """Starts n detached containers, `parallel` at a time; returns the wall
    ms until all are running, the IDs of those that started and the
    errors of those that did not (so that the caller removes what did)."""
    def start(i):
        try:
            return run(make_cmd(i), timeout=600).stdout.strip(), None
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:  # OSError: the binary is being reinstalled
            return None, str(e).splitlines()[0][:300]

    t0 = time.monotonic_ns()
    with ThreadPoolExecutor(parallel) as pool:
        started = list(pool.map(start, range(n)))
    ms = (time.monotonic_ns() - t0) / 1e6
    return ms, [cid for cid, _ in started if cid], [err for _, err in started if err]


def mean(values):
    return sum(values) / len(values)


def add_error(row, error):
    row["error"] = f"{row['error']}; {error}" if row.get("error") else error


def density_row(name, ms, ids, errors, what):
    row = {"name": name, "all_running_ms": ms, "count": len(ids), "what": what}
    if errors:
        add_error(row, f"{len(errors)} did not start: {errors[0]}")
    return row


def process_density(setup, n):
    ms, ids, errors = start_many(lambda i: setup.isola("run", "-d", "busybox", "sleep", "100000"), n)
    try:
        row = density_row(f"isola, {n} process containers", ms, ids, errors, "isola-monitor PSS")
        if ids:
            row["per_container_kib"] = mean([pss_kib(c["State"]["MonitorPid"]) for c in inspect_all(setup, ids)])
        return row
    finally:
        remove_isola(setup, ids)


def podman_density(setup, n):
    ms, ids, errors = start_many(lambda i: setup.podman_run("runc", "-d", "busybox", "sleep", "100000"), n)
    try:
        row = density_row(f"podman + runc, {n} containers", ms, ids, errors, "conmon PSS")
        conmons = [int(p) for p in run(["pgrep", "-f", f"conmon.*{setup.podman_base}"], check=False).stdout.split()]
        if conmons:
            row["per_container_kib"] = mean([pss_kib(p) for p in conmons])
        return row
    finally:
        if ids:
            run(setup.podman_cmd("runc", "rm", "-f", "-t", "0", *ids), timeout=600)


# 8 MiB of data a guest writes and keeps (tmpfs): pages a clone shared
# with its template become its own. Random, not zeros, as real data is.
VM_WORK = "dd if=/dev/urandom of=/dev/shm/bench bs=1M count=8 2>/dev/null"
# One VM start per CPU at a time: under TCG a start is mostly CPU.
VM_PARALLEL = max(2, os.cpu_count() or 2)


def vm_pss_kib(container):
    """What a VM container costs the host: its monitor and its VM worker."""
    return pss_kib(container["State"]["MonitorPid"]) + pss_kib(container["VM"]["WorkerPid"])


def measure_vms(setup, row, containers):
    """Sets the row's PSS per VM container and, for clones, how much of it
    is the template's RAM and how much of that the guest has copied (by
    writing) since: what sharing saves, and what a guest's writes take
    back. Returns the PSS of each container."""
    each = [vm_pss_kib(c) for c in containers]
    row["per_container_kib"] = mean(each)
    ram = [mappings_pss_kib(c["VM"]["WorkerPid"], setup.templates) for c in containers]
    if any(pss for pss, _ in ram):
        row["template_ram_kib"] = mean([pss for pss, _ in ram])
        row["copied_kib"] = mean([copied for _, copied in ram])
    return each


def boots_as(row, containers, want):
    """Records how each VM started; True if all started as `want`. Any
    that did not (a clone row that got cold boots) is an error of the row:
    its memory would not be what the row says."""
    row["boots"] = dict(Counter(c["VM"].get("Boot") for c in containers))
    wrong = [c["VM"] for c in containers if c["VM"].get("Boot") != want]
    if wrong:
        add_error(row, f"{len(wrong)} of {len(containers)} started {wrong[0].get('Boot')} "
                       f"({wrong[0].get('BootReason')}), not {want}")
    return not wrong


def after_work_row(setup, idle_row, containers, idle_kib):
    """PSS of the same VM containers once each guest wrote 8 MiB."""
    failed = [r for r in (run(setup.isola("exec", c["Id"], "sh", "-c", VM_WORK), check=False, timeout=120)
                          for c in containers) if r.returncode != 0]
    row = {"name": f"{idle_row['name']}, after work", "count": len(containers), "boots": idle_row.get("boots"),
           "what": "the same, after `exec` wrote 8 MiB to the guest's /dev/shm"}
    row["growth_kib"] = mean(measure_vms(setup, row, containers)) - mean(idle_kib)
    if failed:
        add_error(row, f"{len(failed)} execs failed: {failed[0].stderr.strip()[-200:]}")
    return row


def vm_density(setup, count, want, after_work=False):
    """`count` detached VM containers running at once, started from a
    template or booted cold: time until all run and PSS each when idle;
    with after_work, PSS again once each guest has written 8 MiB."""
    flags, how = (["--vm-boot=cold"], "booted cold") if want == "cold" else ([], "from a template")
    ms, ids, errors = start_many(
        lambda i: setup.isola("run", "-d", "--isolation=vm", *flags, "busybox", "sleep", "100000"), count, VM_PARALLEL)
    try:
        row = density_row(f"isola, {count} VM container{'s' * (count != 1)} {how}", ms, ids, errors,
                          "isola-monitor + VM worker PSS, idle")
        if not ids:
            return [row]
        containers = inspect_all(setup, ids)
        if not boots_as(row, containers, want):
            return [row]
        # What idle guests cost in CPU (under TCG they tick in emulation:
        # enough of them fill the host); also lets the last ones settle.
        row["idle_cpu_percent"] = cpu_percent([c["VM"]["WorkerPid"] for c in containers], 1)
        idle = measure_vms(setup, row, containers)
        return [row, after_work_row(setup, row, containers, idle)] if after_work else [row]
    finally:
        remove_isola(setup, ids)


def case_density(setup, n, quick=False):
    """N detached process containers (isola's, podman's) and N VM
    containers from a template, ten of them for the memory target, a few
    booted cold: time until all run, and the host memory each one costs
    beyond its own processes (isola's monitor and VM worker, podman's
    conmon). --quick keeps it to 2 clones and 1 cold boot (a cold boot
    costs seconds of CPU under TCG)."""
    rows = [process_density(setup, n)]
    if setup.podman_ok:
        rows.append(podman_density(setup, n))
    notes = [f"Target: a VM container from a template ≤ {TEMPLATE_PSS_TARGET_MIB} MiB idle, ten running at once."]
    try:
        key = ensure_template(setup)  # so that every VM below is a clone of one template
        size = template_mib(setup, key)
        if size is not None:
            notes.append(f"The template the clones map is {size:.0f} MiB on tmpfs, held once per host; a clone's "
                         "PSS counts its share of the template pages it maps, not the rest of the file.")
    except RuntimeError as e:
        notes.append(f"No template: {e}")
    counts = [2] if quick else sorted({min(10, n), n})
    for i, count in enumerate(counts):
        rows += vm_density(setup, count, "template", after_work=i == 0)
    rows += vm_density(setup, 1 if quick else 3, "cold", after_work=True)
    return {"title": "Density: start N detached, memory per container", "density": rows, "notes": notes}


CPU_LOOP = "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done"
SYSCALL_LOOP = "busybox dd if=/dev/zero of=/dev/null bs=1 count=600000 2>/dev/null"


def case_steady(setup, rounds):
    """A CPU-bound and a syscall-heavy loop on the host, in a process
    container and in a VM container (exec into a running one); the time of
    `true` the same way is subtracted, leaving the loop's own cost."""
    p = run(setup.isola("run", "-d", "busybox", "sleep", "100000")).stdout.strip()
    v = run(setup.isola("run", "-d", "--isolation=vm", "busybox", "sleep", "100000")).stdout.strip()
    try:
        where = {"host": lambda s: ["busybox", "sh", "-c", s],
                 "process": lambda s: setup.isola("exec", p, "sh", "-c", s),
                 "vm": lambda s: setup.isola("exec", v, "sh", "-c", s)}
        rows = []
        for label, loop in (("CPU loop", CPU_LOOP), ("syscall loop", SYSCALL_LOOP)):
            cmds = {}
            for w, make in where.items():
                cmds[f"{w}: {label}"] = (lambda m, l: lambda r: m(l))(make, loop)
                cmds[f"{w}: true"] = (lambda m: lambda r: m("true"))(make)
            samples, errors = alternate(cmds, rounds)
            host = None
            for w in where:
                net = [a - b for a, b in zip(samples[f"{w}: {label}"], samples[f"{w}: true"])]
                st = summary(net)
                host = st["median"] if w == "host" else host
                rows.append({"name": f"{label}, {w}", "samples": net, "stats": st,
                             "ratio_to_host": st["median"] / host if host else None,
                             "error": errors.get(f"{w}: {label}")})
        return {"title": "Steady state: the loop's own time (exec of the loop minus exec of true)", "rows": rows}
    finally:
        run(setup.isola("rm", "-f", p, v), check=False)


def trace_runs(setup, args, rounds):
    """Median duration of each phase of isola's start path (ISOLA_TRACE)."""
    trace = setup.work / "trace"
    per_phase = {}
    order = []
    for _ in range(rounds):
        trace.unlink(missing_ok=True)
        env = dict(os.environ, ISOLA_TRACE=str(trace))
        subprocess.run(setup.isola(*args), env=env, capture_output=True, timeout=300, check=True)
        events = sorted((int(t), phase) for t, _, phase in
                        (line.split(" ", 2) for line in trace.read_text().splitlines()))
        for (t0, a), (t1, b) in zip(events, events[1:]):
            key = f"{a} → {b}"
            if key not in per_phase:
                order.append(key)
            per_phase.setdefault(key, []).append((t1 - t0) / 1e6)
        per_phase.setdefault("total", []).append((events[-1][0] - events[0][0]) / 1e6)
    return [{"phase": k, "median_ms": summary(per_phase[k])["median"]} for k in order + ["total"]]


def case_network(setup, rounds):
    """The cost of a bridge network at start: `run --rm busybox true` with
    --network none, on the default bridge (a veth pair, an address, a
    route), and with a published port (an nftables table more)."""
    cmds = {"--network none": lambda r: setup.isola("run", "--rm", "--network", "none", "busybox", "true"),
            "bridge (default)": lambda r: setup.isola("run", "--rm", "busybox", "true"),
            "bridge + -p": lambda r: setup.isola("run", "--rm", "-p", f"{20000 + r}:80", "busybox", "true"),
            "vm, --network none": lambda r: setup.isola("run", "--rm", "--isolation=vm", "--network", "none",
                                                          "busybox", "true"),
            "vm, bridge (default)": lambda r: setup.isola("run", "--rm", "--isolation=vm", "busybox", "true")}
    samples, errors = alternate(cmds, rounds)
    rows = rows_with_ratio({k: v for k, v in samples.items() if not k.startswith("vm")},
                           {k: v for k, v in errors.items() if not k.startswith("vm")}, "--network none")
    rows += rows_with_ratio({k: v for k, v in samples.items() if k.startswith("vm")},
                            {k: v for k, v in errors.items() if k.startswith("vm")}, "vm, --network none")
    return {"title": "Networks: start time with a bridge network against --network none", "rows": rows}


def case_pull(setup, rounds):
    """`isola pull` of a 4-layer image (about 24 MB compressed) from Debian's
    docker-registry on 127.0.0.1 into an empty store, against `podman pull`
    into an empty store and `skopeo copy` to an OCI directory (which fetches
    but does not unpack). Every round starts from empty stores."""
    import shutil
    import sys
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import imagegen as ig
    from registries import Registry, push_layout, write_layout
    layers = [ig.Layer([ig.File(f"data/{i}.bin", os.urandom(6 << 20))]) for i in range(4)]
    image = ig.Image(layers, config={"Cmd": ["true"]})
    write_layout(ig.oci_layout([image]), setup.work / "pull-src")
    reg = Registry(setup.work / "registry")
    try:
        name = f"{reg.host}/bench/data:v1"
        push_layout(setup.work / "pull-src", name)
        fresh = setup.work / "pull-rounds"

        def clean(sub):
            d = fresh / sub
            shutil.rmtree(d, ignore_errors=True)
            return d

        def podman(r):
            d = Path("/tmp/isola-bench-pp") / str(r)  # podman wants a short runroot
            shutil.rmtree(d, ignore_errors=True)
            return ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"),
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                    "pull", "-q", "--tls-verify=false", name]
        cmds = {"isola pull": lambda r: [ISOLA, "--root", str(clean(f"isola-{r}")), "pull", "-q", name],
                "podman pull": podman,
                "skopeo copy (no unpack)": lambda r: ["skopeo", "--insecure-policy", "copy", "-q",
                                                      "--src-tls-verify=false", f"docker://{name}",
                                                      f"oci:{clean(f'skopeo-{r}')}"]}
        samples, errors = alternate(cmds, rounds)
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree("/tmp/isola-bench-pp", ignore_errors=True)
    finally:
        reg.stop()
    return {"title": "Pull of a 4-layer, 24 MB image from a registry on 127.0.0.1 into an empty store",
            "rows": rows_with_ratio(samples, errors, "isola pull")}


JAILED_ROW = "VM clone, jailed worker"
UNJAILED_ROW = "VM clone, ISOLA_VM_JAIL=off"
JAIL_TARGET_MS = 10  # the bounds on what the jail may cost a VM
JAIL_TARGET_MIB = 2
NO_JAIL = {"ISOLA_VM_JAIL": "off"}


def idle_clone_pss_kib(setup, count, env):
    """Mean PSS (monitor + worker) of `count` idle detached clones."""
    ids = []
    try:
        for _ in range(count):
            ids.append(run(setup.isola("run", "-d", "--isolation=vm", "busybox", "sleep", "100000"),
                           env=dict(os.environ, **env)).stdout.strip())
        time.sleep(2)  # past the start's transient allocations
        containers = inspect_all(setup, ids)
        if not boots_as({}, containers, "template"):
            raise RuntimeError("a VM did not start as a clone")
        return mean([vm_pss_kib(c) for c in containers])
    finally:
        remove_isola(setup, ids)


def case_jail(setup, rounds):
    """What the VM worker's jail costs: `run --rm --isolation=vm busybox true`
    from a template with the jail and without it (ISOLA_VM_JAIL=off, for
    this measurement only), in alternation; and the PSS of idle clones."""
    ensure_template(setup)
    spawn = {JAILED_ROW: [], UNJAILED_ROW: []}

    def measure(row, env):
        ms = vm_run_ms(setup, "template", env=env)
        # The jail's own work: from QEMU's spawn to its exec in the jail.
        stamps = {}
        for line in (setup.work / "vm-run.trace").read_text().splitlines():
            ns, _, phase = line.split(" ", 2)
            stamps[phase] = int(ns)
        if "vm: starting QEMU" in stamps and "vm: QEMU exec'd in its jail" in stamps:
            spawn[row].append((stamps["vm: QEMU exec'd in its jail"] - stamps["vm: starting QEMU"]) / 1e6)
        return ms

    measures = {JAILED_ROW: lambda r: measure(JAILED_ROW, {}), UNJAILED_ROW: lambda r: measure(UNJAILED_ROW, NO_JAIL)}
    samples, failed = alternate_ms(measures, rounds)
    rows = rows_with_ratio(samples, failed, UNJAILED_ROW)
    count = 1 if rounds <= 1 else 3  # --quick: one of each
    pss = {JAILED_ROW: idle_clone_pss_kib(setup, count, {}), UNJAILED_ROW: idle_clone_pss_kib(setup, count, NO_JAIL)}
    for row in rows:
        row["per_container_kib"] = pss.get(row["name"])
        if spawn[row["name"]]:
            row["spawn_ms"] = statistics.median(spawn[row["name"]])
    cost_ms = statistics.median(samples[JAILED_ROW]) - statistics.median(samples[UNJAILED_ROW]) \
        if samples.get(JAILED_ROW) and samples.get(UNJAILED_ROW) else None
    cost_mib = (pss[JAILED_ROW] - pss[UNJAILED_ROW]) / 1024
    notes = [f"Targets: the jail costs under {JAIL_TARGET_MS} ms and {JAIL_TARGET_MIB} MiB per VM.",
             f"Measured: {cost_ms:+.1f} ms at start (medians), {cost_mib:+.2f} MiB PSS per idle clone "
             f"(mean of {count} each)." if cost_ms is not None else "Measured: no start samples."]
    if spawn[JAILED_ROW] and spawn[UNJAILED_ROW]:
        notes.append(f"QEMU's spawn to its exec (traced; the jail's own work is in it): median "
                     f"{statistics.median(spawn[JAILED_ROW]):.1f} ms jailed, "
                     f"{statistics.median(spawn[UNJAILED_ROW]):.1f} ms without the jail.")
    return {"title": "The VM worker's jail: a clone's start and memory with and without it", "rows": rows,
            "notes": notes}


def case_breakdown(setup, rounds):
    # VM starts are clones, as a user's are: the template is made first so
    # that no round is the cold boot that makes it.
    ensure_template(setup)
    return {"title": "Where isola's start time goes (median per phase)",
            "breakdown": {"process": trace_runs(setup, ["run", "--rm", "busybox", "true"], rounds),
                          "vm": trace_runs(setup, ["run", "--rm", "--isolation=vm", "busybox", "true"], rounds)}}


CASES = {"engine": case_engine, "runtime": case_runtime, "vm": case_vm, "jail": case_jail, "network": case_network,
         "pull": case_pull, "steady": case_steady, "breakdown": case_breakdown, "cri": case_cri}
