"""A VM-isolated container with a network interface (the guest side).

The host side (bridge, addresses, nftables) is not isola's yet, so each test
builds its own in a network namespace of its own: a bridge tbr0 with
10.203.0.1/24 and a tap enslaved to it, and runs isola inside that
namespace with `nsenter --net` (not `ip netns exec`, which remounts /sys
and hides the cgroup mounts). The VM gets the tap through the internal
option --x-vm-tap NAME,ADDRESS/PREFIX,GATEWAY.

The guest needs the network modules in the guest kernel cache
(modules/net-order, written by scripts/guest-kernel); ISOLA_CACHE names
another cache, as for isola itself."""

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from containers import IMAGE, box, describe, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
HOST_ADDR = "10.203.0.1"
GUEST_ADDR = "10.203.0.2"
TAP = "tvmtap0"


def sh(*args, check=True):
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(args)}: {describe(res)}", pytrace=False)
    return res


def guest_cache():
    return Path(os.environ.get("ISOLA_CACHE") or "/var/cache/isola") / "guest" / "current"


@pytest.fixture
def netns():
    """A network namespace with bridge tbr0 (10.203.0.1/24) and tap TAP on
    it, both up, as the host's network set-up will leave them. Deleting the
    namespace removes the bridge and the tap, also after a failure."""
    if not (guest_cache() / "modules" / "net-order").exists():
        pytest.fail(f"{guest_cache()} has no network modules (modules/net-order); run scripts/guest-kernel",
                    pytrace=False)
    name = "isola-vmnet-" + uuid.uuid4().hex[:8]
    sh("ip", "netns", "add", name)
    try:
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "tbr0", "type", "bridge"],
                    ["addr", "add", HOST_ADDR + "/24", "dev", "tbr0"],
                    ["link", "set", "tbr0", "up"],
                    ["tuntap", "add", "dev", TAP, "mode", "tap"],
                    ["link", "set", TAP, "master", "tbr0"],
                    ["link", "set", TAP, "up"]):
            sh("ip", "-n", name, *cmd)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def netbox(box, netns):
    """The `box` fixture with every isola command run inside `netns`. Its
    containers are removed before the namespace goes."""
    plain = box.cmd
    box.cmd = lambda *args: ["nsenter", f"--net=/run/netns/{netns}", *plain(*args)]
    box.netns = netns
    try:
        yield box
    finally:
        box.note_ids()
        for cid in sorted(box.created):
            box("rm", "-f", cid)
        box.cmd = plain


def in_netns(ns, *args, timeout=30):
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_vm_container_gets_eth0_and_is_reached_from_the_host_side(netbox):
    page = "served-from-the-guest-" + uuid.uuid4().hex[:8]
    cid = netbox.run_d(VM, "--x-vm-tap", f"{TAP},{GUEST_ADDR}/24,{HOST_ADDR}", IMAGE, "sh", "-c",
                       f"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 8080 -h /www",
                       timeout=BOOT)

    res = netbox.sh(cid, "ip -4 addr show dev eth0; ip route; cat /sys/class/net/eth0/address", timeout=60)
    assert res.returncode == 0, describe(res)
    assert f"inet {GUEST_ADDR}/24" in res.stdout, describe(res)
    assert re.search(rf"^default via {re.escape(HOST_ADDR)} dev eth0", res.stdout, re.M), describe(res)
    # The MAC is derived from the container's ID: stable, local, unicast.
    mac = "02:" + ":".join(cid[i:i + 2] for i in range(0, 10, 2))
    assert res.stdout.split()[-1] == mac, describe(res)

    res = netbox.exec(cid, "ping", "-c1", "-W5", HOST_ADDR, timeout=60)
    assert res.returncode == 0, describe(res)
    assert "1 packets received" in res.stdout, describe(res)

    def fetch():
        r = in_netns(netbox.netns, "wget", "-qO-", "-T", "5", f"http://{GUEST_ADDR}:8080/")
        return r.stdout.strip() if r.returncode == 0 else None
    assert wait_for(fetch, timeout=30, interval=0.5, what="the guest's httpd from the host side") == page

    # The worker holds the tap (passed as a descriptor: it never opened it by
    # name) and has no capability for networks.
    worker = netbox.inspect(cid)["VM"]["WorkerPid"]
    taps = []
    for fd in os.listdir(f"/proc/{worker}/fd"):
        try:
            info = Path(f"/proc/{worker}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        taps += re.findall(r"^iff:\s*(\S+)", info, re.M)
    assert taps == [TAP], f"the worker's tap descriptors: {taps}"
    status = Path(f"/proc/{worker}/status").read_text()
    bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    assert not bounding & (1 << 12), "the worker may gain CAP_NET_ADMIN"
    netbox.rm_f(cid)


def test_vm_container_without_a_network_has_no_nic(netbox):
    res = netbox.run("--rm", VM, IMAGE, "ls", "/sys/class/net", timeout=BOOT)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["lo"], describe(res)


def test_a_tap_that_does_not_exist_is_an_engine_error(netbox):
    res = netbox.run("--rm", VM, "--x-vm-tap", f"nosuchtap9,{GUEST_ADDR}/24,{HOST_ADDR}", IMAGE, "true",
                     timeout=BOOT)
    assert res.returncode == 125, describe(res)
    assert "nosuchtap9" in res.stderr and "no such interface" in res.stderr, describe(res)


@pytest.mark.parametrize("value, complaint", [
    (f"{TAP},{GUEST_ADDR},{HOST_ADDR}", "prefix"),
    (f"{TAP},{GUEST_ADDR}/24,10.9.9.9", "outside the subnet"),
    (f"{TAP},{GUEST_ADDR}/24", "NAME,ADDRESS/PREFIX,GATEWAY"),
    (f"a/b,{GUEST_ADDR}/24,{HOST_ADDR}", "interface name"),
])
def test_bad_network_values_are_refused_before_anything_starts(netbox, value, complaint):
    res = netbox.run("--rm", VM, "--x-vm-tap", value, IMAGE, "true")
    assert res.returncode == 125, describe(res)
    assert complaint in res.stderr, describe(res)
    assert netbox.ids() == [], "a refused run left a container"


def test_a_network_needs_vm_isolation(netbox):
    res = netbox.run("--rm", "--x-vm-tap", f"{TAP},{GUEST_ADDR}/24,{HOST_ADDR}", IMAGE, "true")
    assert res.returncode == 125, describe(res)
    assert "--isolation=vm" in res.stderr, describe(res)
    assert netbox.ids() == [], "a refused run left a container"
