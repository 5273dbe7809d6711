"""--restart policies and health checks, as docker has them, at both
isolation levels: the container's monitor restarts it with docker's back-off
and counts RestartCount; a prober beside it runs the health check through
`isola exec` and keeps State.Health, which ps shows as "(healthy)".

Every test has its own store (the `box` fixture). VM tests boot real VMs
under TCG, so they are few and poll generously."""

import json
import time

import pytest

from containers import IMAGE, box, describe  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
LEVELS = ["process", "vm"]


def level_flags(isolation):
    return [VM] if isolation == "vm" else []


def poll(what, check, timeout):
    """Calls check() until it returns something true; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout}s (last: {last!r})", pytrace=False)


def stays(check, seconds):
    """True when check() holds at every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.2)
    return True


def inspect_field(box, cid, template):
    return box.ok("inspect", "-f", template, cid).strip()


# -- restart policies


@pytest.mark.parametrize("isolation", LEVELS)
def test_on_failure_restarts_up_to_its_retries(box, isolation):
    cid = box.run_d("--restart", "on-failure:2", *level_flags(isolation), IMAGE, "sh", "-c", "echo run; exit 3",
                    timeout=BOOT)

    def done():
        st = box.state(cid)
        return st if st["Status"] == "exited" and box.inspect(cid)["RestartCount"] == 2 else None

    st = poll("two restarts and a final exit", done, BOOT if isolation == "vm" else 60)
    assert st["ExitCode"] == 3 and not st["Restarting"], st
    assert stays(lambda: box.state(cid)["Status"] == "exited", 2), "a third restart happened"
    assert box.ok("logs", cid) == "run\n" * 3
    assert inspect_field(box, cid, "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}") \
        == "on-failure:2"


def test_on_failure_does_not_restart_a_success(box):
    cid = box.run_d("--restart", "on-failure", IMAGE, "true")
    box.wait_status(cid, "exited")
    assert stays(lambda: box.state(cid)["Status"] == "exited", 1.5)
    assert box.inspect(cid)["RestartCount"] == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_always_restarts_until_a_user_stops_it(box, isolation):
    cid = box.run_d("--restart", "always", *level_flags(isolation), IMAGE, "sh", "-c", "echo up; exit 0",
                    timeout=BOOT)
    # The back-off doubles from 100 ms: after a few quick exits the container
    # waits long enough to be seen restarting.
    poll("a restart count of 3", lambda: box.inspect(cid)["RestartCount"] >= 3, BOOT if isolation == "vm" else 60)
    st = box.wait_status(cid, "restarting", timeout=BOOT if isolation == "vm" else 60)
    assert st["Restarting"] and st["Running"] and st["Pid"] == 0, st  # as docker shows it
    ps = box.ok("ps", "--format", "{{.Status}}")
    assert ps.startswith("Restarting (0) "), ps
    res = box("stop", cid, timeout=BOOT)
    assert res.returncode == 0, describe(res)
    st = box.state(cid)
    assert st["Status"] == "exited" and not st["Restarting"], st
    count = box.inspect(cid)["RestartCount"]
    assert stays(lambda: box.state(cid)["Status"] == "exited", 3), "it restarted after isola stop"
    assert box.inspect(cid)["RestartCount"] == count
    # A user's start lifts the stop and counts from zero again.
    box.ok("start", cid, timeout=BOOT)
    poll("a new restart", lambda: box.inspect(cid)["RestartCount"] >= 1, BOOT if isolation == "vm" else 60)
    box.ok("rm", "-f", cid, timeout=BOOT)
    assert cid not in box.ids()


def test_stop_and_kill_of_a_running_container_are_final(box):
    cid = box.run_d("--restart", "always", IMAGE, "sleep", "1000")
    box.ok("stop", "-t", "1", cid)
    assert stays(lambda: box.state(cid)["Status"] == "exited", 2), "it restarted after isola stop"
    box.ok("start", cid)
    box.ok("kill", cid)
    box.wait_status(cid, "exited")
    assert stays(lambda: box.state(cid)["Status"] == "exited", 2), "it restarted after isola kill"
    assert box.inspect(cid)["RestartCount"] == 0


def test_a_crash_of_the_process_restarts_it_with_a_new_pid(box):
    cid = box.run_d("--restart", "unless-stopped", IMAGE, "sleep", "1000")
    first = box.state(cid)["Pid"]
    import os
    import signal
    os.kill(first, signal.SIGKILL)  # as the OOM killer or a crash would end it
    st = poll("a restart", lambda: (s := box.state(cid))["Status"] == "running" and s["Pid"] != first and s, 60)
    assert box.inspect(cid)["RestartCount"] == 1, st
    res = box.exec(cid, "true")
    assert res.returncode == 0, describe(res)


def test_kill_with_a_signal_that_does_not_stop_it_keeps_the_policy(box):
    # sh ignores nothing here: its trap turns HUP into a line, as a daemon
    # reloading its configuration would.
    cid = box.run_d("--restart", "always", IMAGE, "sh", "-c",
                    "trap 'echo reloaded' HUP; while true; do sleep 0.1; done")
    box.ok("kill", "-s", "HUP", cid)
    poll("the HUP handler", lambda: "reloaded" in box.ok("logs", cid), 20)
    first = box.state(cid)["Pid"]
    import os
    import signal
    os.kill(first, signal.SIGKILL)  # a crash after the reload still restarts it
    poll("a restart", lambda: (s := box.state(cid))["Status"] == "running" and s["Pid"] != first, 60)
    assert box.inspect(cid)["RestartCount"] == 1


