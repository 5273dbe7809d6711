"""The benchmark cases of bench/run. Each takes the prepared Setup and the
number of rounds and returns a result dict: "rows" of {name, samples (ms)
or value}, plus notes. Commands of one case run in alternation, round
after round, so that a slow moment of the machine hits all of them."""

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import (ISOLA, PODMAN_LIMITS, REPO, RUNTIME, layout_tar, pss_kib, run, say, summary, timed)


class Setup:
    """isola's store, podman's private store and an OCI bundle, all in the
    work directory, each with the same busybox image."""

    def __init__(self, work, layout, peers_missing):
        self.work = work
        self.store = work / "isola"
        self.peers_missing = peers_missing
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
    samples = {name: [] for name in commands}
    errors = {}
    if warmup:
        for name, make in commands.items():
            try:
                timed(make(-1))
            except RuntimeError as e:
                errors[name] = str(e)
    for r in range(rounds):
        for name, make in commands.items():
            if name in errors:
                continue
            try:
                samples[name].append(timed(make(r)))
            except RuntimeError as e:
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


def case_vm(setup, rounds):
    """VM isolation against the bare QEMU boot of a trivial init with the
    same kernel, machine type and accelerator (bench/bare-boot)."""
    samples = {"isola run --rm --isolation=vm": [], "bare QEMU + kernel + init": []}
    timed(setup.isola("run", "--rm", "--isolation=vm", "busybox", "true"))  # warm-up
    for _ in range(rounds):
        samples["isola run --rm --isolation=vm"].append(
            timed(setup.isola("run", "--rm", "--isolation=vm", "busybox", "true")))
        samples["bare QEMU + kernel + init"].append(bare_boot_ms())
    rows = rows_with_ratio(samples, {}, "isola run --rm --isolation=vm")
    ref = summary(samples["bare QEMU + kernel + init"])["median"]
    rows[0]["ratio_to_bare"] = summary(samples["isola run --rm --isolation=vm"])["median"] / ref
    return {"title": "VM isolation: run --rm --isolation=vm busybox true vs the bare boot", "rows": rows}


def start_many(make_cmd, n, parallel=8):
    """Starts n detached containers, `parallel` at a time; returns the wall
    ms until all are running and their IDs."""
    t0 = time.monotonic_ns()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda i: run(make_cmd(i), timeout=600), range(n)))
    return (time.monotonic_ns() - t0) / 1e6, [r.stdout.strip() for r in results]


def isola_pids(setup, ids):
    info = json.loads(run(setup.isola("inspect", *ids)).stdout)
    return [(c["State"]["MonitorPid"], (c.get("VM") or {}).get("WorkerPid", 0)) for c in info]


def case_density(setup, n):
    """N detached process-isolated containers (and N/10 VM-isolated ones):
    time until all run, and the host memory each one costs beyond its own
    process: isola's monitor (and the VM worker), podman's conmon."""
    rows = []
    ms, ids = start_many(lambda i: setup.isola("run", "-d", "busybox", "sleep", "100000"), n)
    monitors = [pss_kib(m) for m, _ in isola_pids(setup, ids)]
    rows.append({"name": f"isola, {n} process containers", "all_running_ms": ms,
                 "per_container_kib": sum(monitors) / len(monitors), "what": "isola-monitor PSS"})
    run(setup.isola("rm", "-f", *ids), timeout=600)
    if setup.podman_ok:
        ms, ids = start_many(lambda i: setup.podman_run("runc", "-d", "busybox", "sleep", "100000"), n)
        conmons = [int(p) for p in run(["pgrep", "-f", f"conmon.*{setup.podman_base}"], check=False).stdout.split()]
        pss = [pss_kib(p) for p in conmons]
        rows.append({"name": f"podman + runc, {n} containers", "all_running_ms": ms,
                     "per_container_kib": sum(pss) / max(len(pss), 1), "what": "conmon PSS"})
        run(setup.podman_cmd("runc", "rm", "-f", "-t", "0", *ids), timeout=600)
    nv = max(1, n // 10)
    ms, ids = start_many(lambda i: setup.isola("run", "-d", "--isolation=vm", "busybox", "sleep", "100000"), nv, 2)
    time.sleep(1)
    pairs = isola_pids(setup, ids)
    per = [pss_kib(m) + pss_kib(w) for m, w in pairs]
    rows.append({"name": f"isola, {nv} VM containers", "all_running_ms": ms,
                 "per_container_kib": sum(per) / len(per), "what": "isola-monitor + VM worker PSS"})
    run(setup.isola("rm", "-f", *ids), timeout=600)
    return {"title": "Density: start N detached, memory per container", "density": rows}


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


def case_breakdown(setup, rounds):
    return {"title": "Where isola's start time goes (median per phase)",
            "breakdown": {"process": trace_runs(setup, ["run", "--rm", "busybox", "true"], rounds),
                          "vm": trace_runs(setup, ["run", "--rm", "--isolation=vm", "busybox", "true"], rounds)}}


CASES = {"engine": case_engine, "runtime": case_runtime, "vm": case_vm, "network": case_network, "pull": case_pull,
         "steady": case_steady, "breakdown": case_breakdown}
