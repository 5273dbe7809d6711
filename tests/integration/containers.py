"""Fixtures and helpers for the container tests (test_container_*.py; the
module names carry "container" so that `pytest -k container` selects them).

Every test gets its own store (conftest's `isola` fixture: `--root
<tmp_path>/store`) with the busybox image loaded. The `box` fixture wraps it:
it runs containers the way a user does and, at teardown, removes whatever the
test left with `rm -f` and checks that nothing leaked on the host: no
container directory, no mount under the store's containers directory, no
cgroup directory in any hierarchy (a v1 cgroup with a process in it cannot
be removed, so this also catches stray processes), no /run/isola/<id>.
What leaked is then cleaned by hand so that later tests start clean.

Use from a test module:

    from containers import box  # noqa: F401  (the fixture)

Every subprocess has a timeout: a hang fails the test instead of blocking CI.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from checks import mountpoints

TIMEOUT = 60  # seconds for any one isola command
HEX64 = re.compile(r"^[0-9a-f]{64}$")
IMAGE = "busybox"
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUN_DIR = Path("/run/isola")
# Docker's default capability set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
# SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
DEFAULT_CAPS = 0x00000000A80425FB


def cgroup_dirs(cid):
    """Every cgroup directory of container `cid` that exists, in any
    hierarchy (v1 controllers, the hybrid unified mount, pure v2)."""
    found = []
    for pattern in (f"{CGROUP_ROOT}/isola/{cid}", f"{CGROUP_ROOT}/*/isola/{cid}"):
        found += [p for p in glob.glob(pattern) if os.path.isdir(p)]
    return sorted(set(found))


def is_v2():
    """Pure cgroup v2 host (this project's CI is hybrid: v1 controllers)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def cgroup_file(cid, controller, v1_name, v2_name):
    """Path of a container's cgroup control file: v1 name under the
    controller's hierarchy, or the v2 name under the unified tree."""
    if is_v2():
        return CGROUP_ROOT / "isola" / cid / v2_name
    return CGROUP_ROOT / controller / "isola" / cid / v1_name


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def wait_for(predicate, timeout=20, interval=0.1, what="condition"):
    """Polls until predicate() is truthy; returns its value or fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(interval)


def describe(res):
    return (f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")


class Box:
    """A store with busybox loaded, and the commands a user types."""

    def __init__(self, isola):
        self.isola = isola
        self.root = isola.root
        self.bin = isola.bin
        self.created = set()  # IDs this test made, checked at teardown

    # -- running isola

    def cmd(self, *args):
        return [self.bin, "--root", str(self.root), *map(str, args)]

    def __call__(self, *args, input=None, timeout=TIMEOUT, check=False):
        """Runs `isola --root R ARGS`; returns the CompletedProcess."""
        cmd = self.cmd(*args)
        try:
            res = subprocess.run(cmd, input=input, capture_output=True, text=True,
                                 timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s\n"
                        f"stdout so far: {e.stdout!r}\nstderr so far: {e.stderr!r}", pytrace=False)
        if check and res.returncode != 0:
            pytest.fail(f"{' '.join(cmd)}: {describe(res)}", pytrace=False)
        return res

    def ok(self, *args, **kw):
        """Runs a command that must succeed; returns its stdout."""
        return self(*args, check=True, **kw).stdout

    def run(self, *args, **kw):
        """`isola run ARGS` attached; returns the CompletedProcess."""
        res = self("run", *args, **kw)
        self.note_ids()
        return res

    def run_d(self, *args, **kw):
        """`isola run -d ARGS`; returns the printed 64-hex ID."""
        res = self("run", "-d", *args, **kw)
        self.note_ids()
        assert res.returncode == 0, f"run -d {' '.join(map(str, args))}: {describe(res)}"
        cid = res.stdout.strip()
        assert HEX64.match(cid), f"run -d printed {res.stdout!r}, not a 64-hex ID"
        self.created.add(cid)
        return cid

    def create(self, *args):
        res = self("create", *args)
        self.note_ids()
        assert res.returncode == 0, f"create: {describe(res)}"
        cid = res.stdout.strip()
        assert HEX64.match(cid), f"create printed {res.stdout!r}, not a 64-hex ID"
        self.created.add(cid)
        return cid

    def note_ids(self):
        """Remembers every container in the store (for teardown checks)."""
        res = self("ps", "-aq", "--no-trunc")
        if res.returncode == 0:
            self.created.update(l for l in res.stdout.split() if HEX64.match(l))

    # -- reading state

    def inspect(self, ref):
        res = self("inspect", ref, check=True)
        data = json.loads(res.stdout)
        assert isinstance(data, list) and len(data) == 1, f"inspect printed {res.stdout}"
        return data[0]

    def state(self, ref):
        return self.inspect(ref)["State"]

    def ps_json(self, all=True):
        args = ["ps", "--format", "json"] + (["-a"] if all else [])
        out = self.ok(*args)
        data = json.loads(out)
        assert isinstance(data, list), f"ps --format json printed {out}"
        return data

    def ps_entry(self, cid, all=True):
        for entry in self.ps_json(all=all):
            if entry["Id"] == cid:
                return entry
        return None

    def ids(self, all=True):
        out = self.ok("ps", "-q", "--no-trunc", *(["-a"] if all else []))
        return out.split()

    def wait_status(self, cid, status, timeout=30):
        """Polls inspect until State.Status is `status`; returns the state."""
        last = {}

        def check():
            nonlocal last
            res = self("inspect", cid)  # may not exist yet: a run still starting
            if res.returncode != 0:
                last = res.stderr
                return None
            last = json.loads(res.stdout)[0]["State"]
            return last if last["Status"] == status else None

        deadline = time.monotonic() + timeout
        while True:
            st = check()
            if st:
                return st
            if time.monotonic() > deadline:
                pytest.fail(f"container {cid[:12]} not {status} after {timeout}s: {last}", pytrace=False)
            time.sleep(0.1)

    def exec(self, cid, *args, **kw):
        """`isola exec CID ARGS` (options go before the ID: use box("exec", ...))."""
        return self("exec", cid, *args, **kw)

    def sh(self, cid, script, **kw):
        """exec `sh -c SCRIPT` in a running container."""
        return self("exec", cid, "sh", "-c", script, **kw)

    # -- host facts

    def containers_dir(self):
        return (self.root / "containers").resolve() if (self.root / "containers").exists() \
            else self.root / "containers"

    def mounts_under(self, path):
        prefix = str(path)
        return [m for m in mountpoints() if m == prefix or m.startswith(prefix + "/")]

    def leaks(self, cid):
        """What container `cid` left behind on the host, as a list of strings."""
        found = []
        cdir = self.containers_dir() / cid
        if cdir.exists():
            found.append(f"container directory {cdir}")
        found += [f"mount {m}" for m in self.mounts_under(cdir)]
        found += [f"cgroup {d}" for d in cgroup_dirs(cid)]
        if (RUN_DIR / cid).exists():
            found.append(f"runtime directory {RUN_DIR / cid}")
        return found

    def assert_gone(self, cid, timeout=10):
        """After rm: no directory, mount, cgroup or runtime directory is left
        (a few seconds' grace for a monitor still finishing)."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.leaks(cid)
            if not left:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"container {cid[:12]} left behind: {left}", pytrace=False)
            time.sleep(0.1)
        assert cid not in self.ids(), f"{cid[:12]} still listed by ps -a"

    def rm_f(self, cid):
        res = self("rm", "-f", cid)
        assert res.returncode == 0, f"rm -f {cid[:12]}: {describe(res)}"
        self.assert_gone(cid)

    # -- teardown

    def teardown(self):
        """Removes every container, then reports leaks; cleans the host of
        whatever isola failed to remove so later tests start clean."""
        try:
            self.note_ids()
            for cid in sorted(self.created):
                if (self.containers_dir() / cid).exists():
                    self("rm", "-f", cid)
        except OSError:  # the binary itself is gone or broken: clean up by hand below
            pass
        problems = []
        deadline = time.monotonic() + 10
        while True:
            problems = [(cid, self.leaks(cid)) for cid in sorted(self.created)]
            problems = [(c, l) for c, l in problems if l]
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        mounts = self.mounts_under(self.containers_dir())
        for cid, _ in problems:
            force_clean_cgroups(cid)
            subprocess.run(["rm", "-rf", str(RUN_DIR / cid)], capture_output=True, timeout=TIMEOUT)
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=TIMEOUT)
        msgs = [f"{cid[:12]}: {left}" for cid, left in problems]
        if mounts:
            msgs.append(f"mounts under {self.containers_dir()}: {mounts}")
        return msgs


