"""`isola events`, as docker events: what containers, images, volumes and
networks went through, from the store's event log, past (--since/--until)
and live, with --filter and --format. isola has no daemon: the CLI and the
containers' monitors write the log, at both isolation levels.

Every test has its own store (the `box` fixture); the VM case boots one
VM."""

import json
import os
import select
import subprocess
import time

import pytest

from containers import IMAGE, box, describe, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
ENGINE_FAILED = 125


def past(box, since, *args):
    """The events from `since` until now, as parsed --format json lines."""
    res = box("events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}", "--format", "json", *args)
    assert res.returncode == 0, describe(res)
    return [json.loads(line) for line in res.stdout.splitlines()]


def of(events, actor):
    return [e for e in events if e["Actor"]["ID"] == actor]


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_a_containers_life_in_order(box, isolation):
    flags = [VM] if isolation == "vm" else []
    timeout = BOOT if isolation == "vm" else 60
    t0 = time.time()
    res = box.run("--name", "web", "--label", "tier=front", *flags, IMAGE, "sh", "-c", "exit 3", timeout=timeout)
    assert res.returncode == 3, describe(res)
    cid = box.inspect("web")["Id"]
    box.ok("rm", "web")
    events = of(past(box, t0), cid)
    assert [e["Action"] for e in events] == ["create", "attach", "start", "die", "destroy"], events
    for e in events:
        assert e["Type"] == "container" and e["status"] == e["Action"] and e["id"] == cid, e
        assert e["from"] == IMAGE and e["scope"] == "local", e
        attrs = e["Actor"]["Attributes"]
        assert (attrs["image"], attrs["name"], attrs["tier"]) == (IMAGE, "web", "front"), e
        assert t0 <= e["timeNano"] / 1e9 <= time.time() and e["time"] == e["timeNano"] // 10**9, e
    assert events[3]["Actor"]["Attributes"]["exitCode"] == "3", events[3]


def test_rename_and_exec_events(box):
    t0 = time.time()
    cid = box.run_d("--name", "old", IMAGE, "sleep", "300")
    box.ok("rename", "old", "new")
    res = box.exec(cid, "sh", "-c", "exit 4")
    assert res.returncode == 4, describe(res)
    box.rm_f(cid)
    events = of(past(box, t0), cid)
    actions = [e["Action"] for e in events]
    assert actions[:6] == ["create", "start", "rename", "exec_create: sh -c exit 4", "exec_start: sh -c exit 4",
                           "exec_die"], actions
    rename = events[2]["Actor"]["Attributes"]
    assert (rename["name"], rename["oldName"]) == ("new", "/old"), rename
    exec_ids = {e["Actor"]["Attributes"]["execID"] for e in events[3:6]}
    assert len(exec_ids) == 1 and len(exec_ids.pop()) == 64, events[3:6]
    assert events[5]["Actor"]["Attributes"]["exitCode"] == "4", events[5]
    dies = past(box, t0, "--filter", "event=exec_die")
    assert [e["Actor"]["Attributes"]["exitCode"] for e in dies] == ["4"], dies


def test_kill_stop_pause_and_rm_on_a_running_container(box):
    t0 = time.time()
    cid = box.run_d("--name", "k", IMAGE, "sleep", "300")
    box.ok("pause", "k")
    box.ok("unpause", "k")
    box.ok("kill", "-s", "KILL", "k")
    box.wait_status(cid, "exited")
    box.ok("start", "k")
    box.ok("stop", "-t", "1", "k")
    box.ok("rm", "k")
    events = of(past(box, t0), cid)
    actions = [e["Action"] for e in events]
    # sleep, as PID 1, ignores SIGTERM: stop sends SIGKILL after its timeout.
    assert actions == ["create", "start", "pause", "unpause", "kill", "die", "start", "kill", "kill", "die", "stop",
                       "destroy"], actions
    assert events[4]["Actor"]["Attributes"]["signal"] == "9"
    assert events[5]["Actor"]["Attributes"]["exitCode"] == "137"
    assert [events[i]["Actor"]["Attributes"]["signal"] for i in (7, 8)] == ["15", "9"]
    assert events[9]["Actor"]["Attributes"]["exitCode"] == "137"


def test_filters_and_formats(box):
    t0 = time.time()
    assert box.run("--name", "one", IMAGE, "true").returncode == 0
    assert box.run("--name", "two", "--label", "team=b", IMAGE, "sh", "-c", "exit 1").returncode == 1
    box.ok("tag", IMAGE, "mine:1")
    box.ok("volume", "create", "vol1")
    box.ok("network", "create", "net1")
    until = f"{time.time():.6f}"

    def lines(*args):
        res = box("events", "--since", f"{t0:.6f}", "--until", until, *args)
        assert res.returncode == 0, describe(res)
        return res.stdout.splitlines()

    fmt = "{{.Action}} {{.Actor.Attributes.name}}"
    assert lines("--filter", "event=die", "--format", fmt) == ["die one", "die two"]
    assert lines("--filter", "event=die", "--filter", "container=two", "--format", fmt) == ["die two"]
    assert lines("--filter", "event=create", "--filter", "event=destroy", "--filter", "type=container",
                 "--format", fmt) == ["create one", "create two"]
    assert lines("--filter", "label=team=b", "--filter", "event=start", "--format", fmt) == ["start two"]
    assert lines("--filter", "type=image", "--format", fmt) == ["tag mine:1"]
    assert lines("--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}") == ["create vol1"]
    assert lines("--filter", "network=net1", "--format", fmt) == ["create net1"]
    # The default line: time, type, action, ID, then the attributes by key.
    die = lines("--filter", "event=die", "--filter", "container=one")
    assert len(die) == 1 and die[0].endswith(" (exitCode=0, image=busybox, name=one)"), die
    assert die[0].split(" ")[1:3] == ["container", "die"] and die[0].split(" ")[0].endswith("Z"), die
    # json: one object per line, docker's message shape.
    objs = [json.loads(l) for l in lines("--format", "json", "--filter", "type=image")]
    assert [(o["Type"], o["Action"], o["Actor"]["Attributes"]["name"]) for o in objs] == [("image", "tag", "mine:1")]
    # system events is the same command.
    res = box("system", "events", "--since", f"{t0:.6f}", "--until", until, "--filter", "type=network")
    assert res.returncode == 0 and " network create " in res.stdout, describe(res)


