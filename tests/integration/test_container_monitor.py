"""The per-container monitor and many CLIs at once: the monitor outlives
the CLI, a killed monitor does not leave a container shown Up whose
processes are gone, and parallel runs and removals keep the store
consistent."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from containers import HEX64, IMAGE, TIMEOUT, box, cgroup_dirs, comm, describe, pid_alive, wait_for  # noqa: F401

PARALLEL = 20


def test_monitor_outlives_the_cli(box):
    cid = box.run_d("--name", "m", IMAGE, "sleep", "1000")
    st = box.state(cid)
    monitor = st["MonitorPid"]
    assert monitor and comm(monitor) == "isola-monitor", f"MonitorPid {monitor}: comm {comm(monitor)!r}"
    # The container's process is the monitor's child, not the CLI's.
    ppid = int(open(f"/proc/{st['Pid']}/stat").read().rsplit(")", 1)[1].split()[1])
    assert ppid == monitor
    box.rm_f(cid)
    wait_for(lambda: not pid_alive(monitor), timeout=10, what="the monitor to exit after rm -f")


def test_killed_monitor_does_not_leave_a_ghost(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    st = box.state(cid)
    pid, monitor = st["Pid"], st["MonitorPid"]
    assert comm(pid) == "sleep"
    assert comm(monitor) == "isola-monitor"
    os.kill(monitor, signal.SIGKILL)

    def exited():
        entry = box.ps_entry(cid)
        return entry if entry and entry["State"] == "exited" else None

    entry = wait_for(exited, timeout=15, what="ps -a to show the container exited")
    assert entry["Status"].startswith("Exited"), entry
    assert cid not in box.ids(all=False), "ps lists a container whose monitor is dead"
    wait_for(lambda: not pid_alive(pid), timeout=15, what="the container's sleep to go from the host")
    assert box.state(cid)["Running"] is False
    # Nobody recorded the exit: the first look fixes when it finished, and
    # later looks show that same time (it does not move to "now").
    finished = box.state(cid)["FinishedAt"]
    time.sleep(1.1)
    assert box.state(cid)["FinishedAt"] == finished
    res = box("rm", "-f", cid)
    assert res.returncode == 0, describe(res)
    box.assert_gone(cid)


def test_killed_monitor_of_a_container_with_children(box):
    cid = box.run_d(IMAGE, "sh", "-c", "sleep 1001 & sleep 1002 & wait")
    wait_for(lambda: len(box.ok("top", cid).splitlines()) == 4, what="three processes")
    pids = [int(l.split()[1]) for l in box.ok("top", cid).splitlines()[1:]]
    os.kill(box.state(cid)["MonitorPid"], signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15,
             what="every container process to go after the monitor died")
    wait_for(lambda: box.ps_entry(cid)["State"] == "exited", timeout=15, what="state exited")
    box.rm_f(cid)


def test_rm_f_after_killing_monitor_and_container(box):
    """Both the monitor and the container process SIGKILLed by hand: rm -f
    still cleans everything."""
    cid = box.run_d(IMAGE, "sleep", "1000")
    st = box.state(cid)
    os.kill(st["MonitorPid"], signal.SIGKILL)
    try:
        os.kill(st["Pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_for(lambda: not pid_alive(st["Pid"]), timeout=15, what="sleep to die")
    box.rm_f(cid)


def test_wait_returns_when_the_monitor_is_killed(box):
    cid = box.run_d(IMAGE, "sleep", "1000")
    monitor = box.state(cid)["MonitorPid"]
    results = {}
    t = threading.Thread(target=lambda: results.update(res=box("wait", cid, timeout=TIMEOUT)))
    t.start()
    time.sleep(0.5)
    os.kill(monitor, signal.SIGKILL)
    t.join(TIMEOUT + 5)
    assert "res" in results, "isola wait did not return after the monitor was killed"
    res = results["res"]
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip().isdigit(), describe(res)
    box.rm_f(cid)


def test_parallel_runs_and_removals(box):
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda i: box("run", "-d", IMAGE, "sleep", "60"), range(PARALLEL)))
    box.note_ids()
    failed = [describe(r) for r in results if r.returncode != 0]
    assert not failed, f"{len(failed)} parallel runs failed:\n" + "\n".join(failed[:3])
    ids = [r.stdout.strip() for r in results]
    assert all(HEX64.match(i) for i in ids), ids
    assert len(set(ids)) == PARALLEL
    listed = box.ok("ps", "-q").split()
    assert len(listed) == PARALLEL and len(set(listed)) == PARALLEL, listed
    assert sorted(listed) == sorted(i[:12] for i in ids)
    for entry in box.ps_json():
        assert entry["State"] == "running"
        assert comm(entry["Pid"]) == "sleep"
    names = [box.inspect(i)["Name"] for i in ids]
    assert len(set(names)) == PARALLEL, f"duplicate generated names: {names}"

    with ThreadPoolExecutor(PARALLEL) as pool:
        removed = list(pool.map(lambda i: box("rm", "-f", i), ids))
    failed = [describe(r) for r in removed if r.returncode != 0]
    assert not failed, f"{len(failed)} parallel rm -f failed:\n" + "\n".join(failed[:3])
    assert box.ok("ps", "-aq").split() == []
    for i in ids:
        box.assert_gone(i)
    cdir = box.containers_dir()
    assert not cdir.exists() or sorted(os.listdir(cdir)) == [], os.listdir(cdir)
    assert box.mounts_under(cdir) == []


def test_parallel_runs_with_the_same_name(box):
    n = 8
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: box("run", "-d", "--name", "only", IMAGE, "sleep", "60"), range(n)))
    box.note_ids()
    ok = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(ok) == 1, [describe(r) for r in results]
    assert all(r.returncode == 125 for r in refused), [describe(r) for r in refused]
    assert box.ids() == [ok[0].stdout.strip()]
    box.rm_f("only")


def test_parallel_lifecycle_commands_on_one_container(box):
    """stop, kill, inspect, ps and wait racing on one container leave it in
    one consistent exited state."""
    cid = box.run_d(IMAGE, "sleep", "1000")
    cmds = [("stop", "-t", "1", cid), ("kill", cid), ("inspect", cid), ("ps", "-a"), ("wait", cid),
            ("stop", "-t", "1", cid), ("kill", cid), ("wait", cid)]
    with ThreadPoolExecutor(len(cmds)) as pool:
        results = list(pool.map(lambda c: box(*c), cmds))
    for c, r in zip(cmds, results):
        if c[0] in ("inspect", "ps", "wait"):
            assert r.returncode == 0, f"{c}: {describe(r)}"
    st = box.state(cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 137, st
    waits = [r.stdout.strip() for c, r in zip(cmds, results) if c[0] == "wait"]
    assert waits == ["137", "137"], waits
    box.rm_f(cid)
    assert cgroup_dirs(cid) == []
