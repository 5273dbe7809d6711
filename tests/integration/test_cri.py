"""isola as Kubernetes runs it: containerd's CRI plugin, driven through the
CRI v1 API the way the kubelet drives it (cri_client.py), with the runtime
handlers of docs/kubernetes.md next to plain runc.

One private containerd serves the module (engines.CriContainerd): its own
root, state and socket under the test's temporary directory, a pause image
built here, CNI (Debian's bridge, host-local and loopback plugins) with a
bridge and subnet that exist only inside the network namespace containerd
runs in. Each test runs its pods to the end (StopPodSandbox and
RemovePodSandbox) and then checks that nothing of them is left: not in the
CRI, not in containerd, no mount, shim, network namespace, veth, address
reservation, runtime state, container cgroup or VM.

Handlers: everything runs on all three. Under isola-vm a pod is one VM
(docs/kubernetes.md): the sandbox boots it and takes over the pod's
network, and every container of the pod runs inside it.
"""
import ipaddress
import os
import re
import subprocess
import time
import sys
import uuid
from pathlib import Path

import pytest

from cri_client import CRIError, compile_proto, container_config, pod_config
from checks import mountpoints
from engines import (CRI_BRIDGE, CRI_SUBNET, PAUSE_IMAGE, CriContainerd, cgroup_mounts, layout_tar,  # noqa: F401
                     no_leaks, wait_for)

