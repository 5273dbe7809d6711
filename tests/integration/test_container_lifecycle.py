"""Managing containers as a docker user does: ps, inspect, top, logs, exec,
stop, kill, restart, rm, wait, pause/unpause, rename, container prune."""

import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from containers import (HEX64, IMAGE, TIMEOUT, box, cgroup_dirs, cgroup_file, comm, describe,  # noqa: F401
                        load_derived_image, pid_alive, wait_for)

# A shell that ends on SIGTERM with a code of its own (a PID-1 shell
# without a trap ignores TERM).
# /dev/shm/ready says the trap is in place (wait_ready).
TRAP_TERM = 'trap "echo got TERM; exit 7" TERM; touch /dev/shm/ready; while :; do sleep 0.1; done'


def wait_ready(box, cid):
    """Waits for the container's shell to have set its traps (it touches
    /dev/shm/ready): a PID 1 ignores signals it has no handler for."""
    wait_for(lambda: box.exec(cid, "test", "-f", "/dev/shm/ready").returncode == 0, what="the traps")

PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES", "ISOLATION"]


def parse_time(text):
    """RFC 3339 with up to nanoseconds -> aware datetime."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    assert m, f"not an RFC 3339 time: {text!r}"
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone)


def ps_rows(box, *flags):
    """`isola ps` as a list of {column: cell}, split by the header's offsets."""
    out = box.ok("ps", *flags)
    lines = out.splitlines()
    header = lines[0]
    starts = [header.index(c) for c in PS_COLUMNS]
    assert starts == sorted(starts), f"columns out of order: {header!r}"
    rows = []
    for line in lines[1:]:
        cells = {}
        for i, col in enumerate(PS_COLUMNS):
            end = starts[i + 1] if i + 1 < len(starts) else None
            cells[col] = line[starts[i]:end].strip()
        rows.append(cells)
    return rows


# -- ps


def test_ps_table(box):
    running = box.run_d("--name", "runner", IMAGE, "sleep", "1000")
    box.run("--name", "three", IMAGE, "sh", "-c", "exit 3")
    created = box.create("--name", "fresh", IMAGE, "true")
    out = box.ok("ps")
    assert out.splitlines()[0].split("  ")[0] == "CONTAINER ID"
    rows = ps_rows(box)
    assert [r["NAMES"] for r in rows] == ["runner"]
    [r] = rows
    assert r["CONTAINER ID"] == running[:12]
    assert r["IMAGE"] == IMAGE
    assert "sleep 1000" in r["COMMAND"]
    assert re.match(r"^Up (Less than a second|\d+ seconds?)$", r["STATUS"]), r
    assert r["ISOLATION"] == "process"
    assert r["CREATED"].endswith("ago"), r

    rows = {r["NAMES"]: r for r in ps_rows(box, "-a")}
    assert set(rows) == {"runner", "three", "fresh"}
    assert re.match(r"^Exited \(3\) .*ago$", rows["three"]["STATUS"]), rows["three"]
    assert rows["fresh"]["STATUS"] == "Created"
    assert rows["fresh"]["CONTAINER ID"] == created[:12]
    box.rm_f(running)


def test_ps_quiet_and_no_trunc(box):
    a = box.run_d(IMAGE, "sleep", "1000")
    b = box.create(IMAGE, "true")
    assert box.ok("ps", "-q").split() == [a[:12]]
    assert sorted(box.ok("ps", "-aq").split()) == sorted([a[:12], b[:12]])
    assert sorted(box.ok("ps", "-a", "-q", "--no-trunc").split()) == sorted([a, b])
    rows = ps_rows(box, "--no-trunc")
    assert rows[0]["CONTAINER ID"] == a
    box.rm_f(a)


