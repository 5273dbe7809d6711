"""Bridge networks, published ports and names, in both isolation levels.

Every test runs in a network namespace of its own (conftest's
own_network_namespace): the bridges, NAT tables and published ports isola
makes exist only there, and every packet stays on this machine. Outbound
NAT is tested towards a "remote host" that is another namespace the test
makes, joined to the test's namespace by a veth pair.
"""

import json
import os
import re
import socket
import subprocess
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from containers import IMAGE, box, describe, load_derived_image, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
LEVELS = [pytest.param([], id="process"), pytest.param([VM], id="vm")]


def sh(*args, check=True):
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(args)}: {describe(res)}", pytrace=False)
    return res


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def httpd(page, port=80):
    """A busybox httpd in the foreground serving `page` at /."""
    return ["sh", "-c", f"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p {port} -h /www"]


def fetch(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode().strip()
    except OSError:
        return None


def host_state(box):
    """What a removal must leave as it was: links, the nftables rule set, leases."""
    leases = sorted(str(p.relative_to(box.root)) for p in (box.root / "networks").glob("*/leases/*"))
    links = sorted(re.findall(r"^\d+: ([^:@]+)", sh("ip", "-o", "link").stdout, re.M))
    return {"links": links, "nft": sh("nft", "list", "ruleset").stdout, "leases": leases}


def addresses(box, cid):
    return box.inspect(cid)["NetworkSettings"]["Networks"]


# ---------------------------------------------------------------------------
# Published ports


@pytest.mark.parametrize("level", LEVELS)
def test_published_port_reaches_a_container_http_server(box, level):
    page = "page-" + uuid.uuid4().hex[:8]
    port = free_port()
    cid = box.run_d(*level, "-p", f"{port}:80", "--name", "web", IMAGE, *httpd(page), timeout=BOOT)
    assert box.ok("port", "web").strip() == f"80/tcp -> 0.0.0.0:{port}"
    assert box.ok("port", "web", "80").strip() == f"0.0.0.0:{port}"
    settings = box.inspect(cid)["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    bridge = settings["Networks"]["bridge"]
    # From the host, through 127.0.0.1 and through the bridge's own address.
    for host in ("127.0.0.1", bridge["Gateway"]):
        got = wait_for(lambda: fetch(f"http://{host}:{port}/"), timeout=30, interval=0.3,
                       what=f"the published port on {host}")
        assert got == page
    # From another container, through the host's published port (hairpin).
    res = box.run("--rm", IMAGE, "sh", "-c",
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {bridge['Gateway']} {port}")
    assert page in res.stdout, describe(res)


def test_publish_without_a_host_port_picks_a_free_one(box):
    page = "page-" + uuid.uuid4().hex[:8]
    box.run_d("-p", "127.0.0.1::80", "--name", "web", IMAGE, *httpd(page))
    line = box.ok("port", "web").strip()
    m = re.fullmatch(r"80/tcp -> 127\.0\.0\.1:(\d+)", line)
    assert m, line
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{m.group(1)}/"), timeout=30, what="the chosen port") == page


def test_publish_all_publishes_what_the_image_exposes(box, busybox_layout, tmp_path):
    page = "page-" + uuid.uuid4().hex[:8]
    load_derived_image(box, busybox_layout, tmp_path, "web:1",
                       {"Cmd": httpd(page, port=8000), "ExposedPorts": {"8000/tcp": {}, "53/udp": {}}})
    box.run_d("-P", "--name", "web", "web:1")
    lines = sorted(box.ok("port", "web").splitlines())
    assert len(lines) == 2, lines
    assert re.fullmatch(r"53/udp -> 0\.0\.0\.0:\d+", lines[0]), lines
    m = re.fullmatch(r"8000/tcp -> 0\.0\.0\.0:(\d+)", lines[1])
    assert m, lines
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{m.group(1)}/"), timeout=30, what="the -P port") == page


def test_port_errors_name_the_problem(box):
    res = box("run", "--rm", "-p", "70000:80", IMAGE, "true")
    assert res.returncode == 125 and "70000:80" in res.stderr and "1 to 65535" in res.stderr, describe(res)
    res = box("run", "--rm", "--network", "none", "-p", "8080:80", IMAGE, "true")
    assert res.returncode == 125 and "bridge network" in res.stderr, describe(res)
    port = free_port()
    box.run_d("-p", f"{port}:80", "--name", "first", IMAGE, "sleep", "60")
    res = box("run", "--rm", "-p", f"{port}:80", IMAGE, "true")
    assert res.returncode == 125 and "already published by container first" in res.stderr, describe(res)
    with socket.socket() as s:  # a host process holds this one
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        res = box("run", "--rm", "-p", f"{taken}:80", IMAGE, "true")
        assert res.returncode == 125 and "a host process uses that port" in res.stderr, describe(res)
    # Nothing of the refused containers is left: one container, one lease.
    assert len(box.ids()) == 1
    assert len(list((box.root / "networks").glob("*/leases/*"))) == 1


# ---------------------------------------------------------------------------
# User-defined networks and names


def test_containers_reach_each_other_by_name_across_isolation_levels(box):
    box.ok("network", "create", "appnet")
    proc_page, vm_page = "proc-" + uuid.uuid4().hex[:6], "vm-" + uuid.uuid4().hex[:6]
    box.run_d("--network", "appnet", "--name", "procsrv", IMAGE, *httpd(proc_page))
    vm = box.run_d(VM, "--network", "appnet", "--name", "vmsrv", IMAGE, *httpd(vm_page), timeout=BOOT)

    # A process-isolated client calls the VM-isolated server by name (once
    # its httpd listens) ...
    def from_process_client():
        res = box.run("--rm", "--network", "appnet", IMAGE, "wget", "-qO-", "http://vmsrv/")
        return res.stdout.strip() or None
    assert wait_for(from_process_client, timeout=60, interval=0.5, what="vmsrv by name") == vm_page
    # ... and the VM calls the process-isolated one back.
    def from_vm_client():
        res = box.exec(vm, "wget", "-qO-", "http://procsrv/", timeout=60)
        return res.stdout.strip() or None
    assert wait_for(from_vm_client, timeout=60, interval=0.5, what="procsrv by name from the VM") == proc_page

    # The VM's NIC: eth0 with the leased address and the network's gateway.
    net = addresses(box, vm)["appnet"]
    res = box.sh(vm, "ip -4 addr show dev eth0; ip route", timeout=60)
    assert f"inet {net['IPAddress']}/{net['IPPrefixLen']}" in res.stdout, describe(res)
    assert re.search(rf"^default via {re.escape(net['Gateway'])} dev eth0", res.stdout, re.M), describe(res)


def test_default_network_gives_an_address_but_no_names(box):
    a = box.run_d("--name", "alpha", IMAGE, "sleep", "60")
    ip = addresses(box, a)["bridge"]["IPAddress"]
    res = box.run("--rm", IMAGE, "sh", "-c", f"ping -c1 -W5 {ip} >/dev/null && echo reached; "
                  "nslookup alpha >/dev/null 2>&1 || grep -q alpha /etc/hosts || echo no-name")
    assert res.stdout.split() == ["reached", "no-name"], describe(res)


def test_network_commands(box):
    net_id = box.ok("network", "create", "--subnet", "10.123.0.0/24", "netcmd").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", net_id)
    ls = box.ok("network", "ls")
    assert re.search(r"^\S+\s+bridge\s+bridge\s+\S+\s+isola0$", ls, re.M), ls
    assert re.search(r"^\S+\s+netcmd\s+bridge\s+10\.123\.0\.0/24\s+", ls, re.M), ls
    res = box("network", "create", "--subnet", "10.123.0.0/25", "clash")
    assert res.returncode == 125 and "overlaps network netcmd" in res.stderr, describe(res)
    res = box("network", "create", "host")
    assert res.returncode == 125 and "cannot be none, host, bridge" in res.stderr, describe(res)
    res = box("run", "--rm", "--network", "nosuch", IMAGE, "true")
    assert res.returncode == 125 and "no such network" in res.stderr, describe(res)

    cid = box.run_d("--name", "member", IMAGE, "sleep", "600")
    # Connected while running: a second interface at once, and in the hosts file.
    box.ok("network", "connect", "netcmd", "member")
    info = json.loads(box.ok("network", "inspect", "netcmd"))[0]
    assert info["IPAM"]["Config"] == [{"Subnet": "10.123.0.0/24", "Gateway": "10.123.0.1"}]
    member = info["Containers"][cid]
    assert member["Name"] == "member" and member["IPv4Address"].startswith("10.123.0.")
    addr = member["IPv4Address"].split("/")[0]
    res = box.sh(cid, "ip -4 -o addr show dev eth1")
    assert f"inet {addr}/24" in res.stdout, describe(res)
    res = box("network", "rm", "netcmd")
    assert res.returncode == 125 and "1 container(s) use it" in res.stderr, describe(res)
    box.ok("network", "disconnect", "netcmd", "member")
    res = box.sh(cid, "ls /sys/class/net")
    assert sorted(res.stdout.split()) == ["eth0", "lo"], describe(res)
    assert box.ok("network", "rm", "netcmd").strip() == "netcmd"
    assert "netcmd" not in box.ok("network", "ls")
    assert "isola-" + net_id[:8] not in sh("ip", "-o", "link").stdout


def test_network_container_shares_the_namespace(box):
    first = box.run_d("--name", "first", IMAGE, "sleep", "600")
    res = box.run("--rm", "--network", "container:first", IMAGE, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert addresses(box, first)["bridge"]["IPAddress"] + "/" in res.stdout, describe(res)
    res = box("run", "--rm", VM, "--network", "container:first", IMAGE, "true")
    assert res.returncode == 125 and "cannot share another container's" in res.stderr, describe(res)


# ---------------------------------------------------------------------------
# Outbound NAT, towards a "remote host" in a namespace of the test's own


class _Recorder(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.clients.append(self.client_address[0])
        body = b"remote-ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def remote_host():
    """A namespace "remote" reached through a veth pair: 192.0.2.1 there,
    192.0.2.2 here (the test's namespace, the "host"). It serves HTTP on
    192.0.2.1:8000 and records the client addresses it sees."""
    name = "isola-remote-" + uuid.uuid4().hex[:8]
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", "to-remote", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "addr", "add", "192.0.2.2/24", "dev", "to-remote")
        sh("ip", "link", "set", "to-remote", "up")
        for cmd in (["addr", "add", "192.0.2.1/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    ["link", "set", "lo", "up"]):
            sh("ip", "-n", name, *cmd)
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        remote = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(remote)
            server = HTTPServer(("192.0.2.1", 8000), _Recorder)
        finally:
            _setns(home)
            os.close(home)
            os.close(remote)
        server.clients = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server
        server.shutdown()
        server.server_close()
    finally:
        sh("ip", "netns", "del", name, check=False)


def _setns(fd):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@pytest.mark.parametrize("level", LEVELS)
def test_outbound_connections_leave_with_the_hosts_address(box, remote_host, level):
    res = box.run("--rm", *level, IMAGE, "wget", "-qO-", "http://192.0.2.1:8000/", timeout=BOOT)
    assert res.stdout.strip() == "remote-ok", describe(res)
    # Masqueraded: the remote host saw the host's address, not the container's.
    assert remote_host.clients == ["192.0.2.2"]


# ---------------------------------------------------------------------------
# Nothing left behind


@pytest.mark.parametrize("level", LEVELS)
def test_removal_leaves_no_link_rule_or_lease(box, level):
    box.ok("network", "create", "tidy")
    box.run("--rm", "--network", "tidy", IMAGE, "true")  # the bridges exist from here on
    box.run("--rm", IMAGE, "true")
    before = host_state(box)
    port = free_port()
    cid = box.run_d(*level, "--network", "tidy", "-p", f"{port}:80", IMAGE, *httpd("x"), timeout=BOOT)
    if not level:  # a second network, connected while running
        box.ok("network", "connect", "bridge", cid)
    during = host_state(box)
    assert during != before  # something was made: a veth or tap, rules, a lease
    assert f"dport {port}" in during["nft"]
    box.rm_f(cid)
    assert host_state(box) == before


@pytest.mark.parametrize("level", LEVELS)
def test_kill_9_of_the_monitor_then_rm_f_leaves_nothing(box, level):
    box.run("--rm", IMAGE, "true")
    before = host_state(box)
    cid = box.run_d(*level, "-p", f"{free_port()}:80", IMAGE, "sleep", "600", timeout=BOOT)
    monitor = box.inspect(cid)["State"]["MonitorPid"]
    os.kill(monitor, 9)
    wait_for(lambda: box.inspect(cid)["State"]["Status"] == "exited" or None, timeout=60,
             what="the container to be seen as exited")
    box.rm_f(cid)
    assert host_state(box) == before


def test_vm_worker_holds_only_its_tap_and_cannot_administer_networks(box):
    cid = box.run_d(VM, IMAGE, "sleep", "600", timeout=BOOT)
    worker = box.inspect(cid)["VM"]["WorkerPid"]
    taps = []
    for fd in os.listdir(f"/proc/{worker}/fd"):
        try:
            info = Path(f"/proc/{worker}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        taps += re.findall(r"^iff:\s*(\S+)", info, re.M)
    assert taps == ["it" + cid[:10] + "0"], f"the worker's tap descriptors: {taps}"
    status = Path(f"/proc/{worker}/status").read_text()
    bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    assert not bounding & (1 << 12), "the worker may gain CAP_NET_ADMIN"


def test_the_hosts_loopback_is_not_reachable_through_the_bridge(box, tmp_path):
    """route_localnet on the bridge (for ports published on 127.0.0.1) must
    not let a neighbour on the bridge reach the host's 127.0.0.1 services
    (CVE-2020-8558). The neighbour is a namespace the test owns, with the
    control a container with CAP_NET_RAW has over its packets: it routes
    127.0.0.0/8 to the bridge's gateway."""
    port = free_port()
    page = "page-" + uuid.uuid4().hex[:8]
    box.run_d("-p", f"127.0.0.1:{port}:80", IMAGE, *httpd(page))
    gateway = json.loads(box.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
    secret = socket.socket()
    secret.bind(("127.0.0.1", 0))
    secret.listen()
    secret.settimeout(0.5)
    name = "isola-neighbour-" + uuid.uuid4().hex[:8]
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", "nb0", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", "nb0", "master", "isola0", "up")
        prefix = gateway.rsplit(".", 2)[0]
        for cmd in (["addr", "add", f"{prefix}.255.250/16", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    ["route", "add", "127.0.0.0/8", "via", gateway, "dev", "eth0"]):
            sh("ip", "-n", name, *cmd)
        for knob in ("all", "eth0"):
            sh("ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv4.conf.{knob}.route_localnet=1")
        res = sh("ip", "netns", "exec", name, "timeout", "3", "bash", "-c",
                 f"exec 3<>/dev/tcp/127.0.0.1/{secret.getsockname()[1]}", check=False)
        with pytest.raises(socket.timeout):
            secret.accept()
        assert res.returncode != 0, describe(res)
    finally:
        sh("ip", "netns", "del", name, check=False)
        secret.close()
    # The published port on 127.0.0.1 still works (its replies come back in).
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"), timeout=30, what="the published port") == page
