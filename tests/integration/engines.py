"""Real OCI engines driving isola-runtime: podman (with conmon) and
containerd (with its runc v2 shim and ctr), from Debian, each on private
state so that nothing of the host's own engines is touched.

Both engines get the busybox image that scripts/make-busybox-image builds,
as an OCI layout tar. Networking is off (`--network none`; ctr gives no
network): the tests touch no host interface.
"""

import json
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

    def __init__(self, base, extra_config="", *, wrapper=(), namespace=None):
        """wrapper: a command that execs containerd (say, in a network
        namespace of its own); namespace: ctr's --namespace."""
        self.base = Path(base)
        self.namespace = namespace
        self.socket = self.base / "containerd.sock"
        self.config = self.base / "config.toml"
        self.config.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.base}/opt"\n' + extra_config)
        self.log = open(self.base / "containerd.log", "w")
        self.proc = subprocess.Popen([*wrapper, "containerd", "--config", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not (self.socket.exists() and self("version").returncode == 0):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.log.flush()
                pytest.fail(f"containerd did not answer (exit {self.proc.poll()}); its log:\n{self.log_tail()}",
                            pytrace=False)
            time.sleep(0.1)

    def cmd(self, *args):
        namespace = ["--namespace", self.namespace] if self.namespace else []
        return ["ctr", "--address", str(self.socket), *namespace, *map(str, args)]

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


# ---------------------------------------------------------------------------
# containerd's CRI plugin, driven the way the kubelet drives it (cri_client.py)

KUBERNETES_DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
PAUSE_SOURCE = Path(__file__).resolve().parent / "cri" / "pause.c"
CRI_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "isola.test/pause:1"
# The pods' network: a bridge and addresses that exist only inside the
# network namespace containerd runs in (made by the test, gone with it).
CRI_NETWORK = "isola-cri-test"
CRI_BRIDGE = "isolacri0"
CRI_SUBNET = "10.219.0.0/24"
# Made by containerd, its shims or the CNI library on first use when missing
# (not configurable in containerd 1.6): removed again when left empty.
CRI_HOST_DIRS = ["/var/lib/cni", "/var/lib/cni/results", "/run/containerd", "/run/containerd/s",
                 "/run/containerd/fifo", "/run/containerd/runc", f"/run/containerd/runc/{CRI_NAMESPACE}"]
# containerd (and so its shims, and CNI's bridge) in a network namespace of
# its own, with only `lo` up; it lives as long as one of them does.
OWN_NETNS = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def kubernetes_doc_config():
    """The containerd TOML of docs/kubernetes.md: its runtime handlers."""
    blocks = re.findall(r"```toml\n(.*?)```", KUBERNETES_DOC.read_text(), re.S)
    assert blocks, f"{KUBERNETES_DOC} has no toml block"
    return "".join(blocks)


def pause_image_tar(workdir):
    """An OCI archive of PAUSE_IMAGE: cri/pause.c, built static here, as
    the image's entrypoint."""
    import imagegen

    workdir = Path(workdir)
    binary = workdir / "pause"
    res = run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(PAUSE_SOURCE)])
    if res.returncode != 0:
        pytest.fail(f"building {PAUSE_SOURCE}: {describe(res)}", pytrace=False)
    layer = imagegen.Layer([imagegen.File("pause", binary.read_bytes(), mode=0o755)])
    image = imagegen.Image([layer], tags=[PAUSE_IMAGE],
                           config={"Entrypoint": ["/pause"], "Env": list(imagegen.DEFAULT_ENV)})
    return Path(imagegen.save("oci-tar", image, workdir / "pause.tar"))


def cgroup_mounts():
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            out.append(left.split()[4])
    return out


def remove_cgroup_tree(path):
    """rmdir `path` (absolute in the cgroup hierarchies) and what is below
    it, in every hierarchy; returns the directories that would not go."""
    left = []
    for mount in cgroup_mounts():
        top = Path(mount) / path.lstrip("/")
        if not top.is_dir():
            continue
        dirs = sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True)
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                left.append(d)
    return left


