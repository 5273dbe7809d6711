"""VM isolation (--isolation=vm): the same containers, each in its own VM.

Every test boots real VMs (QEMU microvm, the Debian guest kernel, isola's
agent as PID 1) -- under TCG on machines without usable hardware
virtualisation -- so each boot is made to count."""

import os
import platform
import re
import time

from containers import IMAGE, box, comm, describe, pid_alive, pty_session, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG


def host_processes():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    out[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                pass
    return out


def test_run_shows_the_guest_kernel_and_exit_code(box):
    res = box("run", "--rm", VM, IMAGE, "sh", "-c", "echo hello from the vm; uname -r; echo err >&2; exit 3",
              timeout=BOOT)
    assert res.returncode == 3, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "hello from the vm", describe(res)
    assert lines[1] != platform.release(), "uname -r shows the host's kernel"
    assert re.match(r"\d+\.\d+", lines[1]), describe(res)
    assert res.stderr.strip() == "err", describe(res)
    assert box.ids() == []  # --rm


def test_command_not_found_is_127(box):
    res = box("run", "--rm", VM, IMAGE, "no-such-command", timeout=BOOT)
    assert res.returncode == 127, describe(res)
    assert "no-such-command" in res.stderr


def test_detached_vm_container_lifecycle(box):
    cid = box.run_d(VM, IMAGE, "sh", "-c", "echo started; exec sleep 1000", timeout=BOOT)
    info = box.inspect(cid)
    assert info["Isolation"] == "vm"
    vm = info["VM"]
    worker = vm["WorkerPid"]
    assert worker > 0 and pid_alive(worker)
    # The host sees one worker process with the VM's name ...
    assert comm(worker) == "isola-vm-" + cid[:6]
    assert vm["Accelerator"] in ("tcg", "kvm")
    assert vm["GuestKernel"] and vm["GuestKernel"] != platform.release()
    # ... and never the container's own processes.
    procs = host_processes()
    assert not [p for p, cmd in procs.items() if cmd == "sleep 1000"], "the container's sleep is a host process"
    entry = box.ps_entry(cid)
    assert entry["Isolation"] == "vm" and entry["State"] == "running"
    assert "vm" in box.ok("ps").splitlines()[1]

    # isola top lists the guest's processes with guest PIDs.
    top = box.ok("top", cid, timeout=60)
    assert "PID" in top.splitlines()[0]
    sleep_rows = [l for l in top.splitlines()[1:] if l.endswith("sleep 1000")]
    assert sleep_rows, top
    guest_pid = int(sleep_rows[0].split()[1])
    assert not (pid_alive(guest_pid) and comm(guest_pid) == "sleep"), "the guest PID is a host sleep"

    wait_for(lambda: "started" in box.ok("logs", cid), what="the container's output in its log")

    res = box.exec(cid, "sh", "-c", "hostname; echo written > /from-the-vm; exit 4", timeout=60)
    assert res.returncode == 4, describe(res)
    assert res.stdout.strip() == cid[:12]
    upper = info["GraphDriver"]["Data"]["UpperDir"]
    with open(os.path.join(upper, "from-the-vm")) as f:
        assert f.read() == "written\n"

    stats = box.ok("stats", "--no-stream", "--format", "json", cid, timeout=60)
    import json
    entry = json.loads(stats)[0]
    assert entry["MemUsage"] > 0 and entry["MemLimit"] == 256 << 20, stats  # the worker, against the VM's size

    start = time.monotonic()
    res = box("stop", "-t", "2", cid, timeout=60)
    assert res.returncode == 0, describe(res)
    assert time.monotonic() - start < 30
    state = box.state(cid)
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 137  # sleep as PID 1 ignores TERM, then is killed
    wait_for(lambda: not pid_alive(worker), what="the VM worker to go")
    box.rm_f(cid)


def test_killed_vm_worker_leaves_a_clean_exited_container(box):
    cid = box.run_d(VM, IMAGE, "sleep", "1000", timeout=BOOT)
    worker = box.inspect(cid)["VM"]["WorkerPid"]
    os.kill(worker, 9)
    state = wait_for(lambda: (s := box.state(cid))["Status"] == "exited" and s, timeout=30,
                     what="the container to show exited")
    assert state["Error"], "no error recorded for a VM that died"
    assert not pid_alive(worker)
    box.rm_f(cid)


def test_memory_sizes_the_vm(box):
    res = box("run", "--rm", VM, "-m", "96m", IMAGE, "sh", "-c", "head -1 /proc/meminfo", timeout=BOOT)
    assert res.returncode == 0, describe(res)
    total_kb = int(res.stdout.split()[1])
    # The limit plus the guest kernel's reserve, minus what the kernel keeps.
    assert 64 * 1024 < total_kb <= (96 + 64) * 1024, res.stdout


def test_interactive_terminal_in_a_vm(box, pty_session):
    s = pty_session(box.cmd("run", "-it", "--rm", VM, IMAGE, "sh"), rows=30, cols=100)
    s.expect(r"# ", timeout=BOOT)
    s.send("tty; stty size; echo $((6*7)); exit 5\n")
    code = s.wait(timeout=60)
    assert code == 5, s.text()
    assert "42" in s.text() and "30 100" in s.text(), s.text()
    # The pty is the container's own, in the guest, as with process isolation.
    assert re.search(r"/dev/pts/\d+", s.text()), s.text()


def test_volumes_and_exec_terminal_in_a_vm(box, tmp_path, pty_session):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "from-host").write_text("host data\n")
    cid = box.run_d(VM, "-v", f"{shared}:/data", "-v", f"{tmp_path}/ro-src:/ro:ro", "-e", "GREETING=hi",
                    "-w", "/data", IMAGE, "sleep", "1000", timeout=BOOT)
    res = box.exec(cid, "sh", "-c", "pwd; echo $GREETING; cat /data/from-host; echo guest data > /data/from-guest; "
                   "touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused", timeout=60)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split("\n")[:4] == ["/data", "hi", "host data", "ro-refused"], describe(res)
    assert (shared / "from-guest").read_text() == "guest data\n"

    s = pty_session(box.cmd("exec", "-it", cid, "sh"), rows=40, cols=120)
    s.expect(r"# ", timeout=60)
    s.send("stty size; echo $((7*6)); exit 9\n")
    assert s.wait(timeout=60) == 9, s.text()
    assert "40 120" in s.text() and "42" in s.text(), s.text()
    box.rm_f(cid)


def test_signals_reach_the_guest(box):
    cid = box.run_d(VM, IMAGE, "sh", "-c",
                    'trap "echo got USR1; exit 9" USR1; echo ready; while :; do sleep 0.2; done', timeout=BOOT)
    # A PID 1 drops signals it has no handler for yet: wait for the trap.
    wait_for(lambda: "ready" in box.ok("logs", cid), timeout=60, what="the trap to be set")
    res = box("kill", "-s", "USR1", cid, timeout=60)
    assert res.returncode == 0, describe(res)
    state = wait_for(lambda: (s := box.state(cid))["Status"] == "exited" and s, timeout=60,
                     what="the container to exit on USR1")
    assert state["ExitCode"] == 9
    assert "got USR1" in box.ok("logs", cid)
    box.rm_f(cid)
