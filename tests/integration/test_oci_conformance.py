"""isola-runtime against the OCI runtime command line (runc's), as an engine
(containerd's shim, podman, CRI-O) drives it: the commands, their flags,
what `state` reports, exit codes and errors. Process isolation first, then
a few VM-isolated containers (each boots a guest: kept to a handful).

The config.json fields are tested in test_oci_conformance_spec.py;
docs/oci-conformance.md maps every feature to its test."""

import json
import os
import platform
import re
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from bundles import (RUNTIME, RUNTIME_VM, VM_TIMEOUT, ConsoleReceiver, cgroup_dirs, host_cmdlines,  # noqa: F401
                     oci, pid_alive, wait_for)

VM = ("io.isola.isolation", "vm")
# A PID 1 gets only the signals it has a handler for, so a shell that is to
# end on SIGTERM/SIGUSR1 traps them; /tmp/ready (in the rootfs, which the
# host sees) says the traps are in place.
TRAPS = ('trap "echo got TERM; exit 42" TERM; trap "echo got USR1; exit 43" USR1; touch /tmp/ready; '
         'while :; do sleep 0.1; done')


def wait_file(path, timeout=10):
    return wait_for(lambda: Path(path).exists(), timeout, what=f"{path}")


def cmdline(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def status_field(text, name):
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def assert_unknown(res):
    assert res.returncode != 0, res
    assert "does not exist" in res.stderr, res


# -- create, start, state, delete


def test_create_start_state_lifecycle(oci, tmp_path):
    b = oci.bundle("life", "sh", "-c", "echo started; exec sleep 1000")
    b.annotate("org.example.owner", "conformance").save()
    cid = oci.new_id("life")
    out = tmp_path / "out"
    pid_file = tmp_path / "pid"
    oci.create(cid, b, "--pid-file", pid_file, stdout=out)

    state = oci.state(cid)
    assert state["id"] == cid
    assert state["status"] == "created"
    assert state["bundle"] == str(b.path)
    assert state["annotations"]["org.example.owner"] == "conformance"
    assert re.match(r"^1\.\d+\.\d+", state["ociVersion"])
    pid = state["pid"]
    assert pid > 0 and pid_alive(pid), state
    assert pid_file.read_text() == str(pid), "pid file must hold the host PID without a newline"
    # The init waits for `start`: the command has not run yet.
    time.sleep(0.3)
    assert out.read_text() == ""
    assert "sleep" not in cmdline(pid)
    assert oci.status(cid) == "created"

    oci.ok("start", cid)
    wait_for(lambda: out.read_text() == "started\n", what="the container's output after start")
    state = oci.state(cid)
    assert state["status"] == "running" and state["pid"] == pid
    wait_for(lambda: cmdline(pid) == "sleep 1000", what="the init to exec sleep")
    again = oci("start", cid)
    assert again.returncode != 0 and "running" in again.stderr, again

    oci.ok("kill", cid, "KILL")
    status = oci.wait_exit(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert oci.status(cid) == "stopped"
    oci.ok("delete", cid)
    assert_unknown(oci("state", cid))
    assert cgroup_dirs(f"isola-runtime/{cid}") == []


def test_kill_and_delete_of_a_created_container(oci):
    b = oci.bundle("fresh")
    killed, deleted = oci.new_id("killed"), oci.new_id("deleted")
    oci.create(killed, b)
    pid = oci.state(killed)["pid"]
    oci.ok("kill", killed, "KILL")
    oci.wait_exit(pid)
    assert oci.status(killed) == "stopped"

    oci.create(deleted, b)
    pid = oci.state(deleted)["pid"]
    oci.ok("delete", deleted)
    oci.wait_exit(pid)
    assert_unknown(oci("state", deleted))


def test_run_returns_the_exit_code_and_removes_the_container(oci):
    b = oci.bundle("run", "sh", "-c", "echo out; echo err >&2; exit 7")
    cid = oci.new_id("run")
    res = oci("run", "--bundle", b.path, cid)
    assert res.returncode == 7, res
    assert res.stdout == "out\n"
    assert "err\n" in res.stderr
    assert_unknown(oci("state", cid))

    b2 = oci.bundle("missing", "no-such-command")
    res = oci("run", "--bundle", b2.path, oci.new_id("missing"))
    assert res.returncode == 127, res
    assert "no-such-command" in res.stderr
    # As with runc, create already looks the command up (engines map 127).
    res = oci("create", "--bundle", b2.path, oci.new_id("missing-create"))
    assert res.returncode == 127 and "no-such-command" in res.stderr, res
    assert_unknown(oci("state", oci.new_id("missing-create")))
    (b2.rootfs / "bin" / "notexec").write_text("#!/bin/sh\n")
    res = oci("create", "--bundle", b2.set_args("/bin/notexec").save().path, oci.new_id("notexec"))
    assert res.returncode == 126 and "notexec" in res.stderr, res


def test_run_detach_returns_with_the_container_running(oci):
    b = oci.bundle("detach", "sleep", "1000")
    cid = oci.new_id("detach")
    started = time.monotonic()
    oci.ok("run", "--detach", "--bundle", b.path, cid)
    assert time.monotonic() - started < 10
    state = oci.state(cid)
    assert state["status"] == "running"
    assert cmdline(state["pid"]) == "sleep 1000"


def test_list(oci):
    b = oci.bundle("list")
    one, two = oci.new_id("one"), oci.new_id("two")
    oci.create(one, b)
    oci.start_sleeper(two, b)
    listed = {s["id"]: s for s in oci.ok("list", "--format", "json").json()}
    assert listed[one]["status"] == "created" and listed[two]["status"] == "running"
    assert listed[two]["pid"] == oci.state(two)["pid"]
    assert sorted(oci.ok("list", "-q").stdout.split()) == sorted([one, two])


# -- kill


def test_kill_with_signal_name_and_number(oci):
    b = oci.bundle("kill", "sh", "-c", TRAPS)
    pids = {}
    for name, sig in (("byname", "TERM"), ("bysigname", "SIGUSR1"), ("bynumber", "10"), ("default", None)):
        cid = oci.new_id(name)
        (b.rootfs / "tmp" / "ready").unlink(missing_ok=True)
        pids[name] = oci.start_sleeper(cid, b)
        wait_file(b.rootfs / "tmp" / "ready")
        oci.ok("kill", cid, *([sig] if sig else []))
        status = oci.wait_exit(pids[name])
        expected = {"byname": 42, "bysigname": 43, "bynumber": 43, "default": 42}[name]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == expected, (name, status)
        assert oci.status(cid) == "stopped"
    bad = oci("kill", oci.new_id("default"), "NOSUCHSIG")
    assert bad.returncode != 0 and "NOSUCHSIG" in bad.stderr, bad


def test_kill_all_reaches_every_process(oci):
    b = oci.bundle("killall", "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    cid = oci.new_id("killall")
    init = oci.start_sleeper(cid, b)
    pids = wait_for(lambda: len(oci.ps(cid)) == 3 and oci.ps(cid), what="three processes")
    # Without --all only the init gets it, and a PID 1 without a handler ignores it.
    oci.ok("kill", cid, "TERM")
    time.sleep(0.3)
    assert all(pid_alive(p) for p in pids)
    oci.ok("kill", "--all", cid, "TERM")
    oci.wait_exit(init)
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="every process to die")
    assert oci.status(cid) == "stopped"
    res = oci("kill", cid, "KILL")
    assert res.returncode != 0 and "not running" in res.stderr, res


# -- delete


def test_delete_running_needs_force(oci):
    b = oci.bundle("force")
    cid = oci.new_id("force")
    pid = oci.start_sleeper(cid, b)
    res = oci("delete", cid)
    assert res.returncode != 0, res
    assert "running" in res.stderr and "--force" in res.stderr, res
    assert oci.status(cid) == "running" and pid_alive(pid)

    oci.ok("delete", "--force", cid)
    status = oci.wait_exit(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert_unknown(oci("state", cid))
    assert cgroup_dirs(f"isola-runtime/{cid}") == []
    assert not (oci.root / cid).exists()


# -- errors


def test_unknown_id_fails_for_every_command(oci):
    cid = oci.new_id("ghost")
    for args in (["state", cid], ["kill", cid], ["kill", cid, "KILL"], ["delete", cid], ["delete", "--force", cid],
                 ["start", cid], ["pause", cid], ["resume", cid], ["ps", cid], ["exec", cid, "true"],
                 ["update", "--memory", "67108864", cid]):
        assert_unknown(oci(*args))


def test_duplicate_id_is_refused(oci):
    b = oci.bundle("dup")
    other = oci.bundle("dup2", "sh", "-c", "echo second")
    cid = oci.new_id("dup")
    pid = oci.start_sleeper(cid, b)
    res = oci("create", "--bundle", other.path, cid)
    assert res.returncode != 0 and "already exists" in res.stderr, res
    state = oci.state(cid)
    assert state["status"] == "running" and state["pid"] == pid and state["bundle"] == str(b.path)


def test_invalid_ids_are_refused(oci, tmp_path):
    b = oci.bundle("badid")
    for bad in ("../escape", "a/b", ".hidden", "has space", "semi;colon", "x" * 1025):
        res = oci("create", "--bundle", b.path, bad)
        assert res.returncode != 0, res
        assert "container id" in res.stderr, res
    assert not (tmp_path / "escape").exists()
    assert oci.ok("list", "-q").stdout == ""


def test_log_json_records_errors(oci, tmp_path):
    log = tmp_path / "runtime.log"
    res = oci("state", oci.new_id("nope"), global_flags=("--log", log, "--log-format", "json"))
    assert res.returncode != 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 1, lines
    entry = lines[0]
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    stamp = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", entry["time"])
    assert stamp, entry["time"]
    when = datetime.fromisoformat(stamp.group(1)).replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 120


# -- exec


def test_exec_args_form(oci):
    b = oci.bundle("exec")
    b.process["env"].append("FROM_SPEC=spec")
    b.config["hostname"] = "exec-host"
    b.save()
    cid = oci.new_id("exec")
    oci.start_sleeper(cid, b)
    res = oci("exec", "--env", "EXTRA=1", "--cwd", "/tmp", "--user", "1000:1001", cid,
              "sh", "-c", 'echo "$FROM_SPEC $EXTRA"; pwd; id -u; id -g; hostname; cat /proc/1/cmdline; exit 3')
    assert res.returncode == 3, res
    assert res.stdout.split("\n")[:5] == ["spec 1", "/tmp", "1000", "1001", "exec-host"], res
    assert res.stdout.split("\n")[5].startswith("sleep"), res


def test_exec_capability_group_and_no_new_privs_flags(oci):
    b = oci.bundle("execf")
    b.process["noNewPrivileges"] = False
    b.save()
    cid = oci.new_id("execf")
    oci.start_sleeper(cid, b)
    plain = oci.ok("exec", cid, "cat", "/proc/self/status").stdout
    assert int(status_field(plain, "CapEff"), 16) & (1 << 21) == 0 and status_field(plain, "NoNewPrivs") == "0"
    res = oci.ok("exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", cid, "cat", "/proc/self/status").stdout
    assert int(status_field(res, "CapEff"), 16) & (1 << 21), res  # CAP_SYS_ADMIN is bit 21
    assert status_field(res, "NoNewPrivs") == "1"
    assert oci.ok("exec", "--user", "5:6", "--additional-gids", "3000", cid, "id", "-G").stdout.split() == ["6", "3000"]


def test_exec_process_file(oci, tmp_path):
    b = oci.bundle("execp")
    cid = oci.new_id("execp")
    oci.start_sleeper(cid, b)
    process = {"terminal": False, "user": {"uid": 1234, "gid": 1235}, "cwd": "/bin",
               "args": ["sh", "-c", "echo $GREETING; pwd; id -u; id -g; exit 9"],
               "env": ["PATH=/bin", "GREETING=hello"]}
    (tmp_path / "process.json").write_text(json.dumps(process))
    res = oci("exec", "--process", tmp_path / "process.json", cid)
    assert res.returncode == 9, res
    assert res.stdout.splitlines() == ["hello", "/bin", "1234", "1235"], res


def test_exec_detach_with_pid_file(oci, tmp_path):
    b = oci.bundle("execd")
    cid = oci.new_id("execd")
    init = oci.start_sleeper(cid, b)
    pid_file = tmp_path / "exec.pid"
    started = time.monotonic()
    oci.ok("exec", "--detach", "--pid-file", pid_file, cid, "sleep", "997")
    assert time.monotonic() - started < 10
    text = pid_file.read_text()
    assert re.fullmatch(r"[1-9][0-9]*", text), repr(text)
    pid = int(text)
    assert pid_alive(pid) and cmdline(pid) == "sleep 997"
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
    assert pid in oci.ps(cid)


def test_exec_refused_unless_running(oci):
    b = oci.bundle("execc")
    cid = oci.new_id("execc")
    oci.create(cid, b)
    res = oci("exec", cid, "true")
    assert res.returncode != 0 and "created" in res.stderr, res


# -- ps, pause, resume, update


def test_ps_json_lists_host_pids(oci):
    b = oci.bundle("ps", "sh", "-c", "sleep 998 & exec sleep 999")
    cid = oci.new_id("ps")
    init = oci.start_sleeper(cid, b)
    pids = wait_for(lambda: len(oci.ps(cid)) == 2 and oci.ps(cid), what="two processes")
    assert init in pids
    assert sorted(cmdline(p) for p in pids) == ["sleep 998", "sleep 999"]
    for p in pids:
        assert f"isola-runtime/{cid}" in Path(f"/proc/{p}/cgroup").read_text()
    table = oci.ok("ps", cid).stdout.splitlines()
    assert table[0].split() == ["PID", "CMD"]
    assert sorted(int(line.split()[0]) for line in table[1:]) == sorted(pids)


def test_pause_and_resume(oci):
    b = oci.bundle("pause", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")
    cid = oci.new_id("pause")
    oci.start_sleeper(cid, b)
    count = b.rootfs / "tmp" / "count"

    def value():
        try:
            return int(count.read_text() or 0)
        except (OSError, ValueError):
            return 0

    wait_for(lambda: value() > 2, what="the counter to run")
    oci.ok("pause", cid)
    assert oci.status(cid) == "paused"
    time.sleep(0.2)
    frozen = value()
    time.sleep(0.5)
    assert value() == frozen, "the container made progress while paused"
    res = oci("pause", cid)
    assert res.returncode != 0, res
    oci.ok("resume", cid)
    assert oci.status(cid) == "running"
    wait_for(lambda: value() > frozen + 2, what="progress after resume")
    res = oci("resume", cid)
    assert res.returncode != 0 and "not paused" in res.stderr, res

    oci.ok("pause", cid)
    res = oci("exec", cid, "true")
    assert res.returncode != 0 and "paused" in res.stderr, res
    pid = oci.state(cid)["pid"]
    oci.ok("delete", "--force", cid)
    oci.wait_exit(pid)
    assert cgroup_dirs(f"isola-runtime/{cid}") == []


def test_update_resources(oci, tmp_path):
    b = oci.bundle("update")
    cid = oci.new_id("update")
    oci.start_sleeper(cid, b)
    memory = Path(f"/sys/fs/cgroup/memory/isola-runtime/{cid}/memory.limit_in_bytes")
    pids_max = Path(f"/sys/fs/cgroup/pids/isola-runtime/{cid}/pids.max")

    (tmp_path / "res.json").write_text(json.dumps({"memory": {"limit": 64 << 20}, "pids": {"limit": 40}}))
    oci.ok("update", "--resources", tmp_path / "res.json", cid)
    assert int(memory.read_text()) == 64 << 20
    assert pids_max.read_text().strip() == "40"
    # The container reads the same limit through its /sys/fs/cgroup.
    inside = oci.ok("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(inside) == 64 << 20

    oci.ok("update", "--resources", "-", cid, input=json.dumps({"memory": {"limit": 48 << 20}}))
    assert int(memory.read_text()) == 48 << 20
    oci.ok("update", "--memory", str(32 << 20), "--pids-limit", "30", "--cpu-quota", "50000",
           "--cpu-period", "100000", cid)
    assert int(memory.read_text()) == 32 << 20
    assert pids_max.read_text().strip() == "30"
    cpu = Path(f"/sys/fs/cgroup/cpu/isola-runtime/{cid}")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    res = oci("update", "--memory", "lots", cid)
    assert res.returncode != 0, res


# -- features, spec


def test_features(oci):
    f = oci.ok("features").json()
    assert re.fullmatch(r"1\.\d+\.\d+", f["ociVersionMin"]) and re.fullmatch(r"1\.\d+\.\d+", f["ociVersionMax"])
    assert set(f["hooks"]) >= {"prestart", "createRuntime", "poststart", "poststop"}
    assert {"ro", "bind", "rbind", "nosuid", "rprivate"} <= set(f["mountOptions"])
    linux = f["linux"]
    assert set(linux["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}
    assert "CAP_SYS_ADMIN" in linux["capabilities"] and "CAP_NET_BIND_SERVICE" in linux["capabilities"]
    assert linux["seccomp"]["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(linux["seccomp"]["actions"])
    assert {"SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"} <= set(linux["seccomp"]["operators"])
    assert "io.isola.isolation" in f["annotations"]


def test_spec_writes_a_template_and_refuses_to_overwrite(oci, tmp_path):
    d = tmp_path / "fresh"
    d.mkdir()
    res = subprocess.run([RUNTIME, "spec"], cwd=d, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    text = (d / "config.json").read_text()
    config = json.loads(text)
    assert re.match(r"^1\.\d+\.\d+", config["ociVersion"])
    assert config["root"]["path"] == "rootfs"
    assert config["process"]["args"] and config["process"]["cwd"] == "/"
    assert {n["type"] for n in config["linux"]["namespaces"]} >= {"pid", "mount", "network", "ipc", "uts"}
    assert any(m["destination"] == "/proc" for m in config["mounts"])

    again = oci("spec", "--bundle", d)
    assert again.returncode != 0 and "exists" in again.stderr, again
    assert (d / "config.json").read_text() == text


# -- VM isolation (each test boots a guest)


def test_vm_run_exit_code_and_guest_kernel(oci):
    b = oci.bundle("vmrun", "sh", "-c", "echo hello from the guest; uname -r; exit 5")
    b.annotate(*VM).save()
    res = oci("run", "--bundle", b.path, oci.new_id("vmrun"), timeout=VM_TIMEOUT)
    assert res.returncode == 5, res
    lines = res.stdout.splitlines()
    assert lines[0] == "hello from the guest", res
    assert re.match(r"\d+\.\d+", lines[1]) and lines[1] != platform.release(), res


def test_vm_runtime_name_lifecycle_exec_kill_and_host_view(oci, tmp_path):
    """isola-runtime-vm makes VM containers without the annotation."""
    vm_b = oci.bundle("vm", "sh", "-c", 'trap "exit 42" TERM; echo guest up; sleep 4322 & wait')
    proc_b = oci.bundle("proc", "sleep", "4321")
    vm_id, proc_id = oci.new_id("vm"), oci.new_id("proc")
    out = tmp_path / "vm.out"
    oci.ok("create", "--bundle", vm_b.path, "--pid-file", tmp_path / "vm.pid", vm_id, bin=RUNTIME_VM,
           stdout=out, timeout=VM_TIMEOUT)
    state = oci.state(vm_id)
    assert state["status"] == "created"
    keeper = state["pid"]
    assert (tmp_path / "vm.pid").read_text() == str(keeper)
    assert out.read_text() == ""
    oci.ok("start", vm_id)
    wait_for(lambda: "guest up" in out.read_text(), 60, what="the guest's output")
    assert oci.status(vm_id) == "running"
    assert keeper in oci.ps(vm_id)

    res = oci("exec", vm_id, "sh", "-c", "echo from exec; uname -r; exit 4")
    assert res.returncode == 4, res
    assert res.stdout.splitlines()[0] == "from exec" and res.stdout.splitlines()[1] != platform.release()

    # The host sees a process-isolated container's sleep, never the VM's.
    oci.start_sleeper(proc_id, proc_b)
    procs = host_cmdlines().values()
    assert any(c == "sleep 4321" for c in procs)
    assert not any("sleep 4322" in c for c in procs), [c for c in procs if "4322" in c]

    res = oci("update", "--memory", str(64 << 20), vm_id)
    assert res.returncode != 0 and "not supported" in res.stderr, res

    oci.ok("kill", vm_id, "TERM")
    status = oci.wait_exit(keeper, timeout=60)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 42, status
    assert oci.status(vm_id) == "stopped"
    oci.ok("delete", vm_id)
    assert_unknown(oci("state", vm_id))


def test_vm_pause_resume_detached_exec_and_kill_all(oci, tmp_path):
    b = oci.bundle("vmall", "sh", "-c", 'trap "echo got TERM; exit 42" TERM; '
                   "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")
    b.annotate(*VM).save()
    cid = oci.new_id("vmall")
    out = tmp_path / "out"
    keeper = oci.start_sleeper(cid, b, stdout=out, timeout=VM_TIMEOUT)
    count = b.rootfs / "tmp" / "count"  # the rootfs is shared with the guest

    def value():
        try:
            return int(count.read_text() or 0)
        except (OSError, ValueError):
            return 0

    wait_for(lambda: value() > 2, 60, what="the guest's counter")
    oci.ok("pause", cid)
    assert oci.status(cid) == "paused"
    time.sleep(0.3)
    frozen = value()
    time.sleep(0.7)
    assert value() == frozen, "the guest made progress while paused"
    oci.ok("resume", cid)
    assert oci.status(cid) == "running"
    wait_for(lambda: value() > frozen + 2, 30, what="progress after resume")

    oci.ok("exec", "--detach", "--pid-file", tmp_path / "exec.pid", cid, "sleep", "4323")
    relay = int((tmp_path / "exec.pid").read_text())
    assert pid_alive(relay)

    # --all: every process of the container gets the signal, as with process isolation.
    oci.ok("kill", "--all", cid, "TERM")
    status = oci.wait_exit(keeper, timeout=60)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 42, \
        f"wait status {status:#x}; the container's output: {out.read_text()!r}"
    assert "got TERM" in out.read_text()


def test_vm_exec_tty(oci, tmp_path):
    b = oci.bundle("vmtty", "sleep", "1000")
    b.annotate(*VM).save()
    cid = oci.new_id("vmtty")
    oci.start_sleeper(cid, b, timeout=VM_TIMEOUT)
    for n in range(3):
        receiver = ConsoleReceiver(tmp_path / f"vm-console{n}.sock")
        try:
            res = oci("exec", "--tty", "--console-socket", receiver.path, cid, "sh", "-c", "tty; exit 6")
            assert res.returncode == 6, res
            assert receiver.wait_closed().strip().startswith("/dev/pts/")
        finally:
            receiver.close()
    res = oci("exec", cid, "echo", "still answering")
    assert res.returncode == 0 and res.stdout == "still answering\n", res


def test_vm_applies_the_process_mounts_and_security_fields(oci, tmp_path):
    share, rw = tmp_path / "share", tmp_path / "rw"
    share.mkdir()
    rw.mkdir()
    rw.chmod(0o777)
    (share / "hello.txt").write_text("from the host\n")
    b = oci.bundle("vmspec", "sh", "-c", "hostname; echo $GREETING; pwd; id -u; id -G; cat /ro/hello.txt; "
                   "touch /ro/x || echo ro-refused; echo written > /rw/out; touch /newfile || echo root-ro; "
                   "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; mkdir /scratch/d; "
                   "grep 'open files' /proc/self/limits; cat /etc/secret.txt; cat /proc/sys/net/ipv4/ip_forward")
    b.annotate(*VM)
    b.config["hostname"] = "vm-box"
    b.config["root"]["readonly"] = True
    b.process.update(env=["PATH=/bin", "GREETING=hello"], cwd="/tmp", noNewPrivileges=True,
                     user={"uid": 1000, "gid": 1000, "additionalGids": [2000]},
                     rlimits=[{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}])
    chosen = ["CAP_CHOWN", "CAP_NET_RAW"]
    b.process["capabilities"] = {"bounding": chosen, "effective": chosen, "permitted": chosen}
    b.add_mount("/ro", "bind", str(share), ["rbind", "ro"])
    b.add_mount("/rw", "bind", str(rw), ["rbind"])
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["size=1m", "mode=1777"])
    (b.rootfs / "etc" / "secret.txt").write_text("secret\n")
    b.linux["maskedPaths"].append("/etc/secret.txt")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
    b.config["hooks"] = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {tmp_path}/{k}.json"]}]
                         for k in ("prestart", "poststart")}
    b.save()
    res = oci("run", "--bundle", b.path, oci.new_id("vmspec"), timeout=VM_TIMEOUT)
    assert res.returncode == 0, res
    assert [line.rstrip() for line in res.stdout.splitlines()] == [
        "vm-box", "hello", "/tmp", "1000", "1000 2000", "from the host", "ro-refused", "root-ro",
        "CapBnd:\t0000000000002001", "NoNewPrivs:\t1", "Seccomp:\t2",
        "Max open files            256                  512                  files", "1"], res
    assert "No space left on device" in res.stderr, res
    assert (rw / "out").read_text() == "written\n"
    states = {k: json.loads((tmp_path / f"{k}.json").read_text()) for k in ("prestart", "poststart")}
    assert states["prestart"]["pid"] > 0 and states["poststart"]["pid"] == states["prestart"]["pid"]
    assert states["poststart"]["status"] == "running"


def test_vm_refuses_what_it_cannot_honour(oci):
    b = oci.bundle("vmfds", "true")
    b.annotate("io.isola.isolation", "hyperv").save()
    cid = oci.new_id("vmfds")
    res = oci("create", "--preserve-fds", "1", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "--preserve-fds" in res.stderr, res
    assert_unknown(oci("state", cid))

    b.annotate("io.isola.isolation", "container").save()
    res = oci("create", "--bundle", b.path, cid)
    assert res.returncode != 0 and "io.isola.isolation" in res.stderr, res

    # What the guest would refuse is refused by create too, as with process isolation.
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    b.annotate(*VM).save()
    res = oci("create", "--bundle", b.path, cid, timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "SCMP_ACT_NOTIFY" in res.stderr, res
    assert_unknown(oci("state", cid))

    # The guest's block device of those numbers is not the host's.
    del b.linux["seccomp"]
    b.linux["devices"] = [{"path": "/dev/sdz", "type": "b", "major": 8, "minor": 0}]
    res = oci("create", "--bundle", b.save().path, cid, timeout=VM_TIMEOUT)
    assert res.returncode != 0 and "linux.devices" in res.stderr and "block devices" in res.stderr, res
    assert_unknown(oci("state", cid))


def test_vm_cpuset_devices_propagation_and_capabilities(oci, tmp_path):
    """Where a VM honours a field its own way: a cpuset pins QEMU on the host
    and gives the guest as many vCPUs; extra char devices, the root's
    propagation and the hostname (a joined uts namespace is the guest's new
    one) apply in the guest; ambient capabilities the kernel cannot raise
    are a warning; disableOOMKiller is accepted (the guest's cgroup v2 has
    no such switch); a bind mount's data options are ignored."""
    share = tmp_path / "share"
    share.mkdir()
    (share / "f").write_text("bound\n")
    b = oci.bundle("vmmore", "sh", "-c", "grep -c ^processor /proc/cpuinfo; "
                   "grep -E '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo | grep -o ' shared:' | head -n 1; "
                   "ls -ln /dev/fuse; hostname; grep CapAmb /proc/self/status; cat /b/f")
    b.annotate(*VM)
    b.linux["resources"]["cpu"] = {"cpus": "1", "mems": "0"}
    b.linux["resources"]["memory"] = {"disableOOMKiller": True}
    b.linux["rootfsPropagation"] = "shared"
    b.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600}]
    b.config["hostname"] = "vm-joined"
    b.namespace("uts")["path"] = "/proc/1/ns/uts"
    caps = ["CAP_KILL"]
    b.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}
    b.add_mount("/b", "bind", str(share), ["rbind", "ro", "mode=755"])
    cid = oci.new_id("vmmore")
    out = tmp_path / "out"
    res = oci("create", "--bundle", b.save().path, cid, stdout=out, timeout=VM_TIMEOUT)
    assert res.returncode == 0, res
    assert "can't raise ambient capability CAP_KILL" in res.stderr, res
    group = Path(f"/sys/fs/cgroup/cpuset/isola-runtime/{cid}")
    assert (group / "cpuset.cpus").read_text().strip() == "1"
    assert (group / "cpuset.mems").read_text().strip() == "0"
    oci.ok("start", cid, timeout=VM_TIMEOUT)
    wait_for(lambda: oci.status(cid) == "stopped", timeout=VM_TIMEOUT, what="the VM container to finish")
    lines = [line.rstrip() for line in out.read_text().splitlines()]
    assert lines[0] == "1" and lines[1] == " shared:", lines
    assert lines[2].split()[0] == "crw-------" and lines[2].split()[4:6] == ["10,", "229"], lines
    assert lines[3:] == ["vm-joined", "CapAmb:\t0000000000000000", "bound"], lines
    assert os.uname().nodename != "vm-joined"
