"""`isola update` (and `isola container update`), as docker update: new
memory, CPU and pids limits and a restart policy for running and stopped
containers of both isolation levels. A running container feels the new
limits at once (checked from inside it), a stopped one at its next start,
and inspect shows them. Bad input is refused naming the flag, and leaves
the record, the spec and the cgroup as they were.

VM checks boot real VMs (seconds each under TCG), so they are few."""

import json

import pytest

from containers import IMAGE, box, cgroup_file, describe, is_v2  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
MiB = 1 << 20

# A process container has no cgroupfs of its own: its limits are read on
# the host. A VM container's group is in its guest: the container (made
# --privileged for this) mounts its own view of it.
GUEST_CGROUP = "mkdir -p /tmp/cg; mountpoint -q /tmp/cg || mount -t cgroup2 none /tmp/cg; cd /tmp/cg; "


def host_limits(cid):
    memory = cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max").read_text().strip()
    pids = cgroup_file(cid, "pids", "pids.max", "pids.max").read_text().strip()
    return int(memory), pids


def guest_limits(box, cid):
    res = box.sh(cid, GUEST_CGROUP + "cat memory.max pids.max cpu.max", timeout=BOOT)
    assert res.returncode == 0, describe(res)
    memory, pids, quota, period = res.stdout.split()
    return int(memory), pids, f"{quota} {period}"


def host_config(box, ref):
    return box.inspect(ref)["HostConfig"]


def spec_text(box, cid):
    return (box.root / "containers" / cid / "config.json").read_text()


def fork_many(box, cid, n):
    """Starts n background sleeps in the container; the shell's stderr."""
    return box.sh(cid, f"for i in $(seq 1 {n}); do sleep 5 </dev/null >/dev/null 2>&1 & done; wait")


def test_running_process_container_gets_the_new_limits(box):
    cid = box.run_d("--name", "web", "-m", "64m", "--pids-limit", "50", IMAGE, "sleep", "1000")
    assert host_limits(cid) == (64 * MiB, "50")
    res = box("update", "-m", "96m", "--cpus", "0.5", "--pids-limit", "10", "web")
    assert res.returncode == 0 and res.stdout == "web\n", describe(res)
    assert host_limits(cid) == (96 * MiB, "10")
    if is_v2():
        assert cgroup_file(cid, "cpu", "", "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "").read_text().strip() == "50000"
    # The kernel now refuses more processes than that.
    forks = fork_many(box, cid, 20)
    assert "can't fork" in forks.stderr or "Resource temporarily unavailable" in forks.stderr, describe(forks)
    assert box.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
                  "web").split() == [str(96 * MiB), "500000000", "10"]
    spec = json.loads(spec_text(box, cid))["linux"]["resources"]
    assert spec["memory"]["limit"] == 96 * MiB and spec["pids"] == {"limit": 10}, spec
    assert spec["cpu"]["quota"] == 50000 and spec["cpu"]["period"] == 100000, spec
    # `container update` is the same command; -1 lifts the pids limit.
    assert box.ok("container", "update", "--pids-limit", "-1", cid[:12]) == cid[:12] + "\n"
    assert host_limits(cid)[1] == "max"


def test_stopped_process_container_uses_the_new_limits_at_start(box):
    cid = box.create("--name", "later", "-m", "64m", IMAGE, "sleep", "1000")
    assert box.ok("update", "-m", "80m", "--memory-swap", "160m", "--pids-limit", "33", "later") == "later\n"
    box.ok("start", "later")
    assert host_limits(cid) == (80 * MiB, "33")
    if not is_v2():
        memsw = cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes", "")
        assert not memsw.exists() or int(memsw.read_text()) == 160 * MiB
    hc = host_config(box, cid)
    assert (hc["Memory"], hc["MemorySwap"], hc["PidsLimit"]) == (80 * MiB, 160 * MiB, 33), hc


def test_restart_policy_shows_in_inspect(box):
    box.create("--name", "svc", IMAGE, "true")
    assert box.ok("update", "--restart", "on-failure:3", "svc") == "svc\n"
    out = box.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
                 "svc")
    assert out.split() == ["on-failure", "3"]


def test_restart_policy_is_refused_for_an_auto_remove_container(box):
    box.create("--name", "once", "--rm", IMAGE, "true")
    before = host_config(box, "once")
    res = box("update", "--restart", "always", "once")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: --restart") and "--rm" in res.stderr, describe(res)
    assert host_config(box, "once") == before


