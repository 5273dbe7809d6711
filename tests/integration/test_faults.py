"""Faults: isola's processes SIGKILLed at chosen steps of create, start,
stop and rm (the CLI, the monitor, the VM worker), a simulated unclean
restart, and full disks while an image loads and while a container writes.

After each fault, what a user sees must be the truth and the usual commands
must clean up:

- `isola ps -a` shows no container running whose processes are gone, and
  none exited whose processes still run;
- `isola rm -f` or `isola container prune` removes every container, and
  then nothing is left: no mount under the store, no cgroup, no process of
  the store, no /run/isola/<id>, nothing in the store's tmp/;
- images are intact: listed, inspectable, a container runs from them, and a
  half-loaded image is never listed;
- a failure says what went wrong ("No space left on device").

Steps are chosen with isola's trace points (faultkit.TraceTap): the process
is killed the moment it reports reaching the step.
"""

import os
import subprocess
import threading
import time

import pytest

import imagegen
from containers import (IMAGE, TIMEOUT, Box, box, busybox_layer, cgroup_dirs, comm,  # noqa: F401
                        describe, force_clean_cgroups, pid_alive, wait_for)
from faultkit import (assert_clean, assert_image_usable, assert_ps_truthful, cgroup_procs, ids_on_disk,  # noqa: F401
                      kill_quietly, processes_of_store, small_fs, tap, vm_available, wait_child)

VM = "--isolation=vm"
BOOT = 240  # seconds a command may take while a VM boots under TCG
SLEEPER = ["sh", "-c", "echo started; exec sleep 1000"]
NO_SPACE = "No space left on device"

needs_vm = pytest.mark.skipif(not vm_available(), reason="VM isolation is not available here")


# ---------------------------------------------------------------------------
# Helpers


class Cli:
    """`isola ARGS` started in the background with the trace tap in its
    environment (its monitor inherits it)."""

    def __init__(self, box, tap, *args):
        self.args = args
        self.proc = subprocess.Popen(box.cmd(*args), env=tap.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def pid(self):
        return self.proc.pid

    def finish(self, timeout=TIMEOUT):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"isola {' '.join(map(str, self.args))} hung (> {timeout}s)\nstdout: {out}\nstderr: {err}",
                        pytrace=False)
        self.returncode, self.stdout, self.stderr = self.proc.returncode, out, err
        return self

    def describe(self):
        return f"isola {' '.join(map(str, self.args))}: {describe(self)}"


def later(holder):
    """A PID for TraceTap.kill_at known only once the command runs."""
    def get():
        deadline = time.monotonic() + 5
        while "cli" not in holder and time.monotonic() < deadline:
            time.sleep(0.001)
        return holder["cli"].pid
    return get


def every_id(box):
    box.note_ids()
    return set(box.created) | set(ids_on_disk(box))


def assert_engine_error(cli, *needles):
    """A failure the engine reports: exit 125, one `isola: ...` line naming the problem."""
    assert cli.returncode == 125, cli.describe()
    assert cli.stderr.startswith("isola: "), cli.describe()
    for n in needles:
        assert n in cli.stderr, f"{n!r} not in the error message: {cli.describe()}"


def recover(box, how):
    """What a user does after a crash: look (ps -a must be truthful), then
    remove everything with `rm -f`, or stop what runs and `container prune`,
    and run a container from the image, which must still work. Afterwards
    nothing may be left (what a crash left unlisted, a half-created or
    half-removed directory, goes with the next create, rm or prune)."""
    ids = every_id(box)
    assert_ps_truthful(box)
    if how == "rm":
        for cid in box.ids():
            res = box("rm", "-f", cid)
            assert res.returncode == 0, f"rm -f {cid[:12]}: {describe(res)}"
    else:
        running = box.ids(all=False)
        if running:
            box.ok("stop", "-t", "1", *running)
        res = box("container", "prune", "-f")
        assert res.returncode == 0, f"container prune: {describe(res)}"
    ids |= every_id(box)
    assert_image_usable(box)
    assert_clean(box, ids)


def monitors_of(box):
    return [p for p in processes_of_store(box.root) if comm(p) == "isola-monitor"]


def vm_workers_of(box, cid):
    return [p for p in processes_of_store(box.root) if comm(p) == "isola-vm-" + cid[:6]]