def test_ps_json(box):
    a = box.run_d("--name", "j", IMAGE, "sleep", "1000")
    box.run("--name", "k", IMAGE, "sh", "-c", "exit 5")
    entries = {e["Names"][0] if isinstance(e["Names"], list) else e["Names"]: e for e in box.ps_json()}
    assert set(entries) == {"j", "k"}
    j, k = entries["j"], entries["k"]
    assert j["Id"] == a and HEX64.match(k["Id"])
    assert j["Image"] == IMAGE
    assert j["State"] == "running" and k["State"] == "exited"
    assert j["Status"].startswith("Up ")
    assert k["Status"].startswith("Exited (5) ")
    assert k["ExitCode"] == 5
    assert j["Isolation"] == k["Isolation"] == "process"
    assert comm(j["Pid"]) == "sleep"
    assert "sleep" in json.dumps(j["Command"])
    assert [e["Id"] for e in box.ps_json(all=False)] == [a]
    box.rm_f(a)


def test_ps_on_an_empty_store(box):
    assert ps_rows(box, "-a") == []
    assert box.ps_json() == []


# -- inspect


def test_inspect_running_and_exited(box, tmp_path):
    vol = tmp_path / "v"
    vol.mkdir()
    before = datetime.now().astimezone()
    cid = box.run_d("--name", "insp", "-e", "A=1", "-w", "/tmp", "-h", "hn", "-v", f"{vol}:/v:ro",
                    IMAGE, "sleep", "1000")
    info = box.inspect("insp")
    assert info["Id"] == cid
    assert info["Name"] == "/insp"
    assert info["Isolation"] == "process"
    st = info["State"]
    assert st["Status"] == "running" and st["Running"] is True and st["Paused"] is False
    assert st["OOMKilled"] is False and st["ExitCode"] == 0 and st["Error"] == ""
    assert comm(st["Pid"]) == "sleep"
    started = parse_time(st["StartedAt"])
    assert abs((started - before).total_seconds()) < 60
    cfg = info["Config"]
    assert "A=1" in cfg["Env"]
    assert cfg["WorkingDir"] == "/tmp"
    assert cfg["Hostname"] == "hn"
    assert info["Path"] == "sleep" and info["Args"] == ["1000"]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"]] == [(str(vol), "/v", False)]
    data = info["GraphDriver"]["Data"]
    assert Path(data["UpperDir"]).is_dir()
    assert Path(data["MergedDir"]).is_dir()

    box.ok("kill", "insp")
    box("wait", "insp")
    st = box.state("insp")
    assert st["Status"] == "exited" and st["Running"] is False
    assert st["ExitCode"] == 137
    assert st["Pid"] == 0
    assert parse_time(st["FinishedAt"]) >= started
    box.rm_f(cid)


def test_inspect_unknown_is_an_error(box):
    res = box("inspect", "nosuchcontainer")
    assert res.returncode != 0, describe(res)
    assert "nosuchcontainer" in res.stderr


# -- top


