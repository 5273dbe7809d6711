"""Tools for the fault and load tests (test_faults.py, test_load.py): crash
isola's processes at chosen steps, make small file systems that fill up,
and check what a user and the host see afterwards.

- TraceTap: isola reports the phases of a container's start and exit to the
  file named by ISOLA_TRACE ("<ns> <pid> <phase>" per line; see
  src/common/log.h). Pointed at a FIFO that a thread reads as lines arrive,
  it lets a test SIGKILL a process the moment a phase is reported: a crash
  at that step, not at a guessed time.
- small_fs(): a tmpfs or a loop-mounted ext4 of a few MiB for a store, and
  fill_to() to leave exactly N bytes free on it.
- host facts about one store: processes that belong to it, the IDs and
  leftovers under it, and a check that ps -a tells the truth.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from checks import mountpoints
from containers import cgroup_dirs, comm, pid_alive

HEX64_LEN = 64


# ---------------------------------------------------------------------------
# Crashing a process at a step


class TraceTap:
    """Reads isola's trace phases from a FIFO as they are written and runs
    the actions registered for them (typically: SIGKILL a process).

    The FIFO is held open for reading and writing by the tap itself, so a
    traced process never blocks opening it; the reader thread acts within a
    fraction of a millisecond of the phase being written, while the traced
    process carries on with the step that follows."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path, 0o600)
        self._fd = os.open(self.path, os.O_RDWR)
        self.lines = []  # (pid, phase) in arrival order
        self._rules = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def env(self, **extra):
        return {**os.environ, "ISOLA_TRACE": self.path, **extra}

    def on(self, phase, action, times=1):
        """Calls action(pid_of_the_reporting_process) when `phase` is
        reported; returns an Event set after the action ran (its result in
        event.result)."""
        event = threading.Event()
        event.result = None
        with self._lock:
            self._rules.append([phase, action, event, times])
        return event

    def kill_at(self, phase, pid=None):
        """SIGKILLs `pid` (a number or a callable returning one; default: the
        process that reports the phase) when `phase` is reported."""
        def action(reporter):
            victim = pid() if callable(pid) else (pid if pid is not None else reporter)
            if victim:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return victim
        return self.on(phase, action)

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode(errors="replace").split(" ", 2)
                if len(parts) != 3:
                    continue
                pid, phase = int(parts[1]), parts[2]
                if phase == "tap: stop":
                    return
                with self._lock:
                    self.lines.append((pid, phase))
                    due = [r for r in self._rules if r[0] == phase and r[3] > 0]
                    for r in due:
                        r[3] -= 1
                    self._cond.notify_all()
                for _, action, event, _ in due:
                    try:
                        event.result = action(pid)
                    finally:
                        event.set()

    def wait_phase(self, phase, timeout=60):
        """Waits until `phase` has been reported; returns the reporter's PID."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for pid, p in self.lines:
                    if p == phase:
                        return pid
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"phase {phase!r} not reported within {timeout}s; got {self.phases()}",
                                pytrace=False)
                self._cond.wait(left)

    def phases(self):
        return [p for _, p in self.lines]

    def close(self):
        # New opens of the path must not find a FIFO without a reader (they
        # would block): remove it first; late writers create a plain file.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.write(self._fd, b"0 0 tap: stop\n")
        self._thread.join(5)
        os.close(self._fd)


@pytest.fixture
def tap(tmp_path):
    """A TraceTap on tmp_path/trace.fifo. Request it before `box` so that it
    still serves while box's teardown removes the containers."""
    t = TraceTap(tmp_path / "trace.fifo")
    yield t
    t.close()


def children_named(parent, prefix):
    """PIDs of the children of `parent` whose comm starts with prefix."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == parent and (comm(int(d)) or "").startswith(prefix):
            out.append(int(d))
    return out


def wait_child(parent, prefix, timeout=10):
    """The first child of `parent` named prefix*, polling; None if none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children_named(parent, prefix)
        if found:
            return found[0]
        if not pid_alive(parent):
            return None
        time.sleep(0.005)
    return None


def kill_quietly(pid):
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# Host facts about one store


def processes_of_store(root):
    """{pid: cmdline} of live processes whose command line names the store:
    monitors (forked from `isola --root ROOT`, never exec'd), CLIs and VM
    workers (QEMU shares paths below ROOT)."""
    root = str(Path(root).resolve())
    mine = os.getpid()
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == mine:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if root in cmd and pid_alive(int(d)):
            out[int(d)] = cmd.strip()
    return out


def cgroup_procs(cid):
    pids = set()
    for d in cgroup_dirs(cid):
        for name in ("cgroup.procs", "tasks"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in Path(d, name).read_text().split())
    return sorted(p for p in pids if pid_alive(p))


def ids_on_disk(box):
    """Container IDs with a directory in the store (listed or not)."""
    d = box.root / "containers"
    return sorted(n[:HEX64_LEN] for n in os.listdir(d)) if d.exists() else []