class CriContainerd(Containerd):
    """containerd with its CRI plugin configured as for a kubelet: the runtime
    handlers of docs/kubernetes.md, a pause image built here, CNI (Debian's
    plugins) with a bridge and host-local addresses, everything under `base`.

    containerd runs in a network namespace of its own, so the bridge, the
    pods' veths and their addresses exist only there (the `node` method runs
    a command in it); the pods' network namespaces are mounted under its
    state directory. Pods get cgroups below `cgroup_root`, removed at stop.
    `cri` is a cri_client.CRI on its socket, `pb` the compiled messages."""

    def __init__(self, base, pb, runtimes_config=None):
        from cri_client import CRI

        base = Path(base)
        base.mkdir(parents=True, exist_ok=True)
        self.pb = pb
        self.cgroup_root = f"/isola-cri-{os.urandom(4).hex()}"
        self.created_host_dirs = [d for d in CRI_HOST_DIRS if not os.path.exists(d)]
        self.cni_conf, self.ipam_dir = base / "cni", base / "cni-ipam"
        self.cni_conf.mkdir(exist_ok=True)
        (self.cni_conf / "10-isola-cri.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": CRI_NETWORK,
            "plugins": [
                {"type": "bridge", "bridge": CRI_BRIDGE, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.ipam_dir),
                          "ranges": [[{"subnet": CRI_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "loopback"}]}, indent=1))
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        config = (
            f"{cri}\n"
            f'  sandbox_image = "{PAUSE_IMAGE}"\n'
            # Without CAP_SYS_RESOURCE, the pause container's oom_score_adj
            # of -998 is refused (by runc too): keep it within what we may set.
            "  restrict_oom_score_adj = true\n"
            "  netns_mounts_under_state_dir = true\n"
            '  stream_server_address = "127.0.0.1"\n'
            f"  [{cri[1:-1]}.cni]\n"
            '    bin_dir = "/usr/lib/cni"\n'
            f'    conf_dir = "{self.cni_conf}"\n'
            f"  [{cri[1:-1]}.containerd]\n"
            '    default_runtime_name = "runc"\n'
            + (runtimes_config if runtimes_config is not None else kubernetes_doc_config()))
        self.cri = None
        try:
            super().__init__(base, config, wrapper=OWN_NETNS, namespace=CRI_NAMESPACE)
            self.cri = CRI(self.socket, pb)
            wait_for(self.ready, 60, "the CRI plugin to report RuntimeReady and NetworkReady")
            self.import_image(pause_image_tar(base))
        except BaseException:
            self.stop()
            raise

    def ready(self):
        try:
            conditions = self.cri.Status().status.conditions
        except Exception:
            return False
        return {c.type for c in conditions if c.status} >= {"RuntimeReady", "NetworkReady"}

    def import_image(self, tar, *names):
        """Import an OCI archive; tag its (one) image with `names` too."""
        out = self("images", "import", tar, check=True).stdout
        [source] = re.findall(r"^unpacking (\S+) \(", out, re.M) or [None]
        for name in names:
            self("images", "tag", "--force", source, name, check=True)

    def node(self, *cmd, timeout=TIMEOUT):
        """Run a command in containerd's network namespace: the node's
        side of the pods' network."""
        return run(["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", *map(str, cmd)], timeout=timeout)

    def shim_processes(self):
        """PIDs of the shims of this containerd (their -address is our socket)."""
        out = []
        for line in host_processes().splitlines():
            pid, _, args = line.strip().partition(" ")
            if "containerd-shim" in args and f"-address {self.socket}" in args:
                out.append(int(pid))
        return out

    def stop(self):
        if self.cri is not None:
            try:
                self.cri.remove_all()
            except Exception:
                pass  # what the CRI could not remove, ctr does below
            self.cri.close()
        if hasattr(self, "proc"):
            super().stop()
        wait_for(lambda: not self.shim_processes(), 30, "containerd's shims to exit")
        left = remove_cgroup_tree(self.cgroup_root)
        for d in sorted(self.created_host_dirs, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        assert not left, f"cgroups left behind: {left}"
