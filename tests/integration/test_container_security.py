"""Process isolation's security defaults as seen from inside a container:
capabilities, seccomp, no_new_privs, masked and read-only paths, /dev,
devices, inherited file descriptors, network namespaces."""

import json
import os
import re
from pathlib import Path

import pytest

from containers import DEFAULT_CAPS, IMAGE, box, describe  # noqa: F401

CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_CHOWN = 0


def status_field(box, field, *flags):
    res = box.run(*flags, IMAGE, "grep", f"^{field}:", "/proc/self/status")
    assert res.returncode == 0, describe(res)
    return res.stdout.split(":", 1)[1].strip()


def caps(box, *flags, field="CapEff"):
    return int(status_field(box, field, *flags), 16)


def host_status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


# -- capabilities


def test_default_capabilities_are_dockers(box):
    assert caps(box) == DEFAULT_CAPS, f"CapEff {caps(box):016x}"
    assert caps(box, field="CapBnd") == DEFAULT_CAPS
    assert caps(box, field="CapPrm") == DEFAULT_CAPS


def test_non_root_user_has_no_effective_capabilities(box):
    assert caps(box, "-u", "65534") == 0
    assert caps(box, "-u", "65534", field="CapPrm") == 0
    # The bounding set is still docker's.
    assert caps(box, "-u", "65534", field="CapBnd") == DEFAULT_CAPS


def test_cap_drop_all(box):
    assert caps(box, "--cap-drop", "ALL") == 0
    assert caps(box, "--cap-drop", "ALL", field="CapBnd") == 0
    res = box.run("--cap-drop", "ALL", IMAGE, "chown", "65534", "/tmp")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr, describe(res)


def test_cap_add_and_drop_one(box):
    assert caps(box, "--cap-add", "SYS_ADMIN") == DEFAULT_CAPS | (1 << CAP_SYS_ADMIN)
    assert caps(box, "--cap-add", "CAP_SYS_ADMIN") == DEFAULT_CAPS | (1 << CAP_SYS_ADMIN)
    assert caps(box, "--cap-drop", "NET_RAW") == DEFAULT_CAPS & ~(1 << CAP_NET_RAW)
    assert caps(box, "--cap-drop", "ALL", "--cap-add", "CHOWN") == 1 << CAP_CHOWN


def test_unknown_capability_is_refused(box):
    res = box.run("--cap-add", "NOT_A_CAP", IMAGE, "true")
    assert res.returncode == 125, describe(res)


def test_privileged_has_every_capability(box):
    every = int(host_status("CapBnd"), 16)
    assert caps(box, "--privileged") == every
    assert caps(box, "--privileged", field="CapBnd") == every


# -- seccomp and no_new_privs


def test_seccomp_filter_is_on_by_default(box):
    assert status_field(box, "Seccomp") == "2"


def test_seccomp_off_when_unconfined(box):
    assert status_field(box, "Seccomp", "--security-opt", "seccomp=unconfined") == "0"
    # Capabilities are unchanged by seccomp=unconfined.
    assert caps(box, "--security-opt", "seccomp=unconfined") == DEFAULT_CAPS


def test_seccomp_off_when_privileged(box):
    assert status_field(box, "Seccomp", "--privileged") == "0"


def test_seccomp_denies_a_blocked_syscall(box):
    """Creating a user namespace needs no capability, so only the seccomp
    profile stands in the way (docker's profile allows unshare only with
    CAP_SYS_ADMIN)."""
    res = box.run(IMAGE, "unshare", "-U", "true")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr, describe(res)
    res = box.run("--security-opt", "seccomp=unconfined", IMAGE, "unshare", "-U", "true")
    assert res.returncode == 0, describe(res)


def test_mount_is_denied_by_default(box):
    res = box.run(IMAGE, "mount", "-t", "tmpfs", "none", "/mnt")
    assert res.returncode != 0, describe(res)
    assert "denied" in res.stderr or "not permitted" in res.stderr, describe(res)
    res = box.run(IMAGE, "unshare", "-m", "true")
    assert res.returncode != 0, describe(res)
    assert "Operation not permitted" in res.stderr, describe(res)


