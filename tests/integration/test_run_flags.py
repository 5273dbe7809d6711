"""The docker flags of run and create for the container's /etc files, its
process (ulimits, groups, sysctls, /dev/shm, working directory), its cgroup
(cpuset, memory swap and reservation, the OOM killer), host devices, the
stop signal and timeout, --cidfile, -a and --sig-proxy.

What the container sees is checked from inside it; what the user sees with
inspect, the cidfile and stop. The main checks run in both isolation levels;
one VM container checks them all at once (VM boots are slow under TCG)."""

import os
import re
import signal
import subprocess
import time

import pytest

from containers import IMAGE, TIMEOUT, box, cgroup_file, describe, is_v2, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG

# One container shows everything the flags change inside it, then waits for
# its stop signal (a trap: a shell as PID 1 ignores signals it does not trap).
PROBE = ("trap 'echo got-usr1; exit 7' USR1; "
         "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; "
         "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; id; "
         "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward; pwd; echo ready; "
         "while true; do sleep 0.2; done")
PROBE_FLAGS = ["--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
               "--dns", "9.9.9.9", "--dns-search", "example.com", "--dns-option", "ndots:2",
               "--ulimit", "nofile=512:1024", "--shm-size", "8m",
               "--group-add", "audio", "--group-add", "1234",
               "--sysctl", "kernel.shmmax=123456789", "--sysctl", "net.ipv4.ip_forward=1",
               "-w", "/made/here", "--stop-signal", "SIGUSR1", "--stop-timeout", "30",
               "--memory", "256m", "--memory-reservation", "100m", "--memory-swap", "512m"]


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_flags_reach_the_container_and_stop_uses_the_stop_signal(box, isolation):
    extra = [VM] if isolation == "vm" else []
    cid = box.run_d(*extra, *PROBE_FLAGS, IMAGE, "sh", "-c", PROBE, timeout=BOOT)
    logs = wait_for(lambda: (lambda out: out if "ready" in out else None)(box.ok("logs", cid)),
                    timeout=BOOT, what="the probe's output")
    hosts, resolv, rest = logs.split("---\n")
    assert "10.1.2.3\tdb" in hosts.splitlines(), logs
    gw = [l.split("\t")[0] for l in hosts.splitlines() if l.endswith("\tgw")]
    assert gw and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", gw[0]), logs
    resolv_lines = resolv.splitlines()
    assert [l for l in resolv_lines if l.startswith("nameserver")] == ["nameserver 9.9.9.9"], logs
    assert "search example.com" in resolv_lines and "options ndots:2" in resolv_lines, logs
    lines = rest.splitlines()
    assert lines[0:2] == ["512", "1024"], logs  # ulimit -n, -Hn
    assert lines[2].split()[1] == "8192", logs  # /dev/shm: 8m in 1K blocks
    groups = lines[3].split("groups=")[1]
    assert "29(audio)" in groups and "1234" in groups, logs
    assert lines[4:6] == ["123456789", "1"], logs  # the sysctls
    assert lines[6] == "/made/here", logs  # the working directory, created

    config = box.inspect(cid)["Config"]
    assert config["StopSignal"] == "SIGUSR1" and config["StopTimeout"] == 30
    start = time.monotonic()
    box.ok("stop", cid, timeout=BOOT)
    assert time.monotonic() - start < 25, "stop waited for the timeout instead of the trap"
    state = box.state(cid)
    assert state["Status"] == "exited" and state["ExitCode"] == 7, state
    assert "got-usr1" in box.ok("logs", cid)


def test_cgroup_settings(box):
    cid = box.run_d("--cpuset-cpus", "0", "--memory", "64m", "--memory-reservation", "32m",
                    "--memory-swap", "128m", "--oom-kill-disable", IMAGE, "sleep", "1000")
    cpus = cgroup_file(cid, "cpuset", "cpuset.cpus", "cpuset.cpus.effective").read_text().strip()
    assert cpus == "0"
    soft = cgroup_file(cid, "memory", "memory.soft_limit_in_bytes", "memory.low").read_text().strip()
    assert soft == str(32 << 20)
    if not is_v2():
        assert "oom_kill_disable 1" in cgroup_file(cid, "memory", "memory.oom_control", "").read_text()
        memsw = cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes", "")
        if memsw.exists():
            assert memsw.read_text().strip() == str(128 << 20)


