"""OCI bundles and the isola-runtime command line, for the conformance tests
(test_oci_conformance*.py).

A bundle is a directory with config.json (started from `isola-runtime spec`
output, as an engine would) and a rootfs made of the host's static busybox
with a symlink per applet. The `oci` fixture runs `isola-runtime --root
<tmp_path>/state ...`, gives each container a unique ID (cgroup paths are
host-wide) and at teardown deletes with --force every container the test
created, even after a failure, then checks that its cgroup is gone (a v1
cgroup that still holds a process cannot be removed, so this catches stray
processes too).

While a test runs, the pytest process is a child subreaper, as an engine's
shim is: a container's init (whose parent, `create`, exits at once) and the
processes `exec` leaves behind become our children. While a runtime command
runs, the others that exit are reaped, as a shim's SIGCHLD handler would (a
pid namespace's init cannot finish dying while a process of its namespace
is an unreaped zombie); `Runtime.wait_exit(pid)` gives their wait status.

Every runtime command writes to files, never to pipes: a container started
by `create` inherits the command's stdout and stderr and would hold a pipe
open long after the command returned.

    from bundles import oci  # noqa: F401  (the fixture)
"""

import ctypes
import glob
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

RUNTIME = os.environ.get("ISOLA_RUNTIME_BIN", "/usr/local/bin/isola-runtime")
RUNTIME_VM = str(Path(RUNTIME).with_name("isola-runtime-vm"))
BUSYBOX = "/bin/busybox"
APPLETS = ("sh echo cat ls sleep ps id tty mkdir rmdir touch hostname pwd env ulimit grep head "
           "true false kill uname wc mount stat readlink test printf seq date stty").split()
TIMEOUT = 60     # seconds for a runtime command (process isolation)
VM_TIMEOUT = int(os.environ.get("ISOLA_VM_TIMEOUT", "240"))  # seconds while a VM boots under TCG
CGROUP_ROOT = Path("/sys/fs/cgroup")
PR_SET_CHILD_SUBREAPER = 36


def make_rootfs(path):
    """A rootfs with /bin/busybox and its applets, and the usual directories."""
    path = Path(path)
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for name in APPLETS:
        os.symlink("busybox", path / "bin" / name)
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (path / d).mkdir(exist_ok=True)
    (path / "tmp").chmod(0o1777)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return path