def force_clean_cgroups(cid):
    """Kills the processes of a leaked cgroup and removes its directories."""
    for d in cgroup_dirs(cid):
        for f in ("cgroup.procs", "tasks"):
            try:
                for pid in Path(d, f).read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            except OSError:
                pass
        freezer = Path(d, "freezer.state")
        if freezer.exists():
            try:
                freezer.write_text("THAWED")
            except OSError:
                pass
    time.sleep(0.3)
    for d in sorted(cgroup_dirs(cid), key=len, reverse=True):
        for sub, _, _ in sorted(os.walk(d), key=lambda t: len(t[0]), reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass


@pytest.fixture
def box(isola, busybox_layout):
    """A fresh store with busybox:latest loaded. Teardown removes every
    container and fails the test (as an error) if anything leaked."""
    isola("load", "-i", busybox_layout, timeout=TIMEOUT)
    b = Box(isola)
    yield b
    problems = b.teardown()
    if problems:
        pytest.fail("leaked after rm -f:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def userns_box(make_isola, busybox_layout):
    """A Box whose store lies below directories other users may search, as
    /var/lib/isola does: a --userns=auto container's mapped root must walk
    down to its own directory (pytest's tmp_path is 0700)."""
    base = tempfile.mkdtemp(prefix="isola-userns-", dir="/var/tmp")
    os.chmod(base, 0o711)
    isola = make_isola(os.path.join(base, "store"))
    isola("load", "-i", busybox_layout, timeout=TIMEOUT)
    b = Box(isola)
    yield b
    problems = b.teardown()
    isola.cleanup()
    shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail("leaked after rm -f:\n" + "\n".join(problems), pytrace=False)


# ---------------------------------------------------------------------------
# Pseudo-terminals: run isola as a user at a terminal would.


class PtySession:
    """`isola ARGS` with a new pseudo-terminal as its controlling terminal
    and stdio. The window size is set before isola starts."""

    def __init__(self, cmd, rows=24, cols=80):
        import fcntl
        import struct
        import termios
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def make_controlling():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=make_controlling,
                                     close_fds=True)
        os.close(slave)
        self.output = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.master, data)

    def resize(self, rows, cols):
        import fcntl
        import struct
        import termios
        # The kernel sends SIGWINCH to the terminal's foreground process group.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout):
        import select
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return None
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave side is closed
            return b""
        self.output += data
        return data

    def poll_for(self, pattern, timeout, since=0):
        """Reads until `pattern` (a regex on the decoded output after
        character `since`) matches; returns the match, or None on timeout
        or when the terminal closed."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), since)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._read(min(left, 0.5)) == b"":
                return rx.search(self.text(), since)

    def expect(self, pattern, timeout=TIMEOUT, since=0):
        """poll_for, failing with what the terminal showed if no match."""
        m = self.poll_for(pattern, timeout, since)
        if m:
            return m
        state = "still running" if self.proc.poll() is None else f"exit {self.proc.returncode}"
        self.kill()
        pytest.fail(f"no {pattern!r} on the terminal within {timeout}s (isola {state}); got:\n"
                    f"{self.text()!r}", pytrace=False)

    def text(self):
        return self.output.decode(errors="replace")

    def wait(self, timeout=TIMEOUT):
        """Drains the terminal until isola exits; returns its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"isola did not exit within {timeout}s; terminal showed:\n{self.text()!r}",
                            pytrace=False)
            self._read(0.2)
        while self._read(0.2):
            pass
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self):
        self.kill()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def pty_session():
    """Factory: pty_session(cmd, rows=, cols=) -> PtySession, closed at teardown."""
    sessions = []

    def make(cmd, **kw):
        s = PtySession(cmd, **kw)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()


# ---------------------------------------------------------------------------
# Images derived from busybox, with a chosen image config.


def busybox_layer(layout):
    """The busybox layout's layer as an imagegen Layer (same diff_id)."""
    import gzip

    import imagegen
    _, [(manifest, _)] = imagegen.verify_oci_layout(layout)
    blob = (Path(layout) / imagegen.blob_path(manifest["layers"][0]["digest"])).read_bytes()
    return imagegen.Layer(tar=gzip.decompress(blob))


def load_derived_image(box, layout, dest, tag, config, extra_entries=()):
    """Builds `tag` = busybox + an optional layer of extra_entries with image
    config `config`, and loads it into box's store."""
    import imagegen
    layers = [busybox_layer(layout)]
    if extra_entries:
        layers.append(imagegen.Layer(list(extra_entries)))
    cfg = {"Env": list(imagegen.DEFAULT_ENV), **config}
    image = imagegen.Image(layers, [tag], config=cfg)
    path = imagegen.save("oci-dir", [image], Path(dest) / tag.replace(":", "_").replace("/", "_"))
    box.ok("load", "-i", path)
    return image