def test_mount_works_with_sys_admin_and_no_seccomp(box):
    res = box.run("--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", IMAGE,
                  "sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo ok > /mnt/t/f && cat /mnt/t/f")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "ok\n"


def test_custom_seccomp_profile(box, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))
    res = box.run("--security-opt", f"seccomp={profile}", IMAGE,
                  "sh", "-c", "touch /made-file && ls /made-file && mkdir /made-dir")
    assert res.returncode != 0, describe(res)
    assert "/made-file" in res.stdout
    assert "Operation not permitted" in res.stderr, describe(res)
    assert status_field(box, "Seccomp", "--security-opt", f"seccomp={profile}") == "2"


def test_missing_seccomp_profile_is_an_error(box, tmp_path):
    res = box.run("--security-opt", f"seccomp={tmp_path}/nope.json", IMAGE, "true")
    assert res.returncode == 125, describe(res)


def test_no_new_privileges(box):
    assert status_field(box, "NoNewPrivs") == "0"
    assert status_field(box, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"


# -- masked and read-only paths


# docker's masked paths: files read as empty (/dev/null over them),
# directories as empty (a read-only tmpfs over them).
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware", "/sys/devices/virtual/powercap"]


def masked_here():
    return [p for p in MASKED if os.path.exists(p)]


def test_proc_and_sys_paths_are_masked(box):
    paths = masked_here()
    if not paths:
        pytest.skip("none of docker's masked paths exists on this host")
    script = "; ".join(f"echo {p} $(ls -A {p} 2>/dev/null | wc -l) $(cat {p} 2>/dev/null | wc -c)"
                       for p in paths)
    res = box.run(IMAGE, "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    for line in res.stdout.splitlines():
        path, entries, size = line.split()
        if os.path.isdir(path):
            assert entries == "0", f"{path} is not masked: {entries} entries inside the container"
        else:
            assert size == "0", f"{path} is not masked: {size} bytes readable inside the container"


def test_proc_sys_is_read_only(box):
    before = Path("/proc/sys/kernel/domainname").read_text()
    res = box.run(IMAGE, "sh", "-c", "echo hacked > /proc/sys/kernel/domainname")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr, describe(res)
    assert Path("/proc/sys/kernel/domainname").read_text() == before
    res = box.run(IMAGE, "sh", "-c", "echo 1 > /proc/sysrq-trigger")
    assert res.returncode != 0, describe(res)


def test_sys_is_read_only(box):
    res = box.run(IMAGE, "sh", "-c", "grep ' /sys ' /proc/mounts")
    assert res.returncode == 0, describe(res)
    assert re.search(r"\bro\b", res.stdout.split()[3]), res.stdout
    res = box.run(IMAGE, "mkdir", "/sys/fs/cgroup/escape")
    assert res.returncode != 0, describe(res)


def test_privileged_sees_unmasked_proc(box):
    if not os.path.exists("/proc/timer_list"):
        pytest.skip("no /proc/timer_list on this host")
    res = box.run("--privileged", IMAGE, "sh", "-c", "head -c 16 /proc/timer_list | wc -c")
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == "16"


# -- /dev and devices

# A container may create device nodes (CAP_MKNOD, as in docker) but open
# only the default ones: the devices cgroup denies the rest. /dev/net/tun
# (10:200) opens without any capability, so only the cgroup can refuse it.
MKNOD_TUN = "mknod /dev/t c 10 200 && cat /dev/t; mknod /dev/n c 1 3 && echo x >/dev/n && echo null-ok"


def test_devices_outside_the_default_set_cannot_be_opened(box):
    res = box.run(IMAGE, "sh", "-c", MKNOD_TUN)
    assert "can't open '/dev/t': Operation not permitted" in res.stderr, describe(res)
    assert "null-ok" in res.stdout, describe(res)


def test_privileged_may_open_any_device(box):
    res = box.run("--privileged", IMAGE, "sh", "-c", MKNOD_TUN)
    assert "can't open" not in res.stderr and "null-ok" in res.stdout, describe(res)



def test_minimal_dev(box):
    res = box.run(IMAGE, "ls", "-1", "/dev")
    assert res.returncode == 0, describe(res)
    names = set(res.stdout.split())
    for need in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"):
        assert need in names, f"/dev/{need} missing; /dev has {sorted(names)}"
    for host_only in ("kvm", "mem", "kmsg", "vda", "sda", "loop0", "zram0"):
        assert host_only not in names, f"host device /dev/{host_only} visible: {sorted(names)}"
    res = box.run(IMAGE, "sh", "-c",
                  "echo x > /dev/null && head -c 5 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c"
                  " && ! echo x > /dev/full")
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["5", "5"]


def test_shm_is_writable(box):
    res = box.run(IMAGE, "sh", "-c", "echo hi > /dev/shm/f && cat /dev/shm/f")
    assert res.stdout == "hi\n", describe(res)


def host_block_device():
    for dev in sorted(Path("/sys/block").iterdir()):
        if dev.name.startswith(("loop", "ram", "zram")):
            continue
        dev_file = dev / "dev"
        if dev_file.exists():
            return dev.name, dev_file.read_text().strip()
    return None


def test_host_disk_is_not_readable_through_mknod(box):
    """CAP_MKNOD is in the default set, but the devices the container may
    open are limited (docker's device cgroup): a node for the host's disk
    cannot be read."""
    found = host_block_device()
    if not found:
        pytest.skip("no block device on this host")
    name, majmin = found
    major, minor = majmin.split(":")
    res = box.run(IMAGE, "sh", "-c", f"mknod /tmp/disk b {major} {minor} && head -c 512 /tmp/disk | wc -c")
    assert "512" not in res.stdout.split(), f"read the host's /dev/{name} from a container: {describe(res)}"


# -- nothing of the host or the runtime leaks in through fds


def test_no_inherited_file_descriptors(box, tmp_path):
    res = box.run(IMAGE, "sh", "-c", "ls -l /proc/$$/fd")
    assert res.returncode == 0, describe(res)
    targets = [l.split(" -> ", 1)[1] for l in res.stdout.splitlines() if " -> " in l]
    for t in targets:
        ok = t in ("/dev/null", "/dev/console") or t.startswith(("pipe:", "socket:", "/dev/pts/"))
        assert ok, f"the container's PID 1 holds an unexpected fd to {t!r}:\n{res.stdout}"
    res = box.run(IMAGE, "sh", "-c", "ls /proc/1/fd | wc -l")
    assert int(res.stdout) <= 5, describe(res)


def test_runtime_binary_is_not_reachable(box):
    """/proc/1/exe is the container's own command, never isola."""
    res = box.run(IMAGE, "sh", "-c", "readlink /proc/1/exe; readlink /proc/self/exe")
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["/bin/busybox", "/bin/busybox"], describe(res)


# -- network


def test_network_none_has_only_loopback(box):
    res = box.run("--network", "none", IMAGE, "sh", "-c", "ls /sys/class/net; ip link show lo")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    names = {l for l in lines if l and not l[0].isdigit() and not l.startswith(" ")}
    assert "lo" in names
    assert "eth0" not in names, res.stdout
    assert re.search(r"<[^>]*\bUP\b[^>]*>", res.stdout), f"loopback is down:\n{res.stdout}"
    res = box.run("--network", "none", IMAGE, "ping", "-c", "1", "-W", "5", "127.0.0.1")
    assert res.returncode == 0, describe(res)


def test_network_host_sees_host_interfaces(box):
    # The test's own network namespace (sysfs shows the one it was mounted in).
    host = sorted(l.split(":", 1)[0].strip() for l in Path("/proc/self/net/dev").read_text().splitlines()[2:])
    res = box.run("--network", "host", IMAGE, "sh", "-c", "cat /proc/net/dev")
    assert res.returncode == 0, describe(res)
    names = sorted(l.split(":", 1)[0].strip() for l in res.stdout.splitlines()[2:])
    assert names == host


def test_namespaces_differ_from_the_hosts(box):
    res = box.run(IMAGE, "sh", "-c", "for n in pid mnt uts ipc net cgroup; do readlink /proc/1/ns/$n; done")
    assert res.returncode == 0, describe(res)
    inside = res.stdout.split()
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "uts", "ipc", "net", "cgroup")]
    assert len(inside) == 6
    for a, b in zip(inside, host):
        assert a != b, f"namespace {a} is the host's"
