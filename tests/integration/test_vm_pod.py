"""A Kubernetes pod in one VM, through isola-runtime as containerd's CRI
calls it (docs/pod-vm-design.md): the pod's sandbox container boots the
VM and takes over the pod's network namespace; a container annotated as a
further container of that pod runs inside the same VM, in the sandbox's
network, IPC and UTS namespaces there, with its own root, mounts and exit
status, and a keeper on the host standing in for it. test_cri.py shows
the same through containerd; this module shows the runtime's side and
its refusals. The pod's network namespace is one the test makes."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from bundles import VM_TIMEOUT, oci, wait_for  # noqa: F401
from checks import mountpoints
from test_vm_namespaces import POD_IP, VM, ipv4, links, pod_netns  # noqa: F401

SANDBOX = ("io.kubernetes.cri.container-type", "sandbox")


def qemus():
    return set(subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout.split())


def start_sandbox(oci, pod, hostname="pod-host"):
    """The pause container of a pod whose network namespace is `pod`."""
    b = oci.bundle("pause", "sleep", "1000")
    b.annotate(*VM)
    b.annotate(*SANDBOX)
    b.namespace("network")["path"] = f"/run/netns/{pod}"
    b.config["hostname"] = hostname
    b.save()
    sid = oci.new_id("pause")
    oci.ok("create", "--bundle", b.path, sid, timeout=VM_TIMEOUT)
    oci.ok("start", sid)
    return sid


def member_bundle(oci, sid, name, *args, sandbox_id=None):
    """A further container of the pod, as containerd's CRI writes it: the
    sandbox keeper's namespaces by /proc path, and the CRI's annotations."""
    keeper = oci.state(sid)["pid"]
    b = oci.bundle(name, *args)
    b.annotate(*VM)
    b.annotate("io.kubernetes.cri.container-type", "container")
    b.annotate("io.kubernetes.cri.sandbox-id", sandbox_id or sid)
    b.config.pop("hostname", None)
    for kind in ("network", "uts", "ipc"):
        b.namespace(kind)["path"] = f"/proc/{keeper}/ns/{kind if kind != 'network' else 'net'}"
    b.save()
    return b


def test_a_pod_sandbox_takes_over_the_pods_network(oci, pod_netns):
    """The sandbox boots the pod's VM with the pod's address, and gives the
    namespace back when it goes."""
    pod, _ = pod_netns
    b = oci.bundle("sandbox", "sh", "-c", "hostname; busybox ip -4 -o addr show eth0")
    b.annotate(*VM)
    b.annotate(*SANDBOX)
    b.namespace("network")["path"] = f"/run/netns/{pod}"
    b.config["hostname"] = "pod-host-1"
    b.save()
    res = oci("run", "--bundle", b.path, oci.new_id("sandbox"), timeout=VM_TIMEOUT)
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == "pod-host-1" and f"{POD_IP}/24" in lines[1], res
    assert set(links(pod)) == {"lo", "eth0"} and ipv4(links(pod)["eth0"]) == [f"{POD_IP}/24"]


def test_pod_containers_share_the_sandboxs_vm(oci, pod_netns):
    """Two containers of a pod: one VM worker on the host, one guest kernel
    (boot ID), the pod's network and host name, each its own root file
    system, its own exit code, and exec into either."""
    pod, _ = pod_netns
    before = qemus()
    sid = start_sandbox(oci, pod, "pod-host-2")
    workers = qemus() - before
    assert len(workers) == 1, workers
    pod_boot_id = oci.ok("exec", sid, "cat", "/proc/sys/kernel/random/boot_id").stdout
    server = member_bundle(oci, sid, "server", "sh", "-c",
                           "mkdir -p /www && echo from-the-server > /www/index.html && "
                           "busybox httpd -p 127.0.0.1:8080 -h /www && "
                           "trap 'exit 0' TERM && while :; do sleep 1; done")
    srv = oci.new_id("server")
    oci.ok("create", "--bundle", server.path, srv, timeout=VM_TIMEOUT)
    assert oci.status(srv) == "created"
    oci.ok("start", srv)
    assert oci.status(srv) == "running"
    keeper = oci.state(srv)["pid"]
    assert Path(f"/proc/{keeper}/comm").read_text().strip() == "isola-keeper"

    client = member_bundle(oci, sid, "client", "sh", "-c",
                           "hostname; cat /proc/sys/kernel/random/boot_id; busybox ip -4 -o addr show eth0; "
                           "for i in $(seq 50); do busybox wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.2; done; "
                           "test -e /www; echo www=$?; exit 3")
    res = oci("run", "--bundle", client.path, oci.new_id("client"), timeout=VM_TIMEOUT)
    assert res.returncode == 3, res
    lines = res.stdout.splitlines()
    assert lines[0] == "pod-host-2", res
    assert lines[1] + "\n" == pod_boot_id and pod_boot_id != Path("/proc/sys/kernel/random/boot_id").read_text()
    assert f"{POD_IP}/24" in lines[2], res
    assert "from-the-server" in lines and "www=1" in lines, res  # the server's files are its own
    assert qemus() - before == workers

    res = oci.ok("exec", srv, "cat", "/www/index.html")
    assert res.stdout == "from-the-server\n"
    # The server stops on a signal through its keeper; the pod goes on.
    oci.ok("kill", srv, "TERM")
    assert os.WEXITSTATUS(oci.wait_exit(keeper, timeout=60)) == 0
    assert oci.status(srv) == "stopped"
    assert oci.ok("exec", sid, "true").returncode == 0
    oci.ok("delete", srv)
    oci.ok("delete", "--force", sid)
    wait_for(lambda: not (qemus() & workers), 30, what="the pod's VM to go")
    assert ipv4(links(pod)["eth0"]) == [f"{POD_IP}/24"]


def test_a_pod_containers_bind_mounts_reach_it(oci, pod_netns, tmp_path):
    """Bind mounts made on the host after the VM booted (a directory, read
    and written; a single file, as /etc/hosts is) reach the container, and
    nothing of them stays mounted anywhere once it is deleted."""
    pod, _ = pod_netns
    sid = start_sandbox(oci, pod)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from-the-host\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.9 somewhere\n")
    b = member_bundle(oci, sid, "binds", "sh", "-c",
                      "cat /data/in /etc/hosts; echo from-the-guest > /data/out")
    b.add_mount("/data", "bind", str(shared), ["rbind", "rw"])
    b.add_mount("/etc/hosts", "bind", str(hosts), ["bind", "ro"])
    b.save()
    cid = oci.new_id("binds")
    res = oci("run", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    assert res.returncode == 0, res
    assert res.stdout == "from-the-host\n10.0.0.9 somewhere\n", res
    assert (shared / "out").read_text() == "from-the-guest\n"
    assert oci("state", cid).returncode != 0  # run deletes it
    keeper = oci.state(sid)["pid"]
    share = [d for d in Path("/run/isola").glob("*/pod")]
    assert all(not any(d.iterdir()) for d in share), [list(d.iterdir()) for d in share]
    assert not [m for m in mountpoints() if "/pod/" in m]
    worker_mounts = subprocess.run(["nsenter", "-t", str(keeper), "-m", "-p", "--", "sh", "-c",
                                    "cat /proc/*/mountinfo"], capture_output=True, text=True).stdout
    assert cid not in worker_mounts


def test_killing_a_pod_containers_keeper_ends_it_in_the_guest(oci, pod_netns):
    """SIGKILL cannot be passed on: it kills the keeper, and with the
    keeper's session gone the container's processes in the VM go too. (The
    container shares the pod's PID namespace, as a pod with
    shareProcessNamespace does, so the sandbox sees its processes.)"""
    pod, _ = pod_netns
    sid = start_sandbox(oci, pod)
    b = member_bundle(oci, sid, "victim", "sleep", "1234")
    b.namespace("pid")["path"] = f"/proc/{oci.state(sid)['pid']}/ns/pid"
    b.save()
    cid = oci.new_id("victim")
    oci.ok("create", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    oci.ok("start", cid)
    keeper = oci.state(cid)["pid"]
    assert "sleep 1234" in oci.ok("exec", sid, "ps", "-o", "args").stdout
    oci.ok("kill", cid, "KILL")
    oci.wait_exit(keeper, timeout=30)
    wait_for(lambda: "sleep 1234" not in oci.ok("exec", sid, "ps", "-o", "args").stdout, 30,
             what="the container's process in the guest to go")
    oci.ok("delete", cid)


def test_a_pod_container_needs_its_sandboxs_vm(oci, pod_netns):
    """A container of a pod whose sandbox is not a VM of this runtime root
    is refused, naming the sandbox, and nothing of it is left."""
    pod, _ = pod_netns
    sid = start_sandbox(oci, pod)
    b = member_bundle(oci, sid, "orphan", "true", sandbox_id="no-such-sandbox")
    cid = oci.new_id("orphan")
    res = oci("create", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "no-such-sandbox" in res.stderr and "same (VM) runtime class" in res.stderr, res
    assert oci("state", cid).returncode != 0
    # A namespace of the host the guest cannot join (a cgroup namespace by path) is refused too.
    b = member_bundle(oci, sid, "userns", "true")
    b.linux["namespaces"].append({"type": "cgroup", "path": "/proc/self/ns/cgroup"})
    b.save()
    res = oci("create", "--bundle", b.path, oci.new_id("cgroupns"), timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "not the cgroup namespace" in res.stderr, res
    assert not any(any(d.iterdir()) for d in Path("/run/isola").glob("*/pod"))