@pytest.mark.parametrize("args, message", [
    ([], "you must provide one or more flags"),
    (["-m", "4m"], "--memory: 4 MiB is below the minimum of 6 MiB"),
    (["-m", "lots"], "--memory: invalid size \"lots\""),
    (["-m", "128m"], "--memory: is above the container's memory plus swap limit"),
    (["--memory-swap", "32m"], "--memory-swap: is below the memory limit"),
    (["--memory-reservation", "200m"], "--memory-reservation: the memory reservation (200 MiB) would be above"),
    (["--cpus", "many"], "--cpus: invalid number"),
    (["--cpus", "1000"], "--cpus: must be from 0.01 to"),
    (["--pids-limit", "ten"], "--pids-limit: invalid number"),
    (["--pids-limit", "99999999"], "--pids-limit: at most"),
    (["--cpuset-cpus", "0-"], "--cpuset-cpus: invalid list"),
    (["--cpuset-cpus", "999"], "--cpuset-cpus: CPU 999 is not available"),
    (["--restart", "sometimes"], "--restart"),
])
def test_bad_input_is_refused_and_changes_nothing(box, args, message):
    cid = box.create("--name", "c", "-m", "64m", "--memory-swap", "100m", IMAGE, "true")
    before, spec = host_config(box, cid), spec_text(box, cid)
    res = box("update", *args, "c")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: ") and message in res.stderr, describe(res)
    assert res.stdout == ""
    assert host_config(box, cid) == before
    assert spec_text(box, cid) == spec


def test_unknown_container(box):
    res = box("update", "-m", "64m", "nosuch")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: ") and "nosuch" in res.stderr, describe(res)


@pytest.mark.skipif(is_v2(), reason="cgroup v2 reclaims or OOM-kills instead of refusing a lower memory.max")
def test_a_limit_the_kernel_refuses_leaves_everything_as_it_was(box):
    """Pages in /dev/shm cannot be reclaimed without swap: v1 refuses a
    memory limit below them (EBUSY). Memory plus swap, written first (it
    grows), goes back to what it was."""
    cid = box.run_d("--name", "full", "-m", "64m", IMAGE, "sleep", "1000")
    res = box.sh(cid, "dd if=/dev/zero of=/dev/shm/f bs=1M count=30 2>/dev/null && echo ok")
    assert res.stdout == "ok\n", describe(res)
    before, spec = host_config(box, cid), spec_text(box, cid)
    memsw = cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes", "")
    res = box("update", "-m", "16m", "--memory-swap", "100m", "--pids-limit", "20", "full")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: --memory 'full'") and "cannot give it back" in res.stderr, describe(res)
    assert host_limits(cid) == (64 * MiB, "max")
    if memsw.exists():
        assert int(memsw.read_text()) == 64 * MiB
    assert host_config(box, cid) == before
    assert spec_text(box, cid) == spec
    assert box.state(cid)["Status"] == "running"


def test_vm_container_limits_apply_in_its_guest(box):
    """Running: the container's group in the guest takes the new limits;
    the VM keeps its size, so more memory or CPUs than it has, or a
    cpuset, are refused. Stopped: the next start's guest uses them."""
    cid = box.run_d("--name", "vm1", VM, "--privileged", "-m", "96m", IMAGE, "sleep", "1000", timeout=BOOT)
    assert guest_limits(box, cid) == (96 * MiB, "max", "max 100000")
    res = box("update", "-m", "48m", "--cpus", "0.5", "--pids-limit", "10", "vm1", timeout=BOOT)
    assert res.returncode == 0 and res.stdout == "vm1\n", describe(res)
    assert guest_limits(box, cid) == (48 * MiB, "10", "50000 100000")
    assert box.ok("inspect", "-f", "{{.HostConfig.Memory}}", "vm1").strip() == str(48 * MiB)

    before, spec = host_config(box, cid), spec_text(box, cid)
    for args, message in [(["-m", "200m"], "--memory: 200 MiB is more than the container's VM has for it (96 MiB)"),
                          (["--cpus", "2"], "--cpus: must be from 0.01 to 1: the container's VM has 1 vCPU,"),
                          (["--cpuset-cpus", "0"], "--cpuset-cpus: a VM container runs on its VM's vCPUs")]:
        res = box("update", *args, "vm1")
        assert res.returncode == 125 and message in res.stderr, describe(res)
        assert host_config(box, cid) == before and spec_text(box, cid) == spec
    assert guest_limits(box, cid) == (48 * MiB, "10", "50000 100000")
    forks = fork_many(box, cid, 20)
    assert "can't fork" in forks.stderr or "Resource temporarily unavailable" in forks.stderr, describe(forks)

    box.ok("stop", "-t", "0", "vm1", timeout=BOOT)
    assert box.ok("update", "-m", "64m", "--pids-limit", "-1", "vm1") == "vm1\n"
    box.ok("start", "vm1", timeout=BOOT)
    assert guest_limits(box, cid) == (64 * MiB, "max", "50000 100000")
    vm_memory = json.loads((box.root / "containers" / cid / "vm.json").read_text())["memory_mb"]
    assert vm_memory == 96 + 64  # the VM keeps the size it was created with