def test_device_gives_the_node_and_the_cgroup_rule(box):
    dev = "/dev/cpu_dma_latency"
    st = os.stat(dev)
    res = box.run("--rm", "--device", f"{dev}:/dev/lat", IMAGE, "sh", "-c",
                  "ls -l /dev/lat; head -c 4 /dev/lat | wc -c")
    assert res.returncode == 0, describe(res)
    listing, count = res.stdout.splitlines()
    assert listing.startswith("c") and f"{os.major(st.st_rdev)}, {os.minor(st.st_rdev)}" in listing, res.stdout
    assert count.strip() == "4"
    # Write-only: the device cgroup refuses a read.
    res = box.run("--rm", "--device", f"{dev}:/dev/lat:w", IMAGE, "head", "-c", "4", "/dev/lat")
    assert res.returncode != 0 and "not permitted" in res.stderr, describe(res)
    # Without --device the container has no such node.
    res = box.run("--rm", IMAGE, "ls", "/dev/lat")
    assert res.returncode != 0 and "No such file" in res.stderr, describe(res)


def test_etc_files_with_network_none_and_host(box):
    res = box.run("--rm", "--network", "none", "--add-host", "db:10.1.2.3", "--dns", "1.1.1.1", IMAGE,
                  "sh", "-c", "cat /etc/hosts /etc/resolv.conf")
    assert res.returncode == 0, describe(res)
    assert "10.1.2.3\tdb" in res.stdout.splitlines() and "nameserver 1.1.1.1" in res.stdout.splitlines()
    assert "127.0.0.1\tlocalhost" in res.stdout
    res = box.run("--rm", "--network", "host", "--add-host", "db:10.1.2.3", IMAGE, "cat", "/etc/hosts")
    assert res.returncode == 0, describe(res)
    with open("/etc/hosts") as f:
        host_hosts = f.read()
    assert res.stdout.startswith(host_hosts) and res.stdout.endswith("10.1.2.3\tdb\n"), res.stdout


def test_stop_timeout_and_restart_use_the_containers_settings(box):
    # The process ignores SIGTERM: stop waits --stop-timeout (1s), not 10s.
    cid = box.run_d("--stop-timeout", "1", IMAGE, "sh", "-c", "trap '' TERM; while true; do sleep 0.2; done")
    start = time.monotonic()
    box.ok("stop", cid)
    assert time.monotonic() - start < 6
    # restart stops with the stop signal too.
    cid = box.run_d("--stop-signal", "USR1", IMAGE, "sh", "-c",
                    "trap 'echo got-usr1; exit 0' USR1; echo up; while true; do sleep 0.2; done")
    wait_for(lambda: "up" in box.ok("logs", cid), what="the container's start")
    box.ok("restart", cid)
    wait_for(lambda: box.ok("logs", cid).count("up") == 2, what="the restarted container")
    assert "got-usr1" in box.ok("logs", cid)
    assert box.state(cid)["Status"] == "running"


def test_cidfile(box, tmp_path):
    cidfile = tmp_path / "cid"
    cid = box.create("--cidfile", cidfile, IMAGE, "true")
    assert cidfile.read_text() == cid
    res = box("create", "--cidfile", cidfile, IMAGE, "true")
    assert res.returncode == 125 and res.stderr.startswith("isola: --cidfile: "), describe(res)
    assert "already exists" in res.stderr
    assert box.ids() == [cid]
    # A cidfile that cannot be written once the container is made: the
    # container and its anonymous volume go, the named one stays (as after rm -v).
    res = box("create", "--cidfile", tmp_path / "no-such-dir" / "cid", "-v", "/data", "-v", "kept:/kept", IMAGE, "true")
    assert res.returncode == 125 and "--cidfile" in res.stderr, describe(res)
    assert box.ids() == [cid] and box.ok("volume", "ls", "-q").split() == ["kept"]
    res = box.run("--rm", "--cidfile", tmp_path / "run-cid", IMAGE, "true")
    assert res.returncode == 0, describe(res)
    assert re.fullmatch(r"[0-9a-f]{64}", (tmp_path / "run-cid").read_text())


