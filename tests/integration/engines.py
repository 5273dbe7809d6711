"""Real OCI engines driving isola-runtime: podman (with conmon) and
containerd (with its runc v2 shim and ctr), from Debian, each on private
state so that nothing of the host's own engines is touched.

Both engines get the busybox image that scripts/make-busybox-image builds,
as an OCI layout tar. Networking is off (`--network none`; ctr gives no
network): the tests touch no host interface.
"""

import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

RUNTIME = "/usr/local/bin/isola-runtime"
RUNTIME_VM = "/usr/local/bin/isola-runtime-vm"
TIMEOUT = 120
# On these machines the sandbox lacks CAP_SYS_RESOURCE, so podman's default
# rlimits (1048576) cannot be set.
PODMAN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
VM = "io.isola.isolation=vm"


def layout_tar(layout, dest):
    with tarfile.open(dest, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    return dest


def run(cmd, timeout=TIMEOUT, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s\nstdout: {e.stdout!r}\n"
                    f"stderr: {e.stderr!r}", pytrace=False)


def describe(res):
    return f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"


def host_processes():
    """Every host process's command line, as the host's ps shows them."""
    return run(["ps", "-eo", "pid=,args="]).stdout


def host_kernel():
    return os.uname().release


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


class Podman:
    """`podman` with private storage, run directory and network config,
    cgroupfs (these machines run no systemd) and isola-runtime."""

    def __init__(self, base, runtime=RUNTIME):
        self.base = Path(base)
        conf = self.base / "containers.conf"
        # podman passes --log-format=json only to runtimes it knows speak it.
        conf.write_text('[engine]\nruntime_supports_json = ["crun", "runc", "isola-runtime"]\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf))
        self.prefix = ["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "runroot"),
                       "--tmpdir", str(self.base / "tmp"), "--network-config-dir", str(self.base / "net"),
                       "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime]

    def cmd(self, *args):
        return [*self.prefix, *map(str, args)]

    def __call__(self, *args, timeout=TIMEOUT, check=False, **kw):
        res = run(self.cmd(*args), timeout=timeout, env=self.env, **kw)
        if check and res.returncode != 0:
            pytest.fail(f"podman {' '.join(map(str, args))}: {describe(res)}", pytrace=False)
        return res

    def run_args(self, isolation):
        extra = ["--annotation", VM] if isolation == "vm" else []
        return ["--network", "none", *PODMAN_LIMITS, *extra]

    def cleanup(self):
        self("rm", "-a", "-f", "-t", "0", timeout=180)


def podman_with_busybox(base, busybox_layout):
    """A Podman in `base` with the busybox layout loaded."""
    p = Podman(base)
    p("load", "-i", layout_tar(busybox_layout, Path(base) / "busybox.tar"), check=True)
    return p


class Containerd:
    """A containerd daemon on a private socket, root and state, with the CRI
    plugin (and so Kubernetes' runtime classes) configured from `extra`."""

    def __init__(self, base, extra_config=""):
        self.base = Path(base)
        self.socket = self.base / "containerd.sock"
        self.config = self.base / "config.toml"
        self.config.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.base}/opt"\n' + extra_config)
        self.log = open(self.base / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not (self.socket.exists() and self("version").returncode == 0):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.log.flush()
                pytest.fail(f"containerd did not answer (exit {self.proc.poll()}); its log:\n{self.log_tail()}",
                            pytrace=False)
            time.sleep(0.1)

    def cmd(self, *args):
        return ["ctr", "--address", str(self.socket), *map(str, args)]

    def __call__(self, *args, timeout=TIMEOUT, check=False, **kw):
        res = run(self.cmd(*args), timeout=timeout, **kw)
        if check and res.returncode != 0:
            pytest.fail(f"ctr {' '.join(map(str, args))}: {describe(res)}\ncontainerd log:\n"
                        f"{self.log_tail()}", pytrace=False)
        return res

    def log_tail(self):
        return (self.base / "containerd.log").read_text(errors="replace")[-3000:]

    def run_args(self, isolation, via="annotation"):
        """ctr run flags selecting isola-runtime and the isolation level:
        the annotation, or the isola-runtime-vm binary name (what a
        Kubernetes RuntimeClass names through the shim's BinaryName)."""
        if isolation == "vm" and via == "binary":
            return ["--runc-binary", RUNTIME_VM]
        extra = ["--annotation", VM] if isolation == "vm" else []
        return ["--runc-binary", RUNTIME, *extra]

    def remove_all(self):
        tasks = self("task", "ls", "-q").stdout.split()
        for t in tasks:
            self("task", "kill", "-s", "SIGKILL", t)
        for t in tasks:
            self("task", "delete", "-f", t)
        for c in self("container", "ls", "-q").stdout.split():
            self("container", "delete", c)

    def stop(self):
        self.remove_all()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        # Shims exit with their last task; snapshots stay mounted only while used.
        mounts = Path("/proc/self/mountinfo").read_text()
        for line in mounts.splitlines():
            target = line.split()[4]
            if target.startswith(str(self.base)):
                subprocess.run(["umount", "-l", target], check=False)


def run_dirs():
    """What isola keeps in /run: one directory per VM's monitor, one per
    isola-runtime container."""
    out = set()
    for d in ("/run/isola", "/run/isola-runtime"):
        try:
            # Not per container: the TSC rate, compiled seccomp filters, VM templates.
            out |= {f"{d}/{n}" for n in os.listdir(d) if n not in ("tsc-khz", "seccomp", "templates")}
        except FileNotFoundError:
            pass
    return out


@pytest.fixture
def no_leaks():
    """Fails a test that leaves a run directory or a VM worker behind."""
    before = run_dirs()
    qemus = set(run(["pgrep", "-f", "qemu-system"]).stdout.split())
    yield
    wait_for(lambda: run_dirs() <= before, 30, "isola's run directories to go")
    left = set(run(["pgrep", "-f", "qemu-system"]).stdout.split()) - qemus
    assert not left, f"VM workers left running: {left}"
