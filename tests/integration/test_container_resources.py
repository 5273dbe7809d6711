"""Resource limits really apply: memory (OOM kill, exit 137, OOMKilled),
pids (a fork bomb is stopped), cpus (quota set, the container throttled),
and `stats` reports them."""

import json
import time

from containers import IMAGE, TIMEOUT, box, cgroup_file, describe, is_v2  # noqa: F401

# Holds ~200 MB in the shell's memory (command substitution keeps it all).
HOG = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived ${#x}'


def test_memory_limit_oom_kills(box):
    res = box.run("-m", "32m", "--name", "hog", IMAGE, "sh", "-c", HOG, timeout=120)
    assert res.returncode == 137, describe(res)
    assert "survived" not in res.stdout
    st = box.state("hog")
    assert st["OOMKilled"] is True, st
    assert st["ExitCode"] == 137, st
    assert st["Status"] == "exited"


def test_memory_limit_oom_kills_shm_pages(box):
    """Pages in /dev/shm are charged to the container too: writing 100 MB
    there under -m 32m brings the OOM killer (OOMKilled in inspect)."""
    res = box.run("-m", "32m", "--name", "shm", IMAGE, "sh", "-c",
                  "dd if=/dev/zero of=/dev/shm/f bs=1M count=100; echo dd=$?", timeout=120)
    assert "dd=0" not in res.stdout, describe(res)
    assert box.state("shm")["OOMKilled"] is True, describe(res)


def test_memory_within_limit_is_fine(box):
    res = box.run("-m", "64m", "--name", "ok", IMAGE, "sh", "-c",
                  'x=$(head -c 1000000 /dev/zero | tr "\\0" a); echo ${#x}')
    assert res.returncode == 0, describe(res)
    assert res.stdout == "1000000\n"
    assert box.state("ok")["OOMKilled"] is False


def test_memory_limit_is_in_the_cgroup(box):
    cid = box.run_d("-m", "48m", IMAGE, "sleep", "1000")
    f = cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")
    assert f.read_text().strip() == str(48 * 1024 * 1024)
    box.rm_f(cid)


def test_pids_limit_stops_a_fork_bomb(box):
    script = ("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; "
              "echo spawned all; kill $(jobs -p) 2>/dev/null")
    start = time.monotonic()
    res = box.run("--pids-limit", "10", IMAGE, "sh", "-c", script, timeout=TIMEOUT)
    assert "spawned all" not in res.stdout, describe(res)
    assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr, describe(res)
    assert res.returncode != 0, describe(res)
    # The container ended (PID 1 died; the kernel killed the rest).
    assert time.monotonic() - start < TIMEOUT


def test_pids_limit_is_in_the_cgroup(box):
    cid = box.run_d("--pids-limit", "10", IMAGE, "sleep", "1000")
    f = cgroup_file(cid, "pids", "pids.max", "pids.max")
    assert f.read_text().strip() == "10"
    # The sleeps get their own stdio, so that the exec's pipes close when
    # the shell gives up.
    res = box.sh(cid, "for i in $(seq 1 20); do sleep 5 </dev/null >/dev/null 2>&1 & done; wait")
    assert res.returncode != 0, describe(res)
    assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr, describe(res)
    # The container itself still works once the forks are gone.
    assert box.state(cid)["Status"] == "running"
    box.rm_f(cid)


def test_cpus_sets_the_quota(box):
    cid = box.run_d("--cpus", "0.5", IMAGE, "sleep", "1000")
    if is_v2():
        f = cgroup_file(cid, "cpu", "", "cpu.max")
        assert f.read_text().split() == ["50000", "100000"]
    else:
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "").read_text().strip() == "50000"
        assert cgroup_file(cid, "cpu", "cpu.cfs_period_us", "").read_text().strip() == "100000"
    box.rm_f(cid)


def test_cpus_throttles_a_busy_loop(box):
    cid = box.run_d("--cpus", "0.5", IMAGE, "sh", "-c", "while :; do :; done")
    stat = cgroup_file(cid, "cpu", "cpu.stat", "cpu.stat")

    def read_stat():
        return dict(line.split() for line in stat.read_text().splitlines())

    time.sleep(2)
    s = read_stat()
    throttled = int(s.get("nr_throttled", 0))
    assert throttled > 0, f"a busy loop under --cpus 0.5 was never throttled: {s}"
    box.rm_f(cid)


def test_stats_reports_limits_and_usage(box):
    cid = box.run_d("-m", "64m", "--pids-limit", "50", "--name", "st", IMAGE,
                    "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    time.sleep(0.5)
    res = box("stats", "--no-stream", "--format", "json", cid)
    assert res.returncode == 0, describe(res)
    [entry] = json.loads(res.stdout)
    assert entry["MemLimit"] == 64 * 1024 * 1024, entry
    assert 0 < entry["MemUsage"] < 64 * 1024 * 1024, entry
    assert entry["PIDs"] == 3, entry
    assert isinstance(entry["CPUPerc"], (int, float)) and entry["CPUPerc"] >= 0
    res = box("stats", "--no-stream", "st")
    assert res.returncode == 0, describe(res)
    header, row = res.stdout.splitlines()[:2]
    assert "CONTAINER ID" in header and "MEM USAGE / LIMIT" in header and "PIDS" in header
    assert row.startswith(cid[:12]) and "st" in row.split()
    assert row.split()[-1] == "3"
    box.rm_f(cid)


def test_stats_without_arguments_lists_running_containers(box):
    a = box.run_d(IMAGE, "sleep", "1000")
    box.run(IMAGE, "true")
    res = box("stats", "--no-stream", "--format", "json")
    assert res.returncode == 0, describe(res)
    assert [e["ID"] for e in json.loads(res.stdout)] == [a]
    box.rm_f(a)