def test_attach_picks_the_streams(box):
    script = "echo out; echo err >&2"
    res = box.run("--rm", "-a", "stdout", IMAGE, "sh", "-c", script)
    assert (res.returncode, res.stdout, res.stderr) == (0, "out\n", ""), describe(res)
    res = box.run("--rm", "--attach", "STDERR", IMAGE, "sh", "-c", script)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "err\n"), describe(res)
    res = box.run("--rm", "-i", "-a", "stdin", "-a", "stdout", IMAGE, "cat", input="piped\n")
    assert (res.returncode, res.stdout) == (0, "piped\n"), describe(res)


def start_attached(box, *args):
    proc = subprocess.Popen(box.cmd("run", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line == "ready\n", f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
    return proc


def test_sig_proxy_forwards_signals_to_an_attached_container(box):
    script = "trap 'echo got-int; exit 5' INT; trap 'echo got-term; exit 6' TERM; echo ready; " \
             "while true; do sleep 0.1; done"
    proc = start_attached(box, "--rm", IMAGE, "sh", "-c", script)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (5, "got-int\n"), err
    proc = start_attached(box, "--rm", IMAGE, "sh", "-c", script)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (6, "got-term\n"), err
    # --sig-proxy=false: the signal stops the client; the container goes on.
    proc = start_attached(box, "--name", "noproxy", "--sig-proxy=false", IMAGE, "sh", "-c", script)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGTERM
    assert box.state("noproxy")["Status"] == "running"
    assert "got-term" not in box.ok("logs", "noproxy")


REFUSED = [
    (["--add-host", "nocolon"], "--add-host", "HOST:IP"),
    (["--add-host", "db:not-an-ip"], "--add-host", "HOST:IP"),
    (["--dns", "dns.example"], "--dns", "not an IP address"),
    (["--network", "container:x", "--dns", "1.1.1.1"], "--dns", "shares another container"),
    (["--ulimit", "nofiles=1"], "--ulimit", "NAME=SOFT[:HARD]"),
    (["--ulimit", "nofile=abc"], "--ulimit", "whole numbers"),
    (["--ulimit", "nofile=2048:1024"], "--ulimit", "SOFT <= HARD"),
    (["--shm-size", "lots"], "--shm-size", "64m"),
    (["--shm-size", "0"], "--shm-size", "64m"),
    (["--group-add", "no-such-group"], "--group-add", "group number"),
    (["--sysctl", "vm.swappiness=10"], "--sysctl", "not namespaced"),
    (["--sysctl", "kernel.hostname"], "--sysctl", "KEY=VALUE"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "--sysctl", "host's network"),
    (["--stop-signal", "SIGNOPE"], "--stop-signal", "SIGTERM"),
    (["--stop-timeout", "soon"], "--stop-timeout", "whole seconds"),
    (["--cpuset-cpus", "0-"], "--cpuset-cpus", "0-2,4"),
    (["--cpuset-cpus", "4095"], "--cpuset-cpus", "not available"),
    (["--memory-swap", "1g"], "--memory-swap", "add --memory"),
    (["--memory", "1g", "--memory-swap", "512m"], "--memory-swap", "at least the memory limit"),
    (["--memory", "64m", "--memory-reservation", "128m"], "--memory-reservation", "at most"),
    (["--device", "/dev/no-such-device"], "--device", "not a device node"),
    (["--device", "/dev/null:/dev/x:rwx"], "--device", "PERMISSIONS"),
    (["--device", "/dev/null", VM], "--device", "/dev/null"),
    (["--cpuset-cpus", "0", VM], "--cpuset-cpus", "--cpus"),
    (["-a", "stdnope"], "--attach", "stdin, stdout or stderr"),
]


@pytest.mark.parametrize("args,flag,hint", REFUSED, ids=[" ".join(a) for a, _, _ in REFUSED])
@pytest.mark.parametrize("command", ["run", "create"])
def test_bad_values_are_refused_and_create_nothing(box, tmp_path, command, args, flag, hint):
    cidfile = tmp_path / "cid"
    res = box(command, "--cidfile", cidfile, *args, IMAGE, "true")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith(f"isola: {flag}: ") and hint in res.stderr and ";" in res.stderr, res.stderr
    assert box.ids() == [] and not cidfile.exists()


def test_attach_and_detach_conflict(box):
    res = box("run", "-d", "-a", "stdout", IMAGE, "true")
    assert res.returncode == 125 and res.stderr.startswith("isola: --attach: "), describe(res)
    assert box.ids() == []