def test_top_shows_host_pids(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    pid = box.state(cid)["Pid"]
    res = box("top", cid)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [l.split() for l in lines[1:]]
    assert len(rows) == 1, res.stdout
    [row] = rows
    host_pid = int(row[1])
    assert host_pid == pid
    assert comm(host_pid) == "sleep"
    assert row[0] == "root"
    assert " ".join(row[7:]) == "sleep 1000"
    box.rm_f(cid)


def test_top_lists_every_process_and_takes_ps_options(box):
    cid = box.run_d(IMAGE, "sh", "-c", "sleep 1001 & sleep 1002 & wait")
    wait_for(lambda: len(box.ok("top", cid).splitlines()) == 4, what="three processes in top")
    res = box("top", cid, "-o", "pid,comm")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    procs = sorted((l.split()[1], int(l.split()[0])) for l in lines[1:])
    assert [p[0] for p in procs] == ["sh", "sleep", "sleep"], res.stdout
    for name, pid in procs:
        assert comm(pid) == name
    box.rm_f(cid)


def test_top_of_a_stopped_container_fails(box):
    box.run("--name", "done", IMAGE, "true")
    res = box("top", "done")
    assert res.returncode != 0, describe(res)


# -- logs


def test_logs(box):
    # Pauses between streams: stdout and stderr are separate pipes, whose
    # relative order is only known when the writes are apart in time.
    cid = box.run_d(IMAGE, "sh", "-c", "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three")
    assert box.ok("wait", cid).strip() == "0"
    res = box("logs", cid)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "one\nthree\n"
    assert res.stderr == "two\n"
    res = box("logs", "--tail", "1", cid)
    assert res.stdout == "three\n" and res.stderr == "", describe(res)
    res = box("logs", "--tail", "2", cid)
    assert res.stdout == "three\n" and res.stderr == "two\n", describe(res)
    res = box("logs", "-t", cid)
    lines = res.stdout.splitlines()
    assert len(lines) == 2
    for line, text in zip(lines, ["one", "three"]):
        stamp, rest = line.split(" ", 1)
        parse_time(stamp)
        assert rest == text


def test_logs_of_attached_run(box):
    box.run("--name", "att", IMAGE, "sh", "-c", "echo attached")
    assert box("logs", "att").stdout == "attached\n"


def test_logs_follow(box):
    cid = box.run_d(IMAGE, "sh", "-c", "echo first; sleep 2; echo second; sleep 1; echo third")
    proc = subprocess.Popen(box.cmd("logs", "-f", cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first == "first\n"
        # Still following while the container runs.
        assert proc.poll() is None
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "second\nthird\n"


def test_logs_keep_partial_lines(box):
    box.run("--name", "p", IMAGE, "sh", "-c", "printf 'no newline'")
    assert box("logs", "p").stdout == "no newline"


# -- exec


def test_exec(box):
    cid = box.run_d("-e", "BASE=1", IMAGE, "sleep", "1000")
    res = box.exec(cid, "sh", "-c", "echo $$ $BASE; cat /proc/1/comm")
    assert res.returncode == 0, describe(res)
    pid, base, init = res.stdout.split()
    assert pid != "1" and base == "1" and init == "sleep"
    res = box.exec(cid, "sh", "-c", "exit 5")
    assert res.returncode == 5, describe(res)
    res = box.exec(cid, "nonexistent")
    assert res.returncode == 127, describe(res)
    res = box.exec(cid, "/etc")
    assert res.returncode == 126, describe(res)
    box.rm_f(cid)


def test_exec_options(box):
    cid = box.run_d("-w", "/tmp", IMAGE, "sleep", "1000")
    assert box.exec(cid, "pwd").stdout == "/tmp\n"
    assert box("exec", "-w", "/etc", cid, "pwd").stdout == "/etc\n"
    assert box("exec", "-e", "X=y", cid, "sh", "-c", "echo $X").stdout == "y\n"
    assert box("exec", "-u", "65534", cid, "id", "-u").stdout == "65534\n"
    assert box("exec", "-u", "nobody", cid, "grep", "CapEff", "/proc/self/status").stdout.split()[1] == \
        "0000000000000000"
    res = box("exec", "-i", cid, "cat", input="piped in\n")
    assert res.stdout == "piped in\n", describe(res)
    box.rm_f(cid)


def test_exec_shares_the_containers_namespaces(box):
    cid = box.run_d("-h", "inner", IMAGE, "sh", "-c", "echo marker > /tmp/m; sleep 1000")
    wait_for(lambda: box.exec(cid, "cat", "/tmp/m").stdout == "marker\n", what="marker file")
    assert box.exec(cid, "hostname").stdout == "inner\n"
    res = box.exec(cid, "ps", "-o", "pid,comm")
    pids = {tuple(l.split()) for l in res.stdout.splitlines()[1:]}
    # busybox sh execs its last command: PID 1 is sleep, plus the exec'd ps.
    assert ("1", "sleep") in pids and any(p[1] == "ps" for p in pids), res.stdout
    assert len(pids) == 2, res.stdout
    assert box.exec(cid, "grep", "Seccomp:", "/proc/self/status").stdout.split()[1] == "2"
    box.rm_f(cid)


def test_exec_detached(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    res = box("exec", "-d", cid, "sh", "-c", "sleep 1; echo done > /tmp/marker")
    assert res.returncode == 0, describe(res)
    assert res.stdout == ""
    wait_for(lambda: box.exec(cid, "cat", "/tmp/marker").stdout == "done\n", what="the detached exec")
    box.rm_f(cid)


def test_exec_in_a_stopped_container_fails(box):
    box.run("--name", "stopped", IMAGE, "true")
    res = box.exec("stopped", "true")
    assert res.returncode != 0, describe(res)
    assert "not running" in res.stderr


# -- stop, kill, restart


def test_stop_with_timeout_kills_a_pid1_that_ignores_term(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    pid = box.state(cid)["Pid"]
    res = box("stop", "-t", "1", cid, timeout=30)
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == cid
    st = box.state(cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 137, st
    assert not pid_alive(pid)
    assert re.match(r"^Exited \(137\) ", box.ps_entry(cid)["Status"])


def test_stop_sends_term_first(box):
    cid = box.run_d(IMAGE, "sh", "-c", TRAP_TERM)
    wait_ready(box, cid)
    res = box("stop", "-t", "20", cid, timeout=60)
    assert res.returncode == 0, describe(res)
    st = box.state(cid)
    assert st["ExitCode"] == 7, f"the container did not get SIGTERM first: {st}"
    assert box("logs", cid).stdout == "got TERM\n"


def test_stop_uses_the_images_stop_signal(box, busybox_layout, tmp_path):
    load_derived_image(box, busybox_layout, tmp_path, "stopsig:1", {
        "Cmd": ["sh", "-c", 'trap "exit 11" USR1; trap "exit 15" TERM; touch /dev/shm/ready; '
                'while :; do sleep 0.1; done'],
        "StopSignal": "SIGUSR1",
    })
    cid = box.run_d("stopsig:1")
    wait_ready(box, cid)
    box.ok("stop", "-t", "20", cid, timeout=60)
    assert box.state(cid)["ExitCode"] == 11


def test_stop_an_exited_container_is_fine(box):
    box.run("--name", "x", IMAGE, "true")
    res = box("stop", "x")
    assert res.returncode == 0, describe(res)
    assert box.state("x")["ExitCode"] == 0


def test_init_reaps_and_forwards_term(box):
    cid = box.run_d("--init", IMAGE, "sleep", "1000")
    res = box.exec(cid, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,comm")
    assert res.returncode == 0, describe(res)
    first, *rest = res.stdout.splitlines()
    assert "init" in first, f"PID 1 is not isola-init: {first!r}"
    sleep_pids = [l.split()[0] for l in rest[1:] if l.split()[1:] == ["sleep"]]
    assert sleep_pids and sleep_pids[0] != "1", res.stdout
    res = box("stop", "-t", "30", cid, timeout=60)
    assert res.returncode == 0, describe(res)
    # sleep died of the forwarded SIGTERM (143), not of the SIGKILL (137).
    assert box.state(cid)["ExitCode"] == 143


def test_kill_with_signals(box):
    script = 'trap "exit 9" USR1; touch /dev/shm/ready; while :; do sleep 0.1; done'
    cid = box.run_d(IMAGE, "sh", "-c", script)
    wait_ready(box, cid)
    res = box("kill", "-s", "USR1", cid)
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == cid
    assert box.ok("wait", cid).strip() == "9"
    for sig in ("SIGUSR1", "10"):
        box.ok("start", cid)
        wait_ready(box, cid)
        box.ok("kill", "--signal", sig, cid)
        assert box.ok("wait", cid).strip() == "9"
    box.ok("start", cid)
    box.ok("kill", cid)
    assert box.ok("wait", cid).strip() == "137"
    res = box("kill", "-s", "NOTASIGNAL", cid)
    assert res.returncode != 0


def test_kill_a_stopped_container_fails(box):
    box.run("--name", "dead", IMAGE, "true")
    res = box("kill", "dead")
    assert res.returncode != 0, describe(res)
    assert "not running" in res.stderr, describe(res)


def test_restart(box):
    cid = box.run_d(IMAGE, "sh", "-c", "echo started; " + TRAP_TERM)
    st1 = box.state(cid)
    time.sleep(1.1)
    res = box("restart", "-t", "10", cid, timeout=60)
    assert res.returncode == 0, describe(res)
    st2 = box.wait_status(cid, "running")
    assert st2["Pid"] != st1["Pid"]
    assert comm(st2["Pid"]) == "sh"
    assert not pid_alive(st1["Pid"])
    assert parse_time(st2["StartedAt"]) > parse_time(st1["StartedAt"])
    assert box.exec(cid, "true").returncode == 0
    wait_for(lambda: box("logs", cid).stdout.count("started") == 2, what="two starts in the log")
    box.rm_f(cid)


def test_restart_an_exited_container(box):
    box.run_d("--name", "r", IMAGE, "sleep", "1000")
    box.ok("kill", "r")
    assert box.ok("wait", "r").strip() == "137"
    box.ok("restart", "r")
    assert box.wait_status("r", "running")["Running"] is True


# -- wait, rm


def test_wait(box):
    cid = box.run_d(IMAGE, "sh", "-c", "sleep 1; exit 4")
    res = box("wait", cid)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "4\n"
    assert box("wait", cid).stdout == "4\n"  # an exited container: at once
    other = box.run_d(IMAGE, "sh", "-c", "exit 2")
    assert box("wait", cid, other).stdout.split() == ["4", "2"]


def test_rm_refuses_a_running_container(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    pid = box.state(cid)["Pid"]
    res = box("rm", cid)
    assert res.returncode != 0, describe(res)
    assert box.state(cid)["Status"] == "running"
    assert pid_alive(pid)
    res = box("rm", "-f", cid)
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == cid
    assert not pid_alive(pid)
    box.assert_gone(cid)


def test_rm_several_and_unknown(box):
    a = box.run_d(IMAGE, "true")
    b = box.run_d(IMAGE, "true")
    box.ok("wait", a, b)
    res = box("rm", a, "nosuch", b)
    assert res.returncode != 0
    assert "nosuch" in res.stderr
    box.assert_gone(a)
    box.assert_gone(b)


def test_rm_cleans_cgroup_and_mounts(box):
    cid = box.run_d("-m", "64m", "--pids-limit", "20", IMAGE, "sleep", "1000")
    f = cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")
    assert f.exists()
    merged = Path(box.inspect(cid)["GraphDriver"]["Data"]["MergedDir"])
    assert box.mounts_under(merged), "the running container's rootfs is not mounted"
    box.rm_f(cid)
    assert not f.exists()


def test_exited_container_keeps_no_mount_or_cgroup(box):
    """A container that has exited holds no rootfs mount and no cgroup."""
    cid = box.run_d(IMAGE, "true")
    box.ok("wait", cid)
    merged = box.inspect(cid)["GraphDriver"]["Data"]["MergedDir"]

    def clean():
        return not box.mounts_under(merged) and not cgroup_dirs(cid)

    wait_for(clean, timeout=10, what="the exited container's mount and cgroup to go")


# -- pause


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_pause_and_unpause(box, tmp_path, isolation):
    """Under VM isolation pause freezes the whole VM (its worker's cgroup):
    the guest's processes stop as a process container's do."""
    vol = tmp_path / "counter"
    vol.mkdir()
    cid = box.run_d("-v", f"{vol}:/c", f"--isolation={isolation}", IMAGE, "sh", "-c",
                    "i=0; while :; do i=$((i+1)); echo $i > /c/n; sleep 0.05; done")
    wait_for(lambda: (vol / "n").exists() and (vol / "n").read_text().strip(), what="the counter")
    res = box("pause", cid)
    assert res.returncode == 0, describe(res)
    st = box.state(cid)
    assert st["Status"] == "paused" and st["Paused"] is True and st["Running"] is True
    assert box.ps_entry(cid)["Status"].endswith("(Paused)")
    assert box.ps_entry(cid)["State"] == "paused"
    assert cid in box.ids(all=False)
    time.sleep(0.3)
    frozen = (vol / "n").read_text()
    time.sleep(1)
    assert (vol / "n").read_text() == frozen, "the counter moved while paused"
    res = box("exec", cid, "true")
    assert res.returncode == 125 and "paused" in res.stderr and "unpause" in res.stderr, describe(res)
    if isolation == "vm":  # the guest's process list is the guest agent's, frozen too
        res = box("top", cid)
        assert res.returncode == 125 and "unpause" in res.stderr, describe(res)
    res = box("unpause", cid)
    assert res.returncode == 0, describe(res)
    assert box.state(cid)["Status"] == "running"
    wait_for(lambda: (vol / "n").read_text() != frozen, what="the counter to move after unpause")
    box.rm_f(cid)


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_kill_a_paused_container(box, isolation):
    cid = box.run_d(f"--isolation={isolation}", IMAGE, "sleep", "1000")
    box.ok("pause", cid)
    res = box("kill", cid)
    assert res.returncode == 0, describe(res)
    assert box.wait_status(cid, "exited")["ExitCode"] == 137


def test_rm_f_a_paused_container(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    pid = box.state(cid)["Pid"]
    box.ok("pause", cid)
    box.rm_f(cid)
    assert not pid_alive(pid)


def test_pause_a_stopped_container_fails(box):
    box.run("--name", "s", IMAGE, "true")
    assert box("pause", "s").returncode != 0


# -- rename, prune


def test_rename(box):
    cid = box.run_d("--name", "old", IMAGE, "sleep", "1000")
    box.create("--name", "taken", IMAGE, "true")
    res = box("rename", "old", "new")
    assert res.returncode == 0, describe(res)
    assert box.inspect("new")["Id"] == cid
    assert box.inspect("new")["Name"] == "/new"
    assert box("inspect", "old").returncode != 0
    assert [r["NAMES"] for r in ps_rows(box)] == ["new"]
    res = box("rename", "new", "taken")
    assert res.returncode != 0, describe(res)
    assert box.inspect("new")["Id"] == cid
    # The old name is free again.
    box.create("--name", "old", IMAGE, "true")
    box.rm_f(cid)


def test_container_prune(box):
    running = box.run_d(IMAGE, "sleep", "1000")
    a = box.run_d(IMAGE, "true")
    b = box.run_d(IMAGE, "sh", "-c", "exit 1")
    box.ok("wait", a, b)
    res = box("container", "prune", "-f")
    assert res.returncode == 0, describe(res)
    assert a in res.stdout and b in res.stdout and running not in res.stdout
    assert box.ids() == [running]
    box.assert_gone(a)
    box.assert_gone(b)
    box.rm_f(running)


def test_container_ls_alias(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    res = box("container", "ls", "-q")
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == [cid[:12]]
    box.rm_f(cid)


# -- attach


def test_attach_follows_output_and_returns_the_exit_code(box):
    # Long enough for attach to connect first, also on a loaded machine under ASan.
    cid = box.run_d(IMAGE, "sh", "-c", "sleep 3; echo late; echo err >&2; exit 3")
    res = box("attach", "--no-stdin", cid)
    assert res.returncode == 3, describe(res)
    assert res.stdout == "late\n"
    assert res.stderr == "err\n"


def test_attach_with_stdin(box):
    cid = box.run_d("-i", IMAGE, "sh", "-c", "read line; echo got:$line")
    res = box("attach", cid, input="hello\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "got:hello\n"


def test_attach_to_a_stopped_container_fails(box):
    box.run("--name", "s", IMAGE, "true")
    res = box("attach", "s")
    assert res.returncode != 0, describe(res)