def read_lines(proc, want, timeout):
    """Lines from a running process's stdout until `want` of them or timeout."""
    buf, deadline = b"", time.time() + timeout
    fd = proc.stdout.fileno()
    while buf.count(b"\n") < want and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode().splitlines()


def test_following_live_events_and_interrupt(box):
    box.ok("tag", IMAGE, "before:1")  # past: not shown without --since
    proc = subprocess.Popen(box.cmd("events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # It starts at the end of the log: wait until it has the log open.
        log = str(box.root / "events.log")
        wait_for(lambda: any(os.path.realpath(f"/proc/{proc.pid}/fd/{fd}") == log
                             for fd in os.listdir(f"/proc/{proc.pid}/fd")), what="events to open the log")
        box.ok("tag", IMAGE, "after:1")
        assert box.run("--rm", "--name", "live", IMAGE, "true").returncode == 0
        got = read_lines(proc, 6, 30)
        assert got == ["image tag after:1", "container create live", "container attach live", "container start live",
                       "container die live", "container destroy live"], got
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_since_follows_on_and_until_in_the_future_stops(box):
    t0 = time.time()
    box.ok("tag", IMAGE, "old:1")
    start = time.time()
    proc = subprocess.Popen(box.cmd("events", "--since", f"{t0:.6f}", "--until", "1h", "--format", "{{.Action}}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # --until 1h means an hour ago: nothing to print, and it does not wait.
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.decode().split() == [], out
    until = time.time() + 4
    proc = subprocess.Popen(box.cmd("events", "--since", f"{t0:.6f}", "--until", f"{until:.6f}",
                                    "--format", "{{.Action}} {{.Actor.Attributes.name}}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    box.ok("tag", IMAGE, "new:1")
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == ["tag old:1", "tag new:1"], out
    assert time.time() >= until and time.time() - start < 15


def test_torn_and_garbage_lines_are_skipped(box):
    t0 = time.time()
    box.ok("tag", IMAGE, "first:1")
    log = box.root / "events.log"
    whole = log.read_bytes().splitlines()[-1]
    with open(log, "ab") as f:
        f.write(b"garbage\n\x00\xff not json\n{\"Type\": 7}\n" + b"z" * 300000 + b"\n")
        f.write(whole[:25])  # a writer killed mid-line
    box.ok("tag", IMAGE, "second:1")
    with open(log, "ab") as f:
        f.write(whole[:40])  # torn at the very end
    names = [e["Actor"]["Attributes"]["name"] for e in past(box, t0)]
    assert names == ["first:1", "second:1"], names


def test_the_log_stays_bounded(box):
    log = box.root / "events.log"
    line = json.dumps({"Action": "tag", "Actor": {"ID": "sha256:" + "a" * 64, "Attributes": {"name": "x" * 900}},
                       "Type": "image", "id": "sha256:" + "a" * 64, "scope": "local", "status": "tag",
                       "time": 1, "timeNano": 1000000000}, separators=(",", ":")) + "\n"
    with open(log, "a") as f:
        f.write(line * 1500)  # ~1.5 MiB: over the bound
    box.ok("tag", IMAGE, "rotates:1")
    assert (box.root / "events.log.1").stat().st_size > 1 << 20
    assert not log.exists() or log.stat().st_size < 64 << 10
    for i in range(30):  # quick commands keep appending to the new log
        box.ok("tag", IMAGE, f"many:{i}")
    total = log.stat().st_size + (box.root / "events.log.1").stat().st_size
    assert total <= (2 << 20) + (64 << 10), total
    # Both generations are read: the crafted events and the new ones.
    res = box("events", "--since", "0", "--until", f"{time.time():.6f}", "--format", "{{.Actor.Attributes.name}}")
    assert res.returncode == 0, describe(res)
    names = res.stdout.splitlines()
    assert names[-31:] == ["rotates:1"] + [f"many:{i}" for i in range(30)], names[-31:]
    assert names.count("x" * 900) == 1500


def test_bad_flags_exit_125_naming_the_flag(box):
    for args, flag in [(["--since", "yesterday"], "--since"), (["--until", "10x"], "--until"),
                       (["--filter", "colour=red"], "--filter"), (["--format", "{{.Action"], "--format")]:
        res = box("events", *args)
        assert res.returncode == ENGINE_FAILED, describe(res)
        assert res.stderr.startswith("isola: ") and flag in res.stderr, describe(res)


def test_completion_knows_events(box):
    assert "events" in box.ok("completion", "bash")