# ---------------------------------------------------------------------------
# The CLI killed


RUN_STEPS = ["engine: image resolved", "engine: rootfs mounted", "engine: launching the monitor",
             "engine: monitor ready", "running"]


@pytest.mark.parametrize("step", RUN_STEPS)
def test_cli_killed_during_attached_run(tap, box, step):
    holder = {}
    if step == "running":
        fired = tap.kill_at("monitor: container exec'd", pid=later(holder))
    else:
        fired = tap.kill_at(step)
    cli = holder["cli"] = Cli(box, tap, "run", "--name", "victim", IMAGE, *SLEEPER)
    cli.finish()
    assert fired.wait(10), f"step {step!r} never reported: {tap.phases()}"
    assert cli.returncode == -9, cli.describe()
    if step == "running":
        # The monitor outlives its CLI: the container runs on, and says so.
        entry = wait_for(lambda: box.ps_entry(box.ids()[0]) if box.ids() else None, what="the container listed")
        assert entry["State"] == "running", entry
        wait_for(lambda: "started" in box.ok("logs", "victim"), what="the output in the log")
    recover(box, "rm" if RUN_STEPS.index(step) % 2 == 0 else "prune")


def test_start_again_after_the_cli_died_before_attaching(tap, box):
    """The CLI of an attached run dies after starting the monitor, which
    waits for it to attach. `isola start` then starts the container once:
    one monitor, one process, its output once."""
    holder = {}
    fired = tap.kill_at("monitor: started", pid=later(holder))  # the CLI waits for the monitor's report
    cli = holder["cli"] = Cli(box, tap, "run", "--name", "victim", IMAGE, *SLEEPER)
    cli.finish()
    tap.wait_phase("monitor: container ready")
    assert fired.wait(10) and cli.returncode == -9, cli.describe()
    assert box.ps_entry(box.ids()[0])["State"] == "created"
    res = box("start", "victim")
    assert res.returncode == 0, describe(res)
    st = box.wait_status("victim", "running")
    wait_for(lambda: "started" in box.ok("logs", "victim"), what="the output in the log")
    time.sleep(0.5)
    assert monitors_of(box) == [st["MonitorPid"]], \
        f"monitors of the store: {monitors_of(box)}, inspect says {st['MonitorPid']}"
    cid = box.ids()[0]
    sleeps = [p for p in cgroup_procs(cid) if comm(p) == "sleep"]
    assert len(sleeps) == 1, f"processes running the command: {sleeps}"
    assert box.ok("logs", "victim").count("started") == 1
    res = box("exec", "victim", "echo", "in")
    assert res.returncode == 0 and res.stdout == "in\n", describe(res)
    recover(box, "rm")


@pytest.mark.parametrize("step", ["engine: image resolved", "engine: rootfs mounted"])
def test_cli_killed_during_create(tap, box, step):
    fired = tap.kill_at(step)
    cli = Cli(box, tap, "create", "--name", "victim", IMAGE, "sh", "-c", "echo hi; exit 5").finish()
    assert fired.wait(10) and cli.returncode == -9, cli.describe()
    assert_ps_truthful(box)
    if box.ids():
        # Whatever the crash left, starting it either works or says why: never a hang.
        res = box("start", "-a", "victim")
        if res.returncode != 5:
            assert res.returncode == 125 and res.stderr.startswith("isola: "), describe(res)
            st = box.state("victim")
            assert st["Status"] == "exited" and st["Error"], st
        else:
            assert res.stdout == "hi\n", describe(res)
    recover(box, "prune")


@pytest.mark.parametrize("step", ["engine: launching the monitor", "monitor: spawning the container",
                                  "monitor: container exec'd"])
def test_cli_killed_during_start(tap, box, step):
    cid = box.create("--name", "victim", IMAGE, *SLEEPER)
    holder = {}
    fired = tap.kill_at(step, pid=later(holder))
    cli = holder["cli"] = Cli(box, tap, "start", "victim")
    cli.finish()
    assert fired.wait(10), tap.phases()
    assert cli.returncode in (-9, 0), cli.describe()
    assert_ps_truthful(box)
    if box.state(cid)["Status"] == "running":
        res = box("exec", cid, "echo", "in")
        assert res.returncode == 0 and res.stdout == "in\n", describe(res)
    recover(box, "rm")