class Bundle:
    """A bundle directory; `config` is the parsed config.json, written by save()."""

    def __init__(self, path, config):
        self.path = Path(path)
        self.rootfs = self.path / "rootfs"
        self.config = config

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def set_args(self, *args):
        self.process["args"] = list(args)
        return self

    def annotate(self, key, value):
        self.config.setdefault("annotations", {})[key] = value
        return self

    def namespace(self, kind):
        """The linux.namespaces entry of that type (None if absent)."""
        return next((n for n in self.linux["namespaces"] if n["type"] == kind), None)

    def add_mount(self, destination, type_, source, options=()):
        self.config["mounts"].append({"destination": destination, "type": type_, "source": source,
                                      "options": list(options)})
        return self

    def save(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self


def make_bundle(path, *args):
    """A bundle from `isola-runtime spec`: a non-terminal process running
    `args` (default: sleep), a writable root, the template's namespaces,
    mounts, capabilities, masked and read-only paths."""
    path = Path(path)
    path.mkdir(parents=True)
    res = subprocess.run([RUNTIME, "spec", "--bundle", str(path)], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 0, f"isola-runtime spec failed: {res.stderr}"
    config = json.loads((path / "config.json").read_text())
    make_rootfs(path / "rootfs")
    bundle = Bundle(path, config)
    bundle.process["terminal"] = False
    bundle.config["root"]["readonly"] = False
    bundle.set_args(*(args or ("sleep", "1000")))
    return bundle.save()


class Result:
    def __init__(self, cmd, returncode, stdout, stderr):
        self.cmd, self.returncode, self.stdout, self.stderr = cmd, returncode, stdout, stderr

    def __repr__(self):
        return (f"$ {' '.join(self.cmd)}\nexit {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")

    def json(self):
        return json.loads(self.stdout)


def wait_for(predicate, timeout=10, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def pid_alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def host_cmdlines():
    """{pid: command line} of every process on the host."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                out[int(d)] = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").strip()
            except OSError:
                pass
    return out


def cgroup_dirs(rel):
    """The directories of cgroup `rel` in every hierarchy where it exists."""
    return sorted(p for p in glob.glob(f"{CGROUP_ROOT}/*/{rel}") if os.path.isdir(p))


class Runtime:
    """`isola-runtime --root STATE ...` for one test."""

    def __init__(self, tmp_path):
        self.tmp = Path(tmp_path)
        self.root = self.tmp / "state"
        self.bin = RUNTIME
        self.token = uuid.uuid4().hex[:8]
        self.created = []  # every ID given to create/run, for teardown
        self._n = itertools.count()
        self.exited = {}  # pid: wait status of the children reaped so far
        self._io = self.tmp / "io"
        self._io.mkdir()

    def new_id(self, name="c"):
        return f"oci-{self.token}-{name}"

    def bundle(self, name, *args):
        return make_bundle(self.tmp / f"bundle-{name}", *args)

    def __call__(self, *args, check=False, input=None, timeout=TIMEOUT, bin=None, stdout=None,
                 global_flags=()):
        """Runs the runtime; stdout and stderr go to files (see the module
        note). `stdout` names the file for stdout (a container started by
        this command keeps writing there)."""
        args = [str(a) for a in args]
        if args and args[0] in ("create", "run"):
            self._note_id(args)
        n = next(self._n)
        out_path = Path(stdout) if stdout else self._io / f"{n}.out"
        err_path = self._io / f"{n}.err"
        cmd = [bin or self.bin, "--root", str(self.root), *map(str, global_flags), *args]
        with open(out_path, "ab") as out, open(err_path, "wb") as err:
            start = out.tell()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                    stdout=out, stderr=err)
            if input is not None:
                proc.stdin.write(input.encode())
                proc.stdin.close()
            self._wait(proc, timeout)
        with open(out_path, "rb") as f:
            f.seek(start)
            stdout_text = f.read().decode(errors="replace")
        result = Result(cmd, proc.returncode, stdout_text, err_path.read_text(errors="replace"))
        if check and proc.returncode != 0:
            pytest.fail(repr(result), pytrace=False)
        return result

    def _wait(self, proc, timeout):
        """Waits for a runtime command and, meanwhile, reaps the other
        children (orphans of the container, see the module note) as a shim
        does: a pid namespace's init cannot finish dying while a process of
        its namespace is an unreaped zombie."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            self.reap_others(proc.pid)
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"{' '.join(proc.args)} did not finish within {timeout} s", pytrace=False)
            time.sleep(0.01)

    def reap_others(self, keep=None):
        """Reaps every exited child but `keep`, recording its status."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == keep:
                return
            _, status = os.waitpid(info.si_pid, 0)
            self.exited[info.si_pid] = status

    def wait_exit(self, pid, timeout=10):
        """The raw wait status of `pid`, our child (see the module note)."""
        deadline = time.monotonic() + timeout
        while pid not in self.exited:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pytest.fail(f"process {pid} is not a child of the test", pytrace=False)
            if got == pid:
                self.exited[pid] = status
                break
            if time.monotonic() > deadline:
                pytest.fail(f"process {pid} did not exit within {timeout} s", pytrace=False)
            time.sleep(0.02)
        return self.exited[pid]

    def ok(self, *args, **kw):
        return self(*args, check=True, **kw)

    def _note_id(self, args):
        """The ID is the one positional argument after the command."""
        valued = {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"}
        i = 1
        while i < len(args):
            a = args[i]
            if a in valued:
                i += 2
                continue
            if not a.startswith("-"):
                if a not in self.created:
                    self.created.append(a)
                return
            i += 1

    # -- commands returning what a user reads

    def state(self, cid):
        return self.ok("state", cid).json()

    def status(self, cid):
        return self.state(cid)["status"]

    def create(self, cid, bundle, *flags, stdout=None, **kw):
        return self.ok("create", "--bundle", bundle.path, *flags, cid, stdout=stdout, **kw)

    def start_sleeper(self, cid, bundle, **kw):
        """create + start; returns the init's host PID."""
        self.create(cid, bundle, **kw)
        self.ok("start", cid, timeout=kw.get("timeout", TIMEOUT))
        return self.state(cid)["pid"]

    def ps(self, cid):
        return self.ok("ps", "--format", "json", cid).json()

    # -- teardown

    def cleanup(self):
        problems = []
        for cid in self.created:
            st = self("state", cid)
            if st.returncode != 0:
                continue  # never created, or deleted by the test
            cgroup = None
            try:
                pid = st.json().get("pid", 0)
                config = json.loads((self.root / cid / "config.json").read_text())
                cgroup = config.get("linux", {}).get("cgroupsPath") or f"isola-runtime/{cid}"
            except (OSError, ValueError):
                pid = 0
            res = self("delete", "--force", cid, timeout=VM_TIMEOUT)
            if res.returncode != 0:
                problems.append(f"teardown: {res!r}")
                if pid > 0:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if cgroup and ":" not in cgroup:
                left = cgroup_dirs(cgroup)
                if left:
                    problems.append(f"teardown: cgroup of {cid} left after delete --force: {left}")
        return problems


def set_subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@pytest.fixture
def oci(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the OCI runtime tests run as root")
    if not os.access(RUNTIME, os.X_OK):
        pytest.fail(f"{RUNTIME} not found; build and install isola, or set ISOLA_RUNTIME_BIN", pytrace=False)
    rt = Runtime(tmp_path)
    set_subreaper(True)
    try:
        yield rt
    finally:
        problems = rt.cleanup()
        time.sleep(0.05)
        rt.reap_others()
        set_subreaper(False)
    assert not problems, "\n".join(problems)


class ConsoleReceiver:
    """The engine's end of --console-socket: a Unix socket that accepts one
    connection, takes the pty master passed with SCM_RIGHTS, and reads
    everything the container writes to its terminal."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.master = None
        self.name = None
        self.output = b""
        self._got_master = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(VM_TIMEOUT)
        try:
            conn, _ = self.sock.accept()
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
                self.name = msg.decode(errors="replace")
                if fds:
                    self.master = fds[0]
                    for extra in fds[1:]:
                        os.close(extra)
            self._got_master.set()
            while self.master is not None:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: every slave closed
                    break
                if not data:
                    break
                self.output += data
        except OSError:
            pass
        finally:
            self._got_master.set()
            self._done.set()

    def write(self, data):
        os.write(self.master, data)

    def wait_master(self, timeout=TIMEOUT):
        assert self._got_master.wait(timeout), "no pty master arrived on the console socket"
        assert self.master is not None, f"the console socket got a message without a descriptor: {self.name!r}"

    def wait_closed(self, timeout=TIMEOUT):
        assert self._done.wait(timeout), f"the terminal stayed open; output so far: {self.output!r}"
        return self.output.decode(errors="replace")

    def close(self):
        self.sock.close()
        if self.master is not None and self._done.is_set():
            os.close(self.master)
            self.master = None