def assert_ps_truthful(box, settle=10):
    """ps -a shows each container as it is on the host: running ones have a
    live monitor and init; exited ones no process at all; created ones none
    that runs the container's command (a monitor still waiting for its CLI
    to attach is 'created', rightly: the command has not started)."""
    deadline = time.monotonic() + settle
    while True:
        problems = []
        for entry in box.ps_json():
            cid, state = entry["Id"], entry["State"]
            info = box.inspect(cid)
            st = info["State"]
            if state in ("running", "paused"):
                if not (pid_alive(st["Pid"]) and pid_alive(st["MonitorPid"])):
                    problems.append(f"{cid[:12]} shown {state} but Pid {st['Pid']}/monitor {st['MonitorPid']} "
                                    "are gone")
                continue
            if st["Running"]:
                problems.append(f"{cid[:12]}: ps says {state}, inspect says Running")
            # An exited container has no process left; a created one at most
            # the set-up child of a monitor waiting for its CLI (not exec'd),
            # or, with VM isolation, the booted VM waiting for it (the
            # worker's cgroup is the container's).
            waiting = ("isola-monitor", "isola")
            live = [p for p in cgroup_procs(cid)
                    if state != "created" or (info["Isolation"] != "vm" and comm(p) not in waiting)]
            if info["Isolation"] == "vm" and state != "created":
                live += [p for p in processes_of_store(box.root) if comm(p) == "isola-vm-" + cid[:6]]
            if live:
                problems.append(f"{cid[:12]} shown {state} but {[(p, comm(p)) for p in live]} still run")
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not problems, "ps -a does not tell the truth:\n" + "\n".join(problems)


def host_leftovers(box, ids):
    """Everything the store's containers left on the host: directories,
    mounts, cgroups, /run/isola entries, processes, staging in tmp/."""
    found = []
    for cid in ids:
        found += box.leaks(cid)
    cdir = box.root / "containers"
    if cdir.exists() and os.listdir(cdir):
        found.append(f"{cdir} holds {sorted(os.listdir(cdir))}")
    root = str(box.root.resolve())
    found += [f"mount {m}" for m in mountpoints() if m.startswith(root + "/")]
    found += [f"process {p}: {c}" for p, c in processes_of_store(box.root).items()]
    tmp = box.root / "tmp"
    if tmp.exists() and os.listdir(tmp):
        found.append(f"{tmp} holds {sorted(os.listdir(tmp))}")
    return found


def assert_clean(box, ids, timeout=15):
    """No container is listed and nothing of `ids` is left on the host."""
    deadline = time.monotonic() + timeout
    while True:
        left = host_leftovers(box, ids)
        listed = box.ids()
        if (not left and not listed) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not listed, f"still listed by ps -a: {listed}"
    assert not left, "left behind:\n" + "\n".join(left)


def assert_image_usable(box, ref="busybox"):
    """The image lists, inspects, and a container runs from it."""
    images = box.ok("images")
    assert ref in images, images
    info = json.loads(box.ok("image", "inspect", ref))
    assert info and info[0]["RootFS"]["Layers"], info
    res = box("run", "--rm", ref, "echo", "still works")
    assert res.returncode == 0 and res.stdout == "still works\n", \
        f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"


# ---------------------------------------------------------------------------
# Small file systems


class SmallFs:
    def __init__(self, path, kind):
        self.path = Path(path)
        self.kind = kind

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill_to(self, free_bytes, name="filler"):
        """Leaves about `free_bytes` free (a file of the rest); returns its path."""
        filler = self.path / name
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        size = self.free() - free_bytes
        if size > 0:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        return filler


@contextlib.contextmanager
def small_fs(path, size_mb=16, kind="tmpfs"):
    """Mounts a `size_mb` MiB tmpfs or loop-mounted ext4 at `path`; on exit
    unmounts it (lazily if something is left mounted below it, which the
    test has already reported) and frees the loop device."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    image = None
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
                       check=True, capture_output=True)
    elif kind == "ext4":
        if not os.path.exists("/dev/loop-control"):
            pytest.skip("no loop devices here")
        image = path.with_suffix(".img")
        with open(image, "wb") as f:
            f.truncate(size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
        res = subprocess.run(["mount", "-o", "loop", str(image), str(path)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot loop-mount ext4 here: {res.stderr.strip()}")
    else:
        raise ValueError(kind)
    try:
        yield SmallFs(path, kind)
    finally:
        real = str(path.resolve())
        for m in sorted((m for m in mountpoints() if m.startswith(real + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        res = subprocess.run(["umount", str(path)], capture_output=True)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        if image is not None:
            # mount -o loop sets autoclear; detach anything still bound to the image.
            out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
            for line in out.splitlines():
                subprocess.run(["losetup", "-d", line.split(":", 1)[0]], capture_output=True)
            with contextlib.suppress(OSError):
                image.unlink()


def vm_available():
    res = subprocess.run([os.environ.get("ISOLA_BIN", "/usr/local/bin/isola"), "info"],
                         capture_output=True, text=True)
    return re.search(r"^VM isolation:\s+available", res.stdout, re.M) is not None