def test_cli_killed_during_stop(box):
    """`stop -t 30` of a PID 1 that ignores SIGTERM, killed while it waits:
    the container still runs, and says so; a second stop stops it."""
    cid = box.run_d("--name", "victim", IMAGE, "sleep", "1000")
    proc = subprocess.Popen(box.cmd("stop", "-t", "30", cid), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    proc.kill()
    proc.wait(10)
    st = box.state(cid)
    assert st["Status"] == "running" and pid_alive(st["Pid"]) and comm(st["Pid"]) == "sleep", st
    assert_ps_truthful(box)
    box.ok("stop", "-t", "1", cid)
    st = box.state(cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 137, st
    recover(box, "prune")


def test_monitor_killed_during_stop(box):
    """The monitor dies while `stop` waits for the container: stop returns
    at once (not after its timeout) and the container shows exited."""
    cid = box.run_d("--name", "victim", IMAGE, "sleep", "1000")
    st = box.state(cid)
    proc = subprocess.Popen(box.cmd("stop", "-t", "30", cid), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    kill_quietly(st["MonitorPid"])
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=TIMEOUT)
    assert time.monotonic() - t0 < 15, "stop waited for its timeout after the monitor died"
    assert proc.returncode == 0, f"stop: exit {proc.returncode}\n{out}\n{err}"
    assert not pid_alive(st["Pid"])
    assert box.state(cid)["Status"] == "exited"
    recover(box, "rm")


MANY_FILES = "mkdir /many && cd /many && for i in $(seq 3000); do echo $i > f$i; done && echo ready; exec sleep 1000"


@pytest.mark.parametrize("step", ["waiting for the monitor", "removing the directory", "monitor killed"])
def test_cli_killed_during_rm(tap, box, step):
    """`rm -f` killed while it waits for the monitor to record the exit, and
    while it deletes the container's files: the container is either still
    listed (and rm -f removes it) or gone, and its half-deleted files do
    not stay behind. And the monitor killed while rm -f waits for it: rm -f
    finishes the job."""
    # Many files in the container's layer make its removal take a while.
    script = MANY_FILES if step == "removing the directory" else "echo ready; exec sleep 1000"
    res = subprocess.run(box.cmd("run", "-d", "--name", "victim", IMAGE, "sh", "-c", script), env=tap.env(),
                         capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, describe(res)
    cid = res.stdout.strip()
    box.created.add(cid)
    wait_for(lambda: "ready" in box.ok("logs", cid), timeout=60, what="the files to be written")
    holder = {}
    trash = box.root / "tmp" / f"container-{cid}"
    caught = {}
    if step == "waiting for the monitor":
        fired = tap.kill_at("monitor: container exited", pid=later(holder))
    elif step == "monitor killed":  # rm -f itself is not killed: it must finish the job
        fired = tap.kill_at("monitor: container exited")
    else:
        fired = threading.Event()

        def watch():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "cli" not in holder:
                time.sleep(0.001)
            while time.monotonic() < deadline and holder["cli"].proc.poll() is None:
                if trash.exists():
                    kill_quietly(holder["cli"].pid)
                    caught["yes"] = True
                    break
            fired.set()
        threading.Thread(target=watch, daemon=True).start()
    cli = holder["cli"] = Cli(box, tap, "rm", "-f", cid)
    cli.finish()
    assert fired.wait(30)
    if step == "removing the directory" and not caught:
        assert cli.returncode == 0, cli.describe()
        pytest.skip("the removal finished before it could be interrupted")
    assert cli.returncode in ((0,) if step == "monitor killed" else (-9, 0)), cli.describe()
    if step == "monitor killed":
        assert box.ids() == [], "rm -f succeeded but the container is still listed"
    assert_ps_truthful(box)
    # The user removes what is listed, or nothing is listed; then prunes.
    for left in box.ids():
        box.ok("rm", "-f", left)
    box.ok("container", "prune", "-f")
    assert_clean(box, every_id(box) | {cid})
    assert_image_usable(box)


# ---------------------------------------------------------------------------
# The monitor killed


START_STEPS = ["monitor: started", "spawn: cgroup created", "spawn: cloned", "child: namespaces made",
               "monitor: container exec'd"]


@pytest.mark.parametrize("step", START_STEPS)
def test_monitor_killed_during_start(tap, box, step):
    monitor = {}
    tap.on("monitor: started", lambda pid: monitor.setdefault("pid", pid))
    fired = tap.kill_at(step, pid=lambda: monitor.get("pid"))
    cli = Cli(box, tap, "run", "-d", "--name", "victim", IMAGE, *SLEEPER).finish()
    assert fired.wait(10), tap.phases()
    if cli.returncode != 0:
        assert_engine_error(cli, "monitor")
        st = box.state("victim")
        assert st["Status"] == "exited" and st["Error"], st
    wait_for(lambda: not pid_alive(monitor["pid"]), what="the monitor to die")
    assert_ps_truthful(box)
    recover(box, "rm" if START_STEPS.index(step) % 2 == 0 else "prune")


@pytest.mark.parametrize("step,rm", [("monitor: container exited", False), ("monitor: cgroup removed", False),
                                     ("monitor: rootfs unmounted", False), ("monitor: rootfs unmounted", True)])
def test_monitor_killed_while_the_container_exits(tap, box, step, rm):
    fired = tap.kill_at(step)
    args = ["run", "-d", "--name", "victim"] + (["--rm"] if rm else []) + [IMAGE, "sh", "-c", "sleep 0.5; exit 3"]
    res = subprocess.run(box.cmd(*args), env=tap.env(), capture_output=True, text=True, timeout=TIMEOUT,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, describe(res)
    cid = res.stdout.strip()
    box.created.add(cid)
    assert fired.wait(30), tap.phases()
    wait_for(lambda: not pid_alive(fired.result), what="the monitor to die")
    entry = box.ps_entry(cid)
    if not rm:  # (--rm: killed while removing the container, it may be gone already)
        assert entry is not None, "the container is no longer listed"
    assert entry is None or entry["State"] == "exited", entry
    assert_ps_truthful(box)
    recover(box, "prune" if rm else "rm")


# ---------------------------------------------------------------------------
# VM isolation: the monitor, the VM worker (QEMU) and the CLI killed


@needs_vm
@pytest.mark.parametrize("boot", ["template", "cold"])
def test_vm_monitor_killed_after_boot(tap, box, boot):
    how = ["--vm-boot=cold"] if boot == "cold" else []
    if boot == "template":
        box("run", "--rm", VM, IMAGE, "true", timeout=BOOT)  # the template of this shape
    fired = tap.kill_at("vm: guest ready")
    cli = Cli(box, tap, "run", "-d", "--name", "victim", VM, *how, IMAGE, "sleep", "1000").finish(BOOT)
    assert fired.wait(10), tap.phases()
    assert ("vm: clone awake" if boot == "template" else "vm: agent said hello") in tap.phases(), tap.phases()
    assert_engine_error(cli, "monitor")
    wait_for(lambda: not vm_workers_of(box, box.ids()[0]), what="the VM worker to die with its monitor")
    recover(box, "rm")


@needs_vm
def test_vm_worker_killed_during_boot(tap, box):
    def kill_worker(monitor):
        worker = wait_child(monitor, "isola-vm-") or wait_child(monitor, "qemu")
        kill_quietly(worker)  # at once: a clone of a template can be up within 0.1 s
        return worker

    # A cold boot, so that the kill lands while the guest boots (a clone
    # answered before a kill 0.3 s after QEMU started, on an idle machine).
    fired = tap.on("vm: starting QEMU", kill_worker)
    cli = Cli(box, tap, "run", "-d", "--name", "victim", VM, "--vm-boot=cold", IMAGE, "sleep", "1000").finish(BOOT)
    assert fired.wait(30) and fired.result, tap.phases()
    assert_engine_error(cli, "VM")
    st = box.state("victim")
    assert st["Status"] == "exited" and "VM" in st["Error"], st
    recover(box, "prune")


@needs_vm
def test_vm_worker_killed_while_running(box):
    cid = box.run_d("--name", "victim", VM, IMAGE, "sh", "-c", "echo up; exec sleep 1000", timeout=BOOT)
    wait_for(lambda: "up" in box.ok("logs", cid), what="the container's output")
    info = box.inspect(cid)
    worker = info["VM"]["WorkerPid"]
    assert comm(worker) == "isola-vm-" + cid[:6]
    kill_quietly(worker)
    st = box.wait_status(cid, "exited")
    # The monitor sees the worker's death (SIGCHLD) or the agent's channel
    # close first; either way the error says the VM is gone.
    assert st["ExitCode"] == 137, st
    assert "killed by signal 9" in st["Error"] or "the guest agent went away" in st["Error"], st
    rootfs = info["GraphDriver"]["Data"]["MergedDir"]
    wait_for(lambda: not box.mounts_under(rootfs), what="the rootfs to be unmounted")
    res = box("exec", cid, "true")
    assert res.returncode == 125 and "not running" in res.stderr, describe(res)
    assert_ps_truthful(box)
    recover(box, "prune")


@needs_vm
def test_vm_worker_killed_during_attached_run(tap, box):
    def kill_worker(monitor):
        worker = wait_child(monitor, "isola-vm-")
        time.sleep(0.5)
        kill_quietly(worker)
        return worker

    fired = tap.on("vm: container exec'd", kill_worker)
    cli = Cli(box, tap, "run", "--name", "victim", VM, IMAGE, *SLEEPER).finish(BOOT)
    assert fired.wait(10) and fired.result, tap.phases()
    assert cli.returncode in (125, 137), cli.describe()
    assert box.state("victim")["Status"] == "exited"
    recover(box, "rm")


@needs_vm
def test_vm_monitor_killed_while_running(box):
    cid = box.run_d("--name", "victim", VM, IMAGE, "sleep", "1000", timeout=BOOT)
    st = box.state(cid)
    kill_quietly(st["MonitorPid"])
    wait_for(lambda: not vm_workers_of(box, cid), what="the VM worker to die with its monitor")
    assert box.wait_status(cid, "exited")["Error"], box.state(cid)
    assert_ps_truthful(box)
    recover(box, "rm")


@needs_vm
@pytest.mark.parametrize("fault", ["worker killed during stop", "monitor killed during rm -f",
                                   "cli killed during rm -f"])
def test_vm_faults_during_stop_and_rm(tap, box, fault):
    res = subprocess.run(box.cmd("run", "-d", "--name", "victim", VM, IMAGE, "sleep", "1000"), env=tap.env(),
                         capture_output=True, text=True, timeout=BOOT, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, describe(res)
    cid = res.stdout.strip()
    box.created.add(cid)
    worker = box.inspect(cid)["VM"]["WorkerPid"]
    if fault == "worker killed during stop":
        # sleep as the guest's PID 1 ignores SIGTERM: stop would wait 30 s.
        cli = Cli(box, tap, "stop", "-t", "30", cid)
        time.sleep(1)
        kill_quietly(worker)
        t0 = time.monotonic()
        cli.finish()
        assert cli.returncode == 0, cli.describe()
        assert time.monotonic() - t0 < 15, "stop waited for its timeout after the VM died"
        assert box.state(cid)["Status"] == "exited"
    else:
        holder = {}
        victim = None if fault.startswith("monitor") else later(holder)
        fired = tap.kill_at("vm: container exited", pid=victim)
        cli = holder["cli"] = Cli(box, tap, "rm", "-f", cid)
        cli.finish()
        assert fired.wait(10), tap.phases()
        if fault.startswith("monitor"):
            assert cli.returncode == 0, cli.describe()
            assert box.ids() == []
        else:
            assert cli.returncode == -9, cli.describe()
    wait_for(lambda: not vm_workers_of(box, cid), what="the VM worker to go")
    assert_ps_truthful(box)
    recover(box, "prune")


@needs_vm
def test_cli_killed_while_its_vm_boots(tap, box):
    """The CLI of an attached VM run dies while the VM boots. The monitor
    finishes the boot and waits for an attach that will not come: ps -a
    says created; `isola start` starts the container in one VM, not two;
    rm -f leaves no VM behind."""
    holder = {}
    fired = tap.kill_at("vm: starting QEMU", pid=later(holder))
    cli = holder["cli"] = Cli(box, tap, "run", "--name", "victim", VM, IMAGE, *SLEEPER)
    cli.finish(BOOT)
    assert fired.wait(10) and cli.returncode == -9, cli.describe()
    tap.wait_phase("vm: guest ready", timeout=BOOT)
    cid = box.ids()[0]
    assert box.ps_entry(cid)["State"] == "created"
    assert_ps_truthful(box)
    res = box("start", "victim", timeout=BOOT)
    assert res.returncode == 0, describe(res)
    box.wait_status(cid, "running")
    time.sleep(0.5)
    assert len(vm_workers_of(box, cid)) == 1, f"VM workers: {vm_workers_of(box, cid)}"
    assert len(monitors_of(box)) == 1, f"monitors: {monitors_of(box)}"
    recover(box, "rm")


# ---------------------------------------------------------------------------
# An unclean restart: every monitor gone at once, /run/isola emptied


def test_unclean_restart(box):
    with_vm = vm_available()
    a = box.run_d("--name", "a", IMAGE, "sh", "-c", "echo a >> /data; exec sleep 1000")
    b = box.run_d("--name", "b", "--init", IMAGE, "sleep", "1000")
    c = box.run_d("--name", "c", IMAGE, "true")
    box.ok("wait", c)
    v = box.run_d("--name", "v", VM, IMAGE, "sleep", "1000", timeout=BOOT) if with_vm else None
    running = [x for x in (a, b, v) if x]
    states = {cid: box.state(cid) for cid in running}
    # The crash: every monitor killed at once ...
    for st in states.values():
        kill_quietly(st["MonitorPid"])
    for st in states.values():
        wait_for(lambda: not pid_alive(st["Pid"]) and not pid_alive(st["MonitorPid"]), what="the processes to die")
    # ... and the reboot: /run is a tmpfs. For `a` the mounts and cgroups go
    # too (a real reboot); `b` and `v` keep theirs (a crash of isola alone).
    for cid in running:
        subprocess.run(["rm", "-rf", f"/run/isola/{cid}"], check=True)
    rootfs_a = box.inspect(a)["GraphDriver"]["Data"]["MergedDir"]
    subprocess.run(["umount", rootfs_a], check=True)
    force_clean_cgroups(a)
    assert not cgroup_dirs(a)

    # What the user sees: nothing running, everything exited.
    assert box.ids(all=False) == [], box.ok("ps")
    for cid in running:
        st = box.state(cid)
        assert st["Status"] == "exited" and not st["Running"], st
    assert_ps_truthful(box)

    # Starting them again works, with their files.
    box.ok("start", a, b)
    for cid in (a, b):
        box.wait_status(cid, "running")
    res = box("exec", a, "cat", "/data")
    assert res.returncode == 0 and res.stdout == "a\na\n", describe(res)
    res = box("exec", b, "echo", "in b")
    assert res.returncode == 0 and res.stdout == "in b\n", describe(res)
    if v:
        box.ok("start", v, timeout=BOOT)
        box.wait_status(v, "running")
        res = box("exec", v, "echo", "in v", timeout=60)
        assert res.returncode == 0 and res.stdout == "in v\n", describe(res)
    assert_ps_truthful(box)
    res = box("container", "prune", "-f")
    assert res.returncode == 0 and c in res.stdout and a not in res.stdout, describe(res)
    recover(box, "rm")


# ---------------------------------------------------------------------------
# Full disks


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """An image with a 20 MiB layer of random (incompressible) bytes."""
    out = tmp_path_factory.mktemp("big")
    image = imagegen.Image([imagegen.Layer([imagegen.File("big", os.urandom(20 << 20))], compression="none")],
                           ["big:1"])
    return {"oci-dir": imagegen.save("oci-dir", image, out / "oci"),
            "docker-legacy": imagegen.save("docker-legacy", image, out / "legacy.tar")}


class SmallStore:
    """A store on a small file system, busybox loaded, the Box commands."""

    def __init__(self, make_isola, fs, busybox_layout):
        self.fs = fs
        self.isola = make_isola(fs.path / "store")
        self.isola("load", "-i", busybox_layout, timeout=TIMEOUT)
        self.box = Box(self.isola)


@pytest.fixture
def small_store(make_isola, tmp_path, busybox_layout):
    """factory(kind="tmpfs", size_mb=16) -> SmallStore; teardown checks leaks
    like `box` does, then unmounts."""
    stack = []

    def make(kind="tmpfs", size_mb=16):
        cm = small_fs(tmp_path / f"small-{kind}", size_mb, kind)
        fs = cm.__enter__()
        stack.append(cm)
        store = SmallStore(make_isola, fs, busybox_layout)
        stack.append(store)
        return store

    yield make
    problems = []
    for item in reversed(stack):
        if isinstance(item, SmallStore):
            problems += item.box.teardown()
            item.isola.cleanup()
        else:
            item.__exit__(None, None, None)
    if problems:
        pytest.fail("leaked after rm -f:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
@pytest.mark.parametrize("fmt", ["oci-dir", "docker-legacy"])
def test_full_disk_while_loading_an_image(small_store, big_image, tmp_path, kind, fmt):
    s = small_store(kind)
    isola, box = s.isola, s.box
    before = isola.snapshot()
    free = s.fs.free()
    assert free < (20 << 20), f"{free} bytes free: the image would fit"
    res = isola.fail("load", "-i", big_image[fmt])
    assert NO_SPACE in res.stderr, res.stderr
    # Nothing of the half-loaded image stays, in the index or on disk.
    isola.assert_unchanged(before)
    assert "big" not in box.ok("images")
    assert abs(s.fs.free() - free) < (256 << 10), f"free space {free} before, {s.fs.free()} after"
    isola.assert_consistent()
    assert_image_usable(box)
    # The store is not left full: a small image loads.
    small = imagegen.Image([imagegen.Layer([imagegen.File("x", b"x")])], ["small:1"])
    isola.load(imagegen.save("oci-dir", small, tmp_path / "small-image"))
    assert "small:1" in isola.tags()
    isola.assert_consistent()


def test_full_disk_at_every_step_of_a_load(small_store, tmp_path):
    """The file system is filled so that 0, 1, 2, ... pages are left, and an
    image loaded each time: a load either succeeds whole or fails with 'No
    space left on device' and leaves the store as it was."""
    s = small_store("tmpfs")
    isola, box = s.isola, s.box
    files = [imagegen.Dir("d")] + [imagegen.File(f"d/f{i}", os.urandom(5000)) for i in range(6)]
    image = imagegen.Image([imagegen.Layer(files, compression="none")], ["small:1"])
    path = imagegen.save("oci-dir", image, tmp_path / "small-image")
    page = os.statvfs(s.fs.path).f_frsize
    outcomes = []
    for pages in range(0, 40):
        before = isola.snapshot()
        s.fs.fill_to(pages * page)
        res = isola("load", "-i", path, check=False)
        (s.fs.path / "filler").unlink(missing_ok=True)
        if res.returncode == 0:
            outcomes.append("ok")
            assert "small:1" in isola.tags(), f"{pages} pages: loaded but not listed"
            isola.assert_consistent()
            isola("rmi", "small:1")
            isola.assert_unchanged(before)
            if outcomes[-3:] == ["ok"] * 3:
                break
        else:
            outcomes.append("full")
            assert res.returncode == 125 and NO_SPACE in res.stderr, f"{pages} pages: {describe(res)}"
            assert "small:1" not in isola.tags(), f"{pages} pages: a half-loaded image is listed"
            isola.assert_unchanged(before)
            isola.assert_consistent()
    assert "full" in outcomes and outcomes[-1] == "ok", outcomes
    assert_image_usable(box)


def test_full_disk_at_every_step_of_a_run(small_store):
    """The same for `run --rm`: with 0, 1, 2, ... pages free a run either
    works or fails saying the disk is full, and what it leaves behind is
    shown truthfully and removed by prune."""
    s = small_store("tmpfs")
    box = s.box
    page = os.statvfs(s.fs.path).f_frsize
    outcomes = []
    for pages in range(0, 60):
        s.fs.fill_to(pages * page)
        res = box("run", "--rm", IMAGE, "echo", "hi")
        (s.fs.path / "filler").unlink(missing_ok=True)
        if res.returncode == 0:
            assert res.stdout == "hi\n", f"{pages} pages: {describe(res)}"
            outcomes.append("ok")
        else:
            outcomes.append("full")
            assert res.returncode == 125 and NO_SPACE in res.stderr, f"{pages} pages: {describe(res)}"
        assert_ps_truthful(box)
        res = box("container", "prune", "-f")
        assert res.returncode == 0, f"{pages} pages: prune: {describe(res)}"
        assert_clean(box, every_id(box))
        if outcomes[-3:] == ["ok"] * 3:
            break
    assert "full" in outcomes and outcomes[-1] == "ok", outcomes
    assert_image_usable(box)


@pytest.mark.parametrize("isolation", ["process", pytest.param("vm", marks=needs_vm)])
def test_container_fills_the_disk(small_store, isolation):
    """A container writes until the store's file system is full: it sees
    ENOSPC, its exit code is recorded, other commands say the disk is full,
    and removing it gives the space back. In a VM the writes go through the
    jailed worker's 9p server, which gets the ENOSPC and passes it on."""
    s = small_store("tmpfs", 24)
    box = s.box
    free = s.fs.free()
    res = box.run("--name", "filler", f"--isolation={isolation}", "--network", "none", IMAGE, "sh", "-c",
                  "cat /dev/zero > /fill; echo cat exited $? >&2; exit 3", timeout=BOOT)
    assert res.returncode == 3, describe(res)
    assert NO_SPACE in res.stderr, describe(res)
    assert s.fs.free() < (64 << 10), f"{s.fs.free()} bytes still free"
    st = box.state("filler")
    assert st["Status"] == "exited" and st["ExitCode"] == 3, st
    assert_ps_truthful(box)
    full = box("run", "--rm", IMAGE, "true")
    if full.returncode != 0:
        assert full.returncode == 125 and NO_SPACE in full.stderr, describe(full)
    box.ok("container", "prune", "-f")
    assert_clean(box, every_id(box))
    assert abs(s.fs.free() - free) < (256 << 10), f"free space {free} before, {s.fs.free()} after"
    s.isola.assert_consistent()
    assert_image_usable(box)


def test_detached_container_fills_the_disk_then_rm_f(small_store):
    s = small_store("tmpfs", 24)
    box = s.box
    cid = box.run_d(IMAGE, "sh", "-c", "cat /dev/zero > /fill; echo full; exec sleep 1000")
    wait_for(lambda: s.fs.free() < (64 << 10), what="the disk to fill")
    st = box.wait_status(cid, "running")
    res = box("exec", cid, "sh", "-c", "echo more > /more")
    assert res.returncode != 0 and NO_SPACE in res.stderr, describe(res)
    assert_ps_truthful(box)
    box.rm_f(cid)
    assert not pid_alive(st["Pid"])
    assert_clean(box, {cid})
    assert_image_usable(box)


def test_cli_killed_during_load(isola, tmp_path, busybox_layout):
    """A load killed halfway: the image is not listed, and the next load
    removes the staging it left and loads the image whole."""
    layers = [busybox_layer(busybox_layout)] + [
        imagegen.Layer([imagegen.File(f"blob{i}", os.urandom(4 << 20))], compression="none") for i in range(6)]
    image = imagegen.Image(layers, ["big:1"])
    path = imagegen.save("docker-legacy", image, tmp_path / "big.tar")
    isola("load", "-i", busybox_layout)
    before = isola.snapshot()
    proc = isola.popen("load", "-i", path)
    tmp = isola.root / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        staged = [n for n in os.listdir(tmp) if n.startswith("load-")] if tmp.exists() else []
        if staged and (tmp / staged[0] / "layers").exists():
            break  # the archive is extracted, layers are being unpacked
        time.sleep(0.001)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    if proc.returncode != -9:
        pytest.skip("the load finished before it could be interrupted")
    if "big:1" in isola.tags():  # killed after the commit: then it is whole
        isola.assert_consistent()
    else:
        assert isola.snapshot() == before
    isola("load", "-i", path)
    isola.assert_tmp_empty()
    assert "big:1" in isola.tags()
    isola.assert_consistent()
    res = Box(isola)("run", "--rm", "big:1", "sh", "-c", "wc -c < /blob3")
    assert res.returncode == 0 and res.stdout.strip() == str(4 << 20), describe(res)