def test_wait_and_an_attached_run_end_with_the_first_run(box):
    # The container fails after half a second and restarts forever: both
    # return the first run's exit code, not the restarted container's.
    res = box.run("--name", "flaky", "--restart", "always", IMAGE, "sh", "-c", "sleep 0.5; exit 3", timeout=60)
    assert res.returncode == 3, describe(res)
    poll("a restart", lambda: box.inspect("flaky")["RestartCount"] >= 1, 60)
    res = box("wait", "flaky", timeout=60)
    assert res.returncode == 0 and res.stdout == "3\n", describe(res)
    box.ok("rm", "-f", "flaky")


def test_rm_refuses_a_restarting_container_without_force(box):
    cid = box.run_d("--restart", "always", IMAGE, "false")
    poll("a restart count of 4", lambda: box.inspect(cid)["RestartCount"] >= 4, 60)
    box.wait_status(cid, "restarting", timeout=60)
    res = box("rm", cid)  # restarting, or running again if the back-off just ended: refused either way
    assert res.returncode == 125 and ("restarting" in res.stderr or "running" in res.stderr), describe(res)
    box.ok("rm", "-f", cid)
    assert cid not in box.ids()


@pytest.mark.parametrize("args, message", [
    (["--restart", "sometimes"], "--restart"),
    (["--restart", "always:3"], "--restart"),
    (["--restart", "on-failure:-1"], "--restart"),
    (["--rm", "--restart", "always"], "--rm"),
])
def test_bad_restart_flags_are_refused_and_create_nothing(box, args, message):
    res = box("run", "-d", *args, IMAGE, "true")
    assert res.returncode == 125 and message in res.stderr, describe(res)
    assert box.ids() == []


# -- health checks


def health(box, cid):
    return box.inspect(cid)["State"].get("Health")


@pytest.mark.parametrize("isolation", LEVELS)
def test_health_goes_from_starting_to_unhealthy_to_healthy(box, isolation):
    cid = box.run_d("--health-cmd", "cat /tmp/ready", "--health-interval", "1s", "--health-retries", "2",
                    *level_flags(isolation), IMAGE, "sleep", "1000", timeout=BOOT)
    h = health(box, cid)
    assert h is not None and h["Status"] in ("starting", "unhealthy"), h
    if h["Status"] == "starting":
        assert "(health: starting)" in box.ok("ps", "--format", "{{.Status}}")
    h = poll("unhealthy", lambda: (x := health(box, cid))["Status"] == "unhealthy" and x, 60)
    assert h["FailingStreak"] >= 2, h
    assert h["Log"][-1]["ExitCode"] == 1 and "No such file" in h["Log"][-1]["Output"], h
    assert box.ok("ps", "--format", "{{.Status}}").rstrip().endswith("(unhealthy)")
    assert box.exec(cid, "touch", "/tmp/ready").returncode == 0
    h = poll("healthy", lambda: (x := health(box, cid))["Status"] == "healthy" and x, 60)
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0, h
    assert len(h["Log"]) <= 5
    assert box.ok("ps", "--format", "{{.Status}}").rstrip().endswith("(healthy)")
    config = box.inspect(cid)["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD-SHELL", "cat /tmp/ready"] and config["Interval"] == 1_000_000_000, config


def test_a_probe_past_its_timeout_fails(box):
    cid = box.run_d("--health-cmd", "sleep 30", "--health-interval", "1s", "--health-timeout", "1s",
                    "--health-retries", "1", IMAGE, "sleep", "1000")
    h = poll("unhealthy", lambda: (x := health(box, cid))["Status"] == "unhealthy" and x, 60)
    assert h["Log"][-1]["ExitCode"] == -1 and h["Log"][-1]["Output"] == "Health check exceeded timeout (1s)", h


def test_the_images_healthcheck_and_no_healthcheck(box):
    cid = box.create(IMAGE, "true")
    box.ok("commit", "-c", "HEALTHCHECK --interval=1s --retries=1 CMD test -e /etc/passwd", cid, "checked:1")
    config = json.loads(box.ok("image", "inspect", "checked:1"))[0]["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "test -e /etc/passwd"], "Interval": 1_000_000_000, "Retries": 1}, config
    run = box.run_d("checked:1", "sleep", "1000")
    poll("healthy", lambda: (health(box, run) or {}).get("Status") == "healthy", 60)
    events = box.ok("events", "--since", "1h", "--until", str(int(time.time()) + 1), "--filter", f"container={run}",
                    "--filter", "event=health_status", "--format", "{{.Action}}")
    assert events == "health_status: healthy\n", events
    # The flags override the image's check field by field.
    tuned = box.run_d("--health-cmd", "false", "checked:1", "sleep", "1000")
    assert box.inspect(tuned)["Config"]["Healthcheck"]["Interval"] == 1_000_000_000
    poll("unhealthy", lambda: (health(box, tuned) or {}).get("Status") == "unhealthy", 60)
    off = box.run_d("--no-healthcheck", "checked:1", "sleep", "1000")
    assert "Health" not in box.state(off) or box.state(off)["Health"] is None
    assert "health" not in box.ok("ps", "--filter", f"id={off}", "--format", "{{.Status}}")


@pytest.mark.parametrize("args, message", [
    (["--health-interval", "soon"], "--health-interval"),
    (["--health-retries", "-2"], "--health-retries"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck"),
])
def test_bad_health_flags_are_refused_and_create_nothing(box, args, message):
    res = box("run", "-d", *args, IMAGE, "true")
    assert res.returncode == 125 and message in res.stderr, describe(res)
    assert box.ids() == []