BUSYBOX = "docker.io/library/busybox:latest"
HANDLERS = ["runc", "isola", "isola-vm"]
# The handlers a pod's containers run on.
CONTAINER_HANDLERS = HANDLERS
# The handlers whose containers share the pod's namespaces with each other
# (network, UTS, IPC): all of them.
POD_NAMESPACE_HANDLERS = HANDLERS
# Runs until SIGTERM, then exits 0 at once: StopContainer's graceful path.
UNTIL_TERM = "trap 'echo terminated; exit 0' TERM; while :; do sleep 1; done"
EXEC_TIMEOUT = 60
# An HTTP GET with a deadline from the node (busybox 1.35's wget crashes on -T).
FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
# A failing test shows this much of containerd's log from its own run.
LOG_EXCERPT = 6000

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return compile_proto(tmp_path_factory.mktemp("cri-proto"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pb, busybox_layout):
    base = tmp_path_factory.mktemp("cri")
    c = CriContainerd(base, pb)
    try:
        c.import_image(layout_tar(busybox_layout, base / "busybox.tar"), BUSYBOX)
        yield c
    finally:
        c.stop()


def cri_log(path):
    """[(stream, line)] of a container log in the CRI format
    (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`)."""
    out = []
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\S+ (stdout|stderr) [FP] (.*)$", line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m[1], m[2]))
    return out


class Pod:
    def __init__(self, pods, name, hostname=None):
        self.pods, self.cri, self.pb = pods, pods.cri, pods.pb
        uid = uuid.uuid4().hex
        self.log_directory = pods.tmp / "logs" / f"default_{name}_{uid}"
        self.config = pod_config(self.pb, name, uid=uid, hostname=hostname, log_directory=self.log_directory,
                                 cgroup_parent=f"{pods.engine.cgroup_root}/pod{uid}")
        self.id = self.cri.RunPodSandbox(config=self.config, runtime_handler=pods.handler).pod_sandbox_id
        self.containers = []

    def status(self):
        return self.cri.PodSandboxStatus(pod_sandbox_id=self.id).status

    def ip(self):
        return self.status().network.ip

    def create(self, name, command, attempt=0, log_path=None):
        log_path = log_path or f"{name}/{attempt}.log"
        config = container_config(self.pb, name, BUSYBOX, command, attempt=attempt, log_path=log_path)
        cid = self.cri.CreateContainer(pod_sandbox_id=self.id, config=config,
                                       sandbox_config=self.config).container_id
        self.containers.append(cid)
        return cid

    def run(self, name, command, **kw):
        cid = self.create(name, command, **kw)
        self.cri.StartContainer(container_id=cid)
        return cid

    def container(self, cid):
        return self.cri.ContainerStatus(container_id=cid).status

    def wait_state(self, cid, state, timeout=60):
        wait_for(lambda: self.container(cid).state == state, timeout,
                 f"container {cid[:12]} to be {self.pb.ContainerState.Name(state)}")
        return self.container(cid)

    def exec(self, cid, *cmd):
        return self.cri.ExecSync(container_id=cid, cmd=list(cmd), timeout=EXEC_TIMEOUT)

    def remove(self):
        self.cri.StopPodSandbox(pod_sandbox_id=self.id)
        self.cri.RemovePodSandbox(pod_sandbox_id=self.id)


class Pods:
    """The pods of one test on one runtime handler. At the end every pod
    still there is stopped and removed, and nothing of any may be left."""

    def __init__(self, engine, handler, tmp):
        self.engine, self.cri, self.pb = engine, engine.cri, engine.pb
        self.handler, self.tmp = handler, tmp
        self.made = []

    def run(self, name="pod", hostname=None):
        pod = Pod(self, name, hostname)
        self.made.append(pod)
        return pod

    def remove_all(self):
        for pod in self.made:
            try:
                pod.remove()
            except CRIError as e:
                if e.code.name != "NOT_FOUND":
                    raise

    def assert_gone(self):
        """Nothing of this test's pods is left anywhere a user could look."""
        engine = self.engine
        sandboxes = {p.id for p in self.made}
        containers = {c for p in self.made for c in p.containers}
        ids = sandboxes | containers
        assert not {s.id for s in self.cri.ListPodSandbox().items} & sandboxes
        assert not {c.id for c in self.cri.ListContainers().containers} & containers
        for what in ("containers", "tasks"):
            listed = set(engine(what, "ls", "-q", check=True).stdout.split())
            assert not listed & ids, f"containerd still has {what} {listed & ids}"
        # containerd's shims (one per pod) exit once the pod's last task is gone.
        wait_for(lambda: not engine.shim_processes(), 30, "the pods' shims to exit")
        # Root file systems, the pods' /dev/shm and network namespaces: unmounted.
        mounts = [m for m in mountpoints() if m.startswith(f"{engine.base}/")]
        assert not mounts, f"still mounted: {mounts}"
        cri_state = engine.base / "state" / "io.containerd.grpc.v1.cri"
        assert not os.listdir(cri_state / "netns"), os.listdir(cri_state / "netns")
        for d in (cri_state / "sandboxes", cri_state / "containers",
                  engine.base / "root" / "io.containerd.grpc.v1.cri" / "sandboxes",
                  engine.base / "root" / "io.containerd.grpc.v1.cri" / "containers"):
            left = set(os.listdir(d)) & ids if d.exists() else set()
            assert not left, f"{d} still has {left}"
        # The runtime's state (runc's and isola-runtime's, under the shim's --root).
        runtime_root = Path("/run/containerd/runc/k8s.io")
        left = set(os.listdir(runtime_root)) & ids if runtime_root.exists() else set()
        assert not left, f"{runtime_root} still has {left}"
        # CNI: no veth on the node's side, no address reserved, no cached result.
        links = engine.node("ip", "-o", "link", "show").stdout
        names = {m for m in re.findall(r"^\d+: ([^:@]+)", links, re.M)}
        assert names <= {"lo", CRI_BRIDGE}, links
        ipam = engine.ipam_dir
        reserved = [f for _, _, files in os.walk(ipam) for f in files if re.match(r"^[0-9.]+$", f)]
        assert not reserved, f"host-local still reserves {reserved}"
        cache = Path("/var/lib/cni/results")
        cached = [f for f in (os.listdir(cache) if cache.exists() else []) if any(s in f for s in sandboxes)]
        assert not cached, f"CNI results still cached: {cached}"
        # Container cgroups go with their containers; the pods' own cgroup
        # directories are the kubelet's, removed here.
        for pod in self.made:
            parent = pod.config.linux.cgroup_parent
            for mount in cgroup_mounts():
                d = Path(mount) / parent.lstrip("/")
                if d.is_dir():
                    below = [e for e in os.listdir(d) if (d / e).is_dir()]
                    assert not below, f"cgroups left in {d}: {below}"
                    os.rmdir(d)


@pytest.fixture
def pods(engine, handler, tmp_path):
    log = engine.base / "containerd.log"
    start = log.stat().st_size
    p = Pods(engine, handler, tmp_path)
    yield p
    try:
        p.remove_all()
        p.assert_gone()
    finally:
        # Shown only when the test fails: what containerd said meanwhile.
        with open(log, errors="replace") as f:
            f.seek(start)
            excerpt = f.read()
        print(f"--- containerd log during the test (last {LOG_EXCERPT} characters):\n{excerpt[-LOG_EXCERPT:]}")


def test_the_cri_plugin_is_ready_with_its_images(engine):
    cri, pb = engine.cri, engine.pb
    version = cri.Version()
    assert (version.runtime_name, version.runtime_api_version) == ("containerd", "v1"), version
    conditions = {c.type: c.status for c in cri.Status().status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}, conditions
    for name in ("busybox", BUSYBOX, PAUSE_IMAGE):
        image = cri.ImageStatus(image=pb.ImageSpec(image=name)).image
        assert image.id.startswith("sha256:") and image.size > 0, (name, image)
    assert BUSYBOX in {t for i in cri.ListImages().images for t in i.repo_tags}


def sandbox_task_running(engine, sandbox_id):
    return re.search(rf"^{sandbox_id}\s+\d+\s+RUNNING$", engine("tasks", "ls", check=True).stdout, re.M)


@pytest.mark.parametrize("handler", HANDLERS)
def test_pod_sandbox_runs_stops_and_goes(pods, handler):
    cri, pb = pods.cri, pods.pb
    pod = pods.run("sandbox")
    status = pod.status()
    assert status.state == pb.SANDBOX_READY and status.runtime_handler == handler, status
    assert status.metadata.name == "sandbox"
    # The pod's address comes from CNI (host-local on the bridge's subnet),
    # whatever the handler.
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(CRI_SUBNET), status
    [listed] = cri.ListPodSandbox(filter=pb.PodSandboxFilter(id=pod.id)).items
    assert listed.state == pb.SANDBOX_READY and listed.runtime_handler == handler
    # The pause container (under isola-vm, a VM of its own) is containerd's running task.
    assert sandbox_task_running(pods.engine, pod.id), pods.engine("tasks", "ls").stdout

    cri.StopPodSandbox(pod_sandbox_id=pod.id)
    assert pod.status().state == pb.SANDBOX_NOTREADY
    assert not sandbox_task_running(pods.engine, pod.id)
    not_ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert pod.id in {s.id for s in cri.ListPodSandbox(filter=not_ready).items}
    cri.RemovePodSandbox(pod_sandbox_id=pod.id)
    assert pod.id not in {s.id for s in cri.ListPodSandbox().items}
    with pytest.raises(CRIError) as err:
        pod.status()
    assert err.value.code.name == "NOT_FOUND"
    pods.assert_gone()


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_container_lifecycle(pods, handler):
    cri, pb = pods.cri, pods.pb
    pod = pods.run("lifecycle")
    main = pod.create("main", ["sh", "-c", UNTIL_TERM])
    assert pod.container(main).state == pb.CONTAINER_CREATED
    cri.StartContainer(container_id=main)
    running = pod.container(main)
    assert running.state == pb.CONTAINER_RUNNING and running.started_at > 0, running
    [listed] = cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)).containers
    assert (listed.id, listed.metadata.name, listed.state) == (main, "main", pb.CONTAINER_RUNNING)
    exited = pb.ContainerFilter(pod_sandbox_id=pod.id, state=pb.ContainerStateValue(state=pb.CONTAINER_EXITED))
    assert not cri.ListContainers(filter=exited).containers

    res = pod.exec(main, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 4")
    assert (res.stdout, res.stderr, res.exit_code) == (b"to-stdout\n", b"to-stderr\n", 4), res

    # StopContainer sends SIGTERM first: the container exits 0 on its own,
    # long before the grace period is up.
    began = time.monotonic()
    cri.StopContainer(container_id=main, timeout=30)
    took = time.monotonic() - began
    stopped = pod.container(main)
    assert stopped.state == pb.CONTAINER_EXITED and stopped.exit_code == 0, stopped
    assert stopped.reason == "Completed" and took < 20, (stopped, took)
    assert [c.id for c in cri.ListContainers(filter=exited).containers] == [main]

    cri.RemoveContainer(container_id=main)
    with pytest.raises(CRIError) as err:
        cri.ContainerStatus(container_id=main)
    assert err.value.code.name == "NOT_FOUND"
    assert not cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)).containers

    # Stopping the pod stops what still runs in it; removing it removes it.
    late = pod.run("late", ["sh", "-c", UNTIL_TERM])
    assert pod.wait_state(late, pb.CONTAINER_RUNNING)
    cri.StopPodSandbox(pod_sandbox_id=pod.id)
    assert pod.container(late).state == pb.CONTAINER_EXITED
    cri.RemovePodSandbox(pod_sandbox_id=pod.id)
    assert not cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)).containers
    with pytest.raises(CRIError) as err:
        pod.container(late)
    assert err.value.code.name == "NOT_FOUND"
    pods.assert_gone()


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_exit_code_and_log_file(pods, handler):
    pod = pods.run("job")
    cid = pod.run("job", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"], log_path="job/0.log")
    status = pod.wait_state(cid, pods.pb.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (3, "Error"), status
    assert status.started_at > status.created_at > 0 and status.finished_at > status.created_at, status
    # The log is where the pod's log_directory and the container's log_path say.
    log = pod.log_directory / "job" / "0.log"
    assert status.log_path == str(log)
    lines = cri_log(log)
    assert ("stdout", "to-stdout") in lines and ("stderr", "to-stderr") in lines, lines


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_container_stats(pods, handler):
    pod = pods.run("stats")
    cid = pod.run("busy", ["sh", "-c", UNTIL_TERM])
    pod.wait_state(cid, pods.pb.CONTAINER_RUNNING)
    assert pod.exec(cid, "true").exit_code == 0
    stats = pods.cri.ContainerStats(container_id=cid).stats
    assert stats.attributes.id == cid and stats.attributes.metadata.name == "busy", stats
    assert stats.memory.working_set_bytes.value > 0 and stats.memory.usage_bytes.value > 0, stats
    assert stats.cpu.usage_core_nano_seconds.value > 0, stats


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_restart_in_a_running_pod(pods, handler):
    """The kubelet restarts a container that exited by creating it again,
    with the next attempt number, in the same pod."""
    pb = pods.pb
    pod = pods.run("restart")
    first = pod.run("app", ["sh", "-c", "echo attempt 0; exit 1"])
    assert pod.wait_state(first, pb.CONTAINER_EXITED).exit_code == 1
    second = pod.run("app", ["sh", "-c", "echo attempt 1; " + UNTIL_TERM], attempt=1)
    pod.wait_state(second, pb.CONTAINER_RUNNING)
    in_pod = pods.cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)).containers
    assert {(c.id, c.metadata.name, c.metadata.attempt, c.state) for c in in_pod} == {
        (first, "app", 0, pb.CONTAINER_EXITED), (second, "app", 1, pb.CONTAINER_RUNNING)}
    assert pod.status().state == pb.SANDBOX_READY
    wait_for(lambda: ("stdout", "attempt 1") in cri_log(pod.log_directory / "app" / "1.log"), 30,
             "the second attempt's output in its log")
    assert cri_log(pod.log_directory / "app" / "0.log") == [("stdout", "attempt 0")]


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_container_has_the_pod_address_and_the_node_reaches_it(pods, handler):
    pod = pods.run("net")
    ip = pod.ip()
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(CRI_SUBNET)
    web = pod.run("web", ["sh", "-c", "mkdir /www && echo hello-from-$(hostname) > /www/index.html && "
                                      "exec httpd -f -p 8080 -h /www"])
    res = pod.exec(web, "ip", "-4", "-o", "addr", "show", "eth0")
    assert res.exit_code == 0 and f"inet {ip}/" in res.stdout.decode(), res
    # From the node (containerd's network namespace, across CNI's bridge).
    fetch = [sys.executable, "-c", FETCH, f"http://{ip}:8080/"]
    wait_for(lambda: pods.engine.node(*fetch).returncode == 0, 30, f"{ip}:8080 to answer from the node")
    assert pods.engine.node(*fetch).stdout == "hello-from-net\n"


