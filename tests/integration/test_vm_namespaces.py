"""The namespaces of a VM-isolated container's spec. A VM container whose
spec joins a network namespace by path (a pod's,
which CNI configured) takes over that namespace's network: the guest gets
the namespace's address, MAC and default route, is reachable at that
address from the other end of the namespace's veth, and the namespace gets
its configuration back when the container is deleted. Everything here
happens in two network namespaces the test makes."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bundles import VM_TIMEOUT, make_bundle, oci, wait_for  # noqa: F401

VM = ("io.isola.isolation", "vm")
POD_IP, PEER_IP = "10.213.7.2", "10.213.7.1"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def links(netns):
    return {link["ifname"]: link for link in json.loads(ip("-n", netns, "-j", "addr", "show").stdout)}


def ipv4(link):
    return [f'{a["local"]}/{a["prefixlen"]}' for a in link.get("addr_info", []) if a["family"] == "inet"]


@pytest.fixture
def pod_netns(oci):
    """A "pod" namespace as CNI leaves it (eth0 with an address and a
    default route) and a "peer" namespace at the other end of its veth."""
    pod, peer = f"isola-pod-{oci.token}", f"isola-peer-{oci.token}"
    for ns in (pod, peer):
        ip("netns", "add", ns)
    try:
        ip("-n", peer, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", pod)
        ip("-n", pod, "link", "set", "peer0", "name", "eth0")
        ip("-n", pod, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        ip("-n", peer, "addr", "add", f"{PEER_IP}/24", "dev", "eth0")
        for ns in (pod, peer):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", pod, "route", "add", "default", "via", PEER_IP)
        yield pod, peer
    finally:
        for ns in (pod, peer):
            ip("netns", "delete", ns, check=False)


def test_vm_takes_over_the_network_namespace_it_joins(oci, pod_netns, tmp_path):
    pod, peer = pod_netns
    mac = links(pod)["eth0"]["address"]
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.txt").write_text("hello from the peer\n")
    server = subprocess.Popen(["ip", "netns", "exec", peer, "/usr/bin/python3", "-m", "http.server", "8080",
                               "--bind", PEER_IP, "--directory", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        b = oci.bundle("netns", "sh", "-c",
                       "exec 2>&1; cat /sys/class/net/eth0/address; ip -4 -o addr show eth0; ip route | grep default; "
                       f"timeout 20 wget -q -O - http://{PEER_IP}:8080/hello.txt; "
                       "echo listening; echo from the pod | nc -l -p 9000")
        b.annotate(*VM)
        b.namespace("network")["path"] = f"/run/netns/{pod}"
        b.save()
        cid = oci.new_id("netns")
        out = tmp_path / "vm.out"
        oci.ok("create", "--bundle", b.path, cid, stdout=out, timeout=VM_TIMEOUT)
        # The namespace lent its interface: no address of its own now.
        assert ipv4(links(pod)["eth0"]) == []
        keeper = oci.state(cid)["pid"]
        oci.ok("start", cid)
        wait_for(lambda: "listening" in out.read_text(), 60, what="the guest's output")
        lines = out.read_text().splitlines()
        assert lines[0] == mac, lines
        assert f"{POD_IP}/24" in lines[1], lines
        assert f"default via {PEER_IP}" in lines[2], lines
        assert "hello from the peer" in lines, lines

        # The peer reaches the guest at the pod's address (once nc listens).
        replies = []

        def answered():
            replies.append(subprocess.run(["ip", "netns", "exec", peer, "busybox", "nc", "-w", "20", POD_IP, "9000"],
                                          capture_output=True, text=True, timeout=60, input=""))
            return replies[-1].returncode == 0

        wait_for(answered, 30, interval=0.2, what="the guest's nc to answer")
        assert replies[-1].stdout.strip() == "from the pod", replies[-1]
        oci.wait_exit(keeper, timeout=60)
        oci.ok("delete", cid)
    finally:
        server.kill()
        server.wait()
    after = links(pod)
    assert set(after) == {"lo", "eth0"}, after
    assert after["eth0"]["address"] == mac
    assert ipv4(after["eth0"]) == [f"{POD_IP}/24"]
    assert f"default via {PEER_IP}" in ip("-n", pod, "route", "show", "default").stdout


def test_vm_gives_the_namespace_back_after_a_kill(oci, pod_netns):
    """SIGKILL takes the keeper and its monitor at once. One VM has a
    namespace's network at a time; once the killed one is gone the next
    takes it over at once (as a pod's restarted container must, before the
    old one is deleted), and `delete` restores the namespace."""
    pod, _ = pod_netns
    b = oci.bundle("killed", "sleep", "1000")
    b.annotate(*VM)
    b.namespace("network")["path"] = f"/run/netns/{pod}"
    b.save()
    cid = oci.new_id("killed")
    oci.ok("create", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    oci.ok("start", cid)
    assert "isola-tap0" in links(pod)
    second = oci.bundle("second", "sh", "-c", "ip -4 -o addr show eth0")
    second.annotate(*VM)
    second.namespace("network")["path"] = f"/run/netns/{pod}"
    second.save()
    res = oci("run", "--bundle", second.path, oci.new_id("second"), timeout=VM_TIMEOUT)
    assert res.returncode != 0 and f"/run/netns/{pod}" in res.stderr and "another VM container" in res.stderr, res
    keeper = oci.state(cid)["pid"]
    oci.ok("kill", cid, "KILL")
    oci.wait_exit(keeper, timeout=60)
    res = oci("run", "--bundle", second.path, oci.new_id("second"), timeout=VM_TIMEOUT)
    assert res.returncode == 0 and f"{POD_IP}/24" in res.stdout, res
    oci.ok("delete", cid)
    after = links(pod)
    assert set(after) == {"lo", "eth0"}, after
    assert ipv4(after["eth0"]) == [f"{POD_IP}/24"]


def test_vm_never_takes_over_the_engines_network_namespace(oci):
    """What an engine's own namespace would be (a sandbox process on the
    host's network): refused, the host's network untouched."""
    b = oci.bundle("hostns", "true")
    b.annotate(*VM)
    b.namespace("network")["path"] = "/proc/self/ns/net"
    b.save()
    res = oci("run", "--bundle", b.path, oci.new_id("hostns"), timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "the host's (or the engine's) network namespace" in res.stderr, res


def test_vm_joining_a_uts_namespace_by_path_has_its_host_name(oci):
    """A pod's containers join the sandbox's UTS namespace by path; in a
    guest that cannot be joined, so the guest takes its host name."""
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname pod-name-7; touch /dev/null; exec sleep 1000"])
    try:
        wait_for(lambda: open(f"/proc/{holder.pid}/ns/uts").close() is None and subprocess.run(
            ["nsenter", "-t", str(holder.pid), "-u", "hostname"], capture_output=True, text=True).stdout.strip()
            == "pod-name-7", 10, what="the namespace's host name")
        b = oci.bundle("uts", "hostname")
        b.annotate(*VM)
        b.config.pop("hostname", None)  # as containerd writes an application container's spec
        b.namespace("uts")["path"] = f"/proc/{holder.pid}/ns/uts"
        b.save()
        res = oci("run", "--bundle", b.path, oci.new_id("uts"), timeout=VM_TIMEOUT)
        assert res.returncode == 0 and res.stdout.strip() == "pod-name-7", res
    finally:
        holder.kill()
        holder.wait()


def test_vm_takes_over_a_namespace_named_by_a_proc_path(oci, pod_netns):
    """/proc/PID/ns/net (podman's --network container:, a pod's sandbox
    process) names the namespace as well as a file does; the pin isola
    keeps of it goes with the container."""
    pod, _ = pod_netns
    holder = subprocess.Popen(["ip", "netns", "exec", pod, "sleep", "1000"])
    try:
        wait_for(lambda: os.stat(f"/proc/{holder.pid}/ns/net").st_ino == os.stat(f"/run/netns/{pod}").st_ino, 10,
                 what="the holder in the namespace")
        b = oci.bundle("procpath", "sh", "-c", "ip -4 -o addr show eth0")
        b.annotate(*VM)
        b.namespace("network")["path"] = f"/proc/{holder.pid}/ns/net"
        b.save()
        res = oci("run", "--bundle", b.path, oci.new_id("procpath"), timeout=VM_TIMEOUT)
        assert res.returncode == 0 and f"{POD_IP}/24" in res.stdout, res
    finally:
        holder.kill()
        holder.wait()
    assert ipv4(links(pod)["eth0"]) == [f"{POD_IP}/24"]
    assert str(oci.root) not in Path("/proc/self/mountinfo").read_text()


def test_vm_refuses_a_pod_with_host_network(oci):
    """hostNetwork: the CRI leaves the network namespace out of the spec."""
    b = oci.bundle("hostnet", "true")
    b.annotate(*VM)
    b.annotate("io.kubernetes.cri.container-type", "container")
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "network"]
    b.save()
    cid = oci.new_id("hostnet")
    res = oci("create", "--bundle", b.path, cid)
    assert res.returncode != 0 and "hostNetwork" in res.stderr and "linux.namespaces" in res.stderr, res
    assert oci("state", cid).returncode != 0


def test_vm_user_namespace_with_id_mappings(oci):
    """The guest kernel makes the user namespace: the container's root is
    uid 100000 of the guest, and files of the host's root (unmapped) are
    the overflow id, not writable."""
    path = Path(tempfile.mkdtemp(prefix="isola-oci-userns-"))
    try:
        path.chmod(0o755)
        b = make_bundle(path / "bundle", "sh", "-c",
                        "id -u; cat /proc/self/uid_map; stat -c %u /bin; touch /bin/x || echo refused")
        b.annotate(*VM)
        b.linux["namespaces"].append({"type": "user"})
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.save()
        res = oci("run", "--bundle", b.path, oci.new_id("userns"), timeout=VM_TIMEOUT)
        assert res.returncode == 0, res
        lines = res.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", "100000", "65536"], res
        assert lines[2] == "65534" and lines[3] == "refused", res
    finally:
        shutil.rmtree(path, ignore_errors=True)