@pytest.mark.parametrize("handler", POD_NAMESPACE_HANDLERS)
def test_containers_of_a_pod_share_localhost_and_hostname(pods, handler):
    pod = pods.run("duo", hostname="duo-host")
    # The server listens on 127.0.0.1 only: reachable from its pod alone.
    pod.run("server", ["sh", "-c", "mkdir /www && hostname > /www/index.html && "
                                   "exec httpd -f -p 127.0.0.1:8080 -h /www"])
    client = pod.run("client", ["sh", "-c", UNTIL_TERM])
    fetch = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]
    wait_for(lambda: pod.exec(client, *fetch).exit_code == 0, 30, "the server to answer on the pod's localhost")
    assert pod.exec(client, *fetch).stdout == b"duo-host\n"
    assert pod.exec(client, "hostname").stdout == b"duo-host\n"


def vm_workers():
    """The VM workers (QEMU) on the host."""
    return set(subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout.split())


@pytest.mark.parametrize("handler", ["isola-vm"])
def test_a_vm_pod_is_one_vm(pods, handler):
    """Under isola-vm the pod, not the container, is the VM: its containers
    share one guest kernel (one boot ID, not the node's), one VM worker on
    the host, and the pod's network and name; each keeps its own exit code,
    log, exec and restart."""
    pb = pods.pb
    before = vm_workers()
    pod = pods.run("vmpod", hostname="vm-pod")
    ip = pod.ip()
    web = pod.run("web", ["sh", "-c", "mkdir /www && hostname > /www/index.html && "
                                      "exec httpd -f -p 8080 -h /www"])
    side = pod.run("side", ["sh", "-c", "echo side-up; " + UNTIL_TERM])
    pod.wait_state(web, pb.CONTAINER_RUNNING)
    pod.wait_state(side, pb.CONTAINER_RUNNING)
    workers = vm_workers() - before
    assert len(workers) == 1, f"the pod has {len(workers)} VM workers: {workers}"

    boot_ids = {pod.exec(c, "cat", "/proc/sys/kernel/random/boot_id").stdout for c in (web, side)}
    host_boot_id = Path("/proc/sys/kernel/random/boot_id").read_bytes()
    assert len(boot_ids) == 1 and host_boot_id not in boot_ids, (boot_ids, host_boot_id)
    assert pod.exec(side, "hostname").stdout == b"vm-pod\n"
    # The side container reaches the web server on the pod's localhost, the
    # node reaches it at the pod's address.
    fetch = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]
    wait_for(lambda: pod.exec(side, *fetch).exit_code == 0, 30, "the server to answer on the pod's localhost")
    assert pod.exec(side, *fetch).stdout == b"vm-pod\n"
    res = pod.exec(side, "ip", "-4", "-o", "addr", "show", "eth0")
    assert res.exit_code == 0 and f"inet {ip}/" in res.stdout.decode(), res
    node_fetch = [sys.executable, "-c", FETCH, f"http://{ip}:8080/"]
    wait_for(lambda: pods.engine.node(*node_fetch).returncode == 0, 30, f"{ip}:8080 to answer from the node")
    # Each container has its own root: a file one writes the other does not see.
    assert pod.exec(side, "sh", "-c", "echo mine > /only-side").exit_code == 0
    assert pod.exec(web, "cat", "/only-side").exit_code != 0
    wait_for(lambda: ("stdout", "side-up") in cri_log(pod.log_directory / "side" / "0.log"), 30,
             "the side container's output in its log")

    # One container ends on its own, with its code; the pod and the other go on.
    job = pod.run("job", ["sh", "-c", "echo job-done; exit 5"])
    assert pod.wait_state(job, pb.CONTAINER_EXITED).exit_code == 5
    assert cri_log(pod.log_directory / "job" / "0.log") == [("stdout", "job-done")]
    pods.cri.StopContainer(container_id=side, timeout=30)
    assert pod.container(side).exit_code == 0
    assert pod.container(web).state == pb.CONTAINER_RUNNING
    assert pod.exec(web, "true").exit_code == 0
    again = pod.run("side", ["sh", "-c", "echo again; " + UNTIL_TERM], attempt=1)
    pod.wait_state(again, pb.CONTAINER_RUNNING)
    assert pod.exec(again, "cat", "/proc/sys/kernel/random/boot_id").stdout in boot_ids
    assert vm_workers() - before == workers

    pod.remove()
    wait_for(lambda: not (vm_workers() & workers), 30, "the pod's VM to go")
    pods.assert_gone()
