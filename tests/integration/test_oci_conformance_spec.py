"""isola-runtime and the fields of config.json (OCI runtime spec), with
process isolation: what the container's process sees, and what the host
sees of it. Commands and VM isolation: test_oci_conformance.py."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bundles import RUNTIME, ConsoleReceiver, cgroup_dirs, make_bundle, oci, wait_for  # noqa: F401


def run(oci, b, name=None):
    """`run` of bundle b (saved first): the Result."""
    b.save()
    return oci("run", "--bundle", b.path, oci.new_id(name or b.path.name))


def run_ok(oci, b, name=None):
    res = run(oci, b, name)
    assert res.returncode == 0, res
    return res.stdout


def applied_or_refused(oci, b, field, name=None):
    """For a field isola may not implement: by isola's rule (refuse what it
    cannot honour rather than run a container other than asked) `run`
    either refuses it, naming it (returns None), or runs the container
    (returns the Result, for the caller to check the field took effect)."""
    res = run(oci, b, name)
    if res.returncode != 0 and field in res.stderr:
        return None
    assert res.returncode == 0, res
    return res


def status_field(text, name):
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def assert_refused(oci, b, cid, *words):
    """create fails, names what it refuses, and leaves no container."""
    b.save()
    res = oci("create", "--bundle", b.path, cid)
    assert res.returncode != 0, res
    for w in words:
        assert w in res.stderr, res
    gone = oci("state", cid)
    assert gone.returncode != 0 and "does not exist" in gone.stderr, gone
    assert cgroup_dirs(f"isola-runtime/{cid}") == []
    return res


# -- process


def test_hostname_env_cwd_user(oci):
    b = oci.bundle("proc", "sh", "-c", 'hostname; echo "$GREETING"; pwd; id -u; id -g; id -G')
    b.config["hostname"] = "oci-box"
    b.process["env"] = ["PATH=/bin", "GREETING=hello world"]
    b.process["cwd"] = "/tmp"
    b.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001]}
    assert run_ok(oci, b).splitlines() == ["oci-box", "hello world", "/tmp", "1000", "1001", "1001 2000 2001"]


def test_rlimits(oci):
    b = oci.bundle("rlimits", "cat", "/proc/self/limits")
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    limits = {line[:26].strip(): line[26:].split()[:2] for line in run_ok(oci, b).splitlines()[1:]}
    assert limits["Max open files"] == ["256", "512"]
    assert limits["Max processes"] == ["100", "200"]


def test_capabilities(oci):
    b = oci.bundle("caps", "cat", "/proc/self/status")
    chosen = ["CAP_CHOWN", "CAP_NET_RAW"]  # bits 0 and 13
    b.process["capabilities"] = {"bounding": chosen, "effective": chosen, "permitted": chosen,
                                 "inheritable": [], "ambient": []}
    status = run_ok(oci, b)
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status_field(status, field), 16) == 0x2001, (field, status)
    assert int(status_field(status, "CapInh"), 16) == 0

    b.process["capabilities"] = {"bounding": [], "effective": [], "permitted": []}
    status = run_ok(oci, b, "nocaps")
    assert int(status_field(status, "CapEff"), 16) == 0 and int(status_field(status, "CapBnd"), 16) == 0

    # A non-root user keeps only what is also ambient.
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["capabilities"] = {"bounding": chosen, "effective": chosen, "permitted": chosen,
                                 "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]}
    status = run_ok(oci, b, "ambient")
    for field in ("CapEff", "CapPrm", "CapAmb"):
        assert int(status_field(status, field), 16) == 0x2000, (field, status)


def test_ambient_capabilities_not_also_inheritable_are_a_warning(oci):
    """`runc spec` of runc 1.1 lists ambient capabilities and no inheritable
    ones. The kernel raises an ambient capability only if it is also
    permitted and inheritable; runc warns about the others and goes on."""
    b = oci.bundle("amb", "cat", "/proc/self/status")
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # bits 29, 5, 10
    b.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}
    res = run(oci, b)
    assert res.returncode == 0, res
    for cap in caps:
        assert f"can't raise ambient capability {cap}" in res.stderr, res
    assert int(status_field(res.stdout, "CapAmb"), 16) == 0
    assert int(status_field(res.stdout, "CapEff"), 16) == 0x20000420

    # runc's own case: one ambient capability inheritable, one not even permitted.
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                 "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    res = run(oci, b, "amb-user")
    assert res.returncode == 0, res
    assert "can't raise ambient capability CAP_CHOWN" in res.stderr and "CAP_KILL" not in res.stderr, res
    for field in ("CapAmb", "CapEff", "CapPrm"):
        assert int(status_field(res.stdout, field), 16) == 0x20, (field, res.stdout)


def test_no_new_privileges(oci):
    b = oci.bundle("nnp", "cat", "/proc/self/status")
    b.process["noNewPrivileges"] = True
    assert status_field(run_ok(oci, b, "nnp-on"), "NoNewPrivs") == "1"
    b.process["noNewPrivileges"] = False
    assert status_field(run_ok(oci, b, "nnp-off"), "NoNewPrivs") == "0"


def test_domainname(oci):
    b = oci.bundle("domain", "cat", "/proc/sys/kernel/domainname")
    b.config["domainname"] = "oci.example"
    res = applied_or_refused(oci, b, "domainname")
    assert res is None or res.stdout.strip() == "oci.example", f"domainname was ignored:\n{res}"


def test_oom_score_adj(oci):
    b = oci.bundle("oom", "cat", "/proc/self/oom_score_adj")
    b.process["oomScoreAdj"] = 500
    res = applied_or_refused(oci, b, "oomScoreAdj")
    assert res is None or res.stdout.strip() == "500", f"process.oomScoreAdj was ignored:\n{res}"


def test_user_umask(oci):
    b = oci.bundle("umask", "sh", "-c", "umask")
    b.process["user"]["umask"] = 0o077
    res = applied_or_refused(oci, b, "umask")
    assert res is None or res.stdout.strip() == "0077", f"process.user.umask was ignored:\n{res}"


# -- root, mounts, masked and read-only paths


def test_mounts_tmpfs_and_binds(oci, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello.txt").write_text("from the host\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    b = oci.bundle("mounts", "sh", "-c", "grep ' /scratch ' /proc/mounts; cat /ro/hello.txt; "
                   "touch /ro/x || echo ro-refused; echo written > /rw/out; cat /etc/host-file; "
                   "echo data > /scratch/f && cat /scratch/f")
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "size=1m", "mode=750"])
    b.add_mount("/ro", "bind", str(share), ["rbind", "ro"])
    b.add_mount("/rw", "bind", str(rw), ["bind"])
    b.add_mount("/etc/host-file", "bind", str(share / "hello.txt"), ["bind", "ro"])
    lines = run_ok(oci, b).splitlines()
    fields = lines[0].split()
    assert fields[:3] == ["tmpfs", "/scratch", "tmpfs"], lines
    options = fields[3].split(",")
    assert {"rw", "nosuid", "nodev", "size=1024k", "mode=750"} <= set(options), lines
    assert lines[1:] == ["from the host", "ro-refused", "from the host", "data"], lines
    assert (rw / "out").read_text() == "written\n"
    assert sorted(os.listdir(share)) == ["hello.txt"]


def test_recursive_readonly_mount_option(oci, tmp_path):
    """Runtime spec 1.1: "rro" makes a mount and every mount below it read-only
    (plain "ro" leaves the mounts below writable)."""
    share = tmp_path / "rro"
    (share / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rro-sub", str(share / "sub")], check=True, timeout=30)
    try:
        b = oci.bundle("rro", "sh", "-c", "touch /rro/x || echo top-ro; touch /rro/sub/x || echo sub-ro; "
                       "touch /ro/sub/x && echo ro-sub-writable")
        b.add_mount("/rro", "bind", str(share), ["rbind", "rro"])
        b.add_mount("/ro", "bind", str(share), ["rbind", "ro"])
        assert run_ok(oci, b).splitlines() == ["top-ro", "sub-ro", "ro-sub-writable"]
        assert not (share / "x").exists()
    finally:
        subprocess.run(["umount", "-l", str(share / "sub")], timeout=30)


def test_bind_mount_ignores_file_system_options(oci, tmp_path):
    """As runc: data options (mode=, size=) do not apply to a bind mount and
    are ignored; the flags still are applied. A recursive option isola
    cannot apply is refused by name."""
    share = tmp_path / "share"
    share.mkdir()
    (share / "f").write_text("hi\n")
    b = oci.bundle("bindopts", "sh", "-c", "cat /b/f; touch /b/x || echo ro-refused")
    b.add_mount("/b", "bind", str(share), ["rbind", "ro", "mode=755", "size=1k"])
    assert run_ok(oci, b).splitlines() == ["hi", "ro-refused"]
    b.config["mounts"][-1]["options"] = ["rbind", "ratime"]
    assert_refused(oci, b, oci.new_id("ratime"), "mounts[", "ratime")


def test_root_readonly(oci):
    b = oci.bundle("rootro", "sh", "-c", "grep ' / ' /proc/mounts; touch /newfile || echo refused; "
                   "touch /dev/shm/ok && echo shm-writable")
    b.config["root"]["readonly"] = True
    lines = run_ok(oci, b).splitlines()
    assert "ro" in lines[0].split()[3].split(","), lines
    assert lines[1:] == ["refused", "shm-writable"]
    assert not (b.rootfs / "newfile").exists()


def test_masked_and_readonly_paths(oci):
    b = oci.bundle("masked", "sh", "-c",
                   "cat /etc/secret.txt; echo end; ls /secretdir; echo end; ls /sys/firmware; echo end; "
                   "touch /data/x || echo data-ro; (echo x > /proc/sys/kernel/hostname) || echo procsys-ro")
    (b.rootfs / "etc" / "secret.txt").write_text("top secret\n")
    (b.rootfs / "secretdir").mkdir()
    (b.rootfs / "secretdir" / "key").write_text("key\n")
    (b.rootfs / "data").mkdir()
    b.linux["maskedPaths"] += ["/etc/secret.txt", "/secretdir"]
    b.linux["readonlyPaths"] += ["/data"]
    assert "/sys/firmware" in b.linux["maskedPaths"] and "/proc/sys" in b.linux["readonlyPaths"]
    assert os.listdir("/sys/firmware"), "the host's /sys/firmware is empty: the check below means nothing"
    res = run(oci, b)
    assert res.returncode == 0, res
    assert res.stdout.splitlines() == ["end", "end", "end", "data-ro", "procsys-ro"], res
    assert (b.rootfs / "etc" / "secret.txt").read_text() == "top secret\n"


def root_mount(mountinfo):
    """The fields before " - " of the mountinfo line of "/"."""
    lines = [line.split(" - ")[0].split() for line in mountinfo.splitlines()]
    return next(fields for fields in reversed(lines) if fields[4] == "/")


def test_rootfs_propagation(oci):
    """shared makes the container's / a peer group of its own (runc applies
    the propagation to / after pivot_root); the host's mounts are untouched."""
    b = oci.bundle("prop", "cat", "/proc/self/mountinfo")
    for prop, tag in (("shared", "shared:"), ("rshared", "shared:"), ("private", None), ("unbindable", "unbindable")):
        b.linux["rootfsPropagation"] = prop
        fields = root_mount(run_ok(oci, b, f"prop-{prop}"))
        optional = fields[6:]
        if tag:
            assert any(f.startswith(tag) for f in optional), f"rootfsPropagation {prop} was ignored: {fields}"
        else:
            assert optional == [], fields
    b.linux["rootfsPropagation"] = "sideways"
    assert_refused(oci, b, oci.new_id("prop-bad"), "linux.rootfsPropagation")
    assert str(b.path) not in Path("/proc/self/mountinfo").read_text()


def test_rootfs_propagation_slave_receives_the_host_mounts(oci, tmp_path):
    """slave: the host's mounts below the rootfs appear in the container,
    the container's never reach the host."""
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "prop-shared", str(shared)], check=True, timeout=30)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True, timeout=30)
        b = make_bundle(shared / "bundle", "sleep", "1000")
        (b.rootfs / "mnt").mkdir()
        b.linux["rootfsPropagation"] = "rslave"
        admin = ["CAP_SYS_ADMIN"]
        b.process["capabilities"] = {"bounding": admin, "effective": admin, "permitted": admin}
        cid = oci.new_id("slave")
        oci.start_sleeper(cid, b.save())
        root = root_mount(oci.ok("exec", cid, "cat", "/proc/self/mountinfo").stdout)
        assert any(f.startswith("master:") for f in root[6:]), root
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "from-host", str(b.rootfs / "mnt")], check=True,
                       timeout=30)
        assert "from-host" in oci.ok("exec", cid, "grep", "/mnt", "/proc/self/mountinfo").stdout
        oci.ok("exec", cid, "mount", "-t", "tmpfs", "from-container", "/tmp")
        assert "from-container" not in Path("/proc/self/mountinfo").read_text()
        oci.ok("delete", "--force", cid)
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], timeout=30)


# -- linux: namespaces, ids, sysctl, seccomp, resources


def test_new_namespaces(oci):
    b = oci.bundle("ns")
    b.linux["namespaces"].append({"type": "cgroup"})
    cid = oci.new_id("ns")
    pid = oci.start_sleeper(cid, b.save())
    for ns in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    res = oci.ok("exec", cid, "sh", "-c", "echo $$; cat /proc/1/cmdline; echo; cat /proc/self/cgroup")
    lines = res.stdout.splitlines()
    assert lines[1].startswith("sleep"), res  # PID 1 is the container's init
    assert all(line.endswith(":/") for line in lines[2:]), f"the cgroup namespace is not the container's:\n{res}"


def test_namespace_paths_are_joined(oci):
    netns = f"isola-oci-{oci.token}"
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", netns, "link", "add", "ocitest0", "type", "veth", "peer", "name", "ocitest1"],
                       check=True, timeout=30)
        b = oci.bundle("netns", "sleep", "1000")
        b.namespace("network")["path"] = f"/run/netns/{netns}"
        b.save()
        cid = oci.new_id("netns")
        pid = oci.start_sleeper(cid, b)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
        assert sorted(oci.ok("exec", cid, "ls", "/sys/class/net").stdout.split()) == ["lo", "ocitest0", "ocitest1"]
        assert "ocitest0:" in oci.ok("exec", cid, "cat", "/proc/net/dev").stdout

        # A second container joins the first one's network and ipc
        # namespaces by /proc path, as a pod's containers do.
        pod = oci.bundle("pod", "sleep", "1000")
        pod.namespace("network")["path"] = f"/proc/{pid}/ns/net"
        pod.namespace("ipc")["path"] = f"/proc/{pid}/ns/ipc"
        pod.save()
        member = oci.new_id("pod")
        member_pid = oci.start_sleeper(member, pod)
        for ns in ("net", "ipc"):
            assert os.readlink(f"/proc/{member_pid}/ns/{ns}") == os.readlink(f"/proc/{pid}/ns/{ns}")
        for ns in ("mnt", "pid", "uts"):
            assert os.readlink(f"/proc/{member_pid}/ns/{ns}") != os.readlink(f"/proc/{pid}/ns/{ns}")
        oci.ok("delete", "--force", member)
        oci.ok("delete", "--force", cid)
    finally:
        subprocess.run(["ip", "netns", "delete", netns], timeout=30)

    fresh = oci.bundle("fresh-netns", "ls", "/sys/class/net")
    assert run_ok(oci, fresh).split() == ["lo"]


def test_hostname_in_a_joined_uts_namespace(oci):
    """As runc: the hostname is set in the uts namespace the container joins
    (a pod's); never in the host's, which runc would change too."""
    holder = subprocess.Popen(["unshare", "--uts", "sleep", "1000"])
    try:
        ns = f"/proc/{holder.pid}/ns/uts"
        wait_for(lambda: os.readlink(ns) != os.readlink("/proc/self/ns/uts"), what="the uts namespace")
        b = oci.bundle("utsjoin", "hostname")
        b.config["hostname"] = "joined-box"
        b.namespace("uts")["path"] = ns
        assert run_ok(oci, b).strip() == "joined-box"
        seen = subprocess.run(["nsenter", f"--uts={ns}", "hostname"], capture_output=True, text=True, timeout=30)
        assert seen.stdout.strip() == "joined-box", seen
        host_name = os.uname().nodename
        b.namespace("uts")["path"] = "/proc/self/ns/uts"
        assert_refused(oci, b, oci.new_id("utshost"), "hostname", "other than the host's")
        assert os.uname().nodename == host_name
    finally:
        holder.kill()
        holder.wait()


def test_a_mount_namespace_is_required(oci):
    """runc without a mount namespace makes the container's mounts in the
    host's and changes the propagation of the host's /: isola refuses."""
    b = oci.bundle("nomnt", "true")
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "mount"]
    assert_refused(oci, b, oci.new_id("nomnt"), "linux.namespaces", "mount namespace")
    assert str(b.path) not in Path("/proc/self/mountinfo").read_text()


def test_user_namespace_with_id_mappings(oci):
    # The mapped root must be able to reach the rootfs: pytest's tmp_path is 0700.
    path = Path(tempfile.mkdtemp(prefix="isola-oci-userns-"))
    try:
        path.chmod(0o755)
        b = make_bundle(path / "bundle", "sleep", "1000")
        b.linux["namespaces"].append({"type": "user"})
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.save()
        cid = oci.new_id("userns")
        pid = oci.start_sleeper(cid, b)
        status = Path(f"/proc/{pid}/status").read_text()
        assert status_field(status, "Uid").split()[0] == "100000"
        assert status_field(status, "Gid").split()[0] == "100000"
        res = oci("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; touch /bin/x || echo refused")
        assert res.returncode == 0, res
        lines = res.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", "100000", "65536"] and lines[2] == "refused", res
        oci.ok("delete", "--force", cid)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_sysctl(oci):
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    b = oci.bundle("sysctl", "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/domainname")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1" if host.strip() == "0" else "0",
                         "kernel.domainname": "oci.example"}
    assert run_ok(oci, b).splitlines() == [b.linux["sysctl"]["net.ipv4.ip_forward"], "oci.example"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host


def test_sysctl_outside_the_container_namespaces_is_refused(oci):
    """vm.* is not namespaced: applying it would change the host."""
    knob = Path("/proc/sys/vm/swappiness")
    host = knob.read_text()
    b = oci.bundle("sysctl-host", "true")
    b.linux["sysctl"] = {"vm.swappiness": "13" if host.strip() != "13" else "14"}
    try:
        res = run(oci, b)
        changed = knob.read_text()
    finally:
        knob.write_text(host)
    assert changed == host, "the container's sysctl changed the host's vm.swappiness"
    assert res.returncode != 0 and "vm.swappiness" in res.stderr, res


def test_seccomp_errno_rules(oci):
    b = oci.bundle("seccomp", "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/d; touch /tmp/f; "
                   "chmod 777 /tmp/f; chmod 700 /tmp/f && echo chmod-700-ok")
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},  # ENOSPC
            # chmod(path, mode) / fchmodat(dirfd, path, mode): only mode 0777 is refused, with EPERM.
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    res = run(oci, b)
    assert res.stdout.splitlines() == ["Seccomp:\t2", "chmod-700-ok"], res
    assert "No space left on device" in res.stderr and "Operation not permitted" in res.stderr, res
    assert not (b.rootfs / "tmp" / "d").exists()
    assert (b.rootfs / "tmp" / "f").stat().st_mode & 0o777 == 0o700

    b.set_args("uname", "-r")
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    res = run(oci, b, "seccomp-kill")
    assert res.returncode == 128 + signal.SIGSYS and res.stdout == "", res


def test_cgroups_path_and_resources(oci):
    parent = f"isola-oci-{oci.token}"
    b = oci.bundle("cg")
    b.linux["resources"] = {"memory": {"limit": 96 << 20, "swap": 128 << 20}, "pids": {"limit": 64},
                            "cpu": {"shares": 512, "quota": 20000, "period": 100000}}
    cid = oci.new_id("cg")
    b.linux["cgroupsPath"] = f"{parent}/{cid}"
    b.save()
    try:
        pid = oci.start_sleeper(cid, b)
        base = Path("/sys/fs/cgroup")
        group = f"{parent}/{cid}"
        assert str(pid) in (base / "memory" / group / "cgroup.procs").read_text().split()
        assert int((base / "memory" / group / "memory.limit_in_bytes").read_text()) == 96 << 20
        assert int((base / "memory" / group / "memory.memsw.limit_in_bytes").read_text()) == 128 << 20
        assert (base / "pids" / group / "pids.max").read_text().strip() == "64"
        assert (base / "cpu" / group / "cpu.shares").read_text().strip() == "512"
        assert (base / "cpu" / group / "cpu.cfs_quota_us").read_text().strip() == "20000"
        oci.ok("delete", "--force", cid)
        assert cgroup_dirs(group) == []
    finally:
        for d in cgroup_dirs(parent):
            os.rmdir(d)


def test_systemd_cgroups_path(oci):
    stem = f"isolaoci{oci.token}"
    b = oci.bundle("systemd")
    cid = oci.new_id("sd")
    b.linux["cgroupsPath"] = f"{stem}-pods.slice:libpod:{cid}"
    b.linux["resources"] = {"memory": {"limit": 80 << 20}}
    b.save()
    try:
        oci.ok("create", "--bundle", b.path, cid, global_flags=("--systemd-cgroup",))
        pid = oci.state(cid)["pid"]
        group = Path(f"/sys/fs/cgroup/memory/{stem}.slice/{stem}-pods.slice/libpod-{cid}.scope")
        assert str(pid) in (group / "cgroup.procs").read_text().split()
        assert int((group / "memory.limit_in_bytes").read_text()) == 80 << 20
        oci.ok("delete", "--force", cid)
        assert not group.exists()
    finally:
        for d in cgroup_dirs(f"{stem}.slice/{stem}-pods.slice") + cgroup_dirs(f"{stem}.slice"):
            os.rmdir(d)


@pytest.mark.parametrize("resource,value,controller,file,expected", [
    ("cpu", {"cpus": "1"}, "cpuset", "cpuset.cpus", "1"),
    ("cpu", {"mems": "0"}, "cpuset", "cpuset.mems", "0"),
    ("memory", {"reservation": 32 << 20}, "memory", "memory.soft_limit_in_bytes", str(32 << 20)),
    ("memory", {"swappiness": 10}, "memory", "memory.swappiness", "10"),
    ("memory", {"disableOOMKiller": True}, "memory", "memory.oom_control", "oom_kill_disable 1"),
])
def test_more_resources(oci, resource, value, controller, file, expected):
    """The host's v1 group has the value; the container's process sees it in
    its own /sys/fs/cgroup (the template's cgroup mount)."""
    b = oci.bundle("res", "cat", f"/sys/fs/cgroup/{controller}/{file}")
    b.linux["resources"] = {resource: value}
    cid = oci.new_id("res")
    oci.create(cid, b.save(), stdout=oci.tmp / "res.out")
    actual = Path(f"/sys/fs/cgroup/{controller}/isola-runtime/{cid}/{file}").read_text()
    assert expected in actual.splitlines(), f"{resource}.{next(iter(value))} was ignored: {file} is {actual}"
    oci.ok("start", cid)
    wait_for(lambda: oci.status(cid) == "stopped", what="the container to finish")
    assert expected in (oci.tmp / "res.out").read_text().splitlines()


def test_cpuset_pins_the_process(oci):
    b = oci.bundle("cpuset", "grep", "Cpus_allowed_list", "/proc/self/status")
    b.linux["resources"] = {"cpu": {"cpus": "1", "mems": "0"}}
    assert run_ok(oci, b).split() == ["Cpus_allowed_list:", "1"]
    for field, value in (("cpus", "7-9"), ("mems", "5"), ("cpus", "1-")):
        b.linux["resources"] = {"cpu": {field: value}}
        assert_refused(oci, b, oci.new_id(f"cpuset-{field}"), f"linux.resources.cpu.{field}")


def test_device_cgroup_denies_unlisted_devices(oci):
    """The template's linux.resources.devices denies every device but the
    defaults; a process allowed to mknod must still not open others."""
    assert os.path.exists("/dev/loop-control"), "the host has no loop-control device to try"
    b = oci.bundle("devcg", "sh", "-c", "mknod /tmp/lc c 10 237 || exit 3; "
                   "if (exec 3<>/tmp/lc) 2>/dev/null; then echo opened; else echo denied; fi")
    assert b.linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    caps = ["CAP_MKNOD", "CAP_DAC_OVERRIDE"]
    b.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    res = applied_or_refused(oci, b, "linux.resources.devices")
    assert res is None or res.stdout == "denied\n", f"a device outside the allowed list could be opened:\n{res}"


def test_extra_device_nodes(oci):
    """linux.devices: made with their type, numbers, mode and owner; usable
    only as linux.resources.devices allows (runc adds no rule for them)."""
    assert os.path.exists("/dev/fuse"), "the host has no /dev/fuse to try"
    b = oci.bundle("devs", "sh", "-c", "ls -ln /dev/fuse /dev/made/up /dev/pipe; "
                   "if (exec 3<>/dev/fuse) 2>/dev/null; then echo opened; else echo denied; fi")
    b.linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/made/up", "type": "b", "major": 99, "minor": 7, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/pipe", "type": "p", "fileMode": 0o600},
    ]
    lines = run_ok(oci, b).splitlines()
    listed = {line.split()[-1]: line.split() for line in lines[:3]}
    assert listed["/dev/fuse"][0] == "crw-rw-rw-" and listed["/dev/fuse"][4:6] == ["10,", "229"], lines
    assert listed["/dev/made/up"][0] == "brw-r-----" and listed["/dev/made/up"][2:6] == ["1000", "1001", "99,", "7"]
    assert listed["/dev/pipe"][0] == "prw-------", lines
    assert lines[3] == "denied", lines  # the template denies every device but the defaults

    b.linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"})
    assert run_ok(oci, b, "devs-allowed").splitlines()[3] == "opened"

    b.linux["devices"] = [{"path": "/dev/", "type": "c", "major": 1, "minor": 3}]
    assert_refused(oci, b, oci.new_id("devs-bad"), "linux.devices[0]")


# -- hooks


def hook(tmp_path, kind, script=None):
    log = tmp_path / "hooks.log"
    body = script or f'echo {kind} >> {log}; cat > {tmp_path}/{kind}.json'
    return {"path": "/bin/sh", "args": ["sh", "-c", body], "env": ["HOOK_KIND=" + kind], "timeout": 10}


def test_hooks_order_and_state(oci, tmp_path):
    b = oci.bundle("hooks")
    b.annotate("org.example.hooked", "yes")
    kinds = ("prestart", "createRuntime", "poststart", "poststop")
    b.config["hooks"] = {k: [hook(tmp_path, k)] for k in kinds}
    b.config["hooks"]["poststart"].append(hook(tmp_path, "env", f'echo "$HOOK_KIND" > {tmp_path}/env.txt'))
    cid = oci.new_id("hooks")
    oci.create(cid, b.save())
    pid = oci.state(cid)["pid"]
    log = tmp_path / "hooks.log"
    assert log.read_text().split() == ["prestart", "createRuntime"]
    oci.ok("start", cid)
    assert log.read_text().split() == ["prestart", "createRuntime", "poststart"]
    assert (tmp_path / "env.txt").read_text() == "env\n"
    oci.ok("kill", cid, "KILL")
    oci.wait_exit(pid)
    oci.ok("delete", cid)
    assert log.read_text().split() == list(kinds)

    states = {k: json.loads((tmp_path / f"{k}.json").read_text()) for k in kinds}
    for kind, state in states.items():
        assert state["id"] == cid and state["bundle"] == str(b.path), (kind, state)
        assert state["annotations"]["org.example.hooked"] == "yes", (kind, state)
    assert states["prestart"]["status"] in ("creating", "created")
    assert states["createRuntime"]["status"] in ("creating", "created")
    assert states["prestart"]["pid"] == pid and states["createRuntime"]["pid"] == pid
    assert states["poststart"]["status"] == "running" and states["poststart"]["pid"] == pid
    assert states["poststop"]["status"] == "stopped"


def test_failing_prestart_hook_fails_create(oci, tmp_path):
    b = oci.bundle("badhook")
    b.config["hooks"] = {"prestart": [hook(tmp_path, "prestart", "exit 3")]}
    res = assert_refused(oci, b, oci.new_id("badhook"), "prestart")
    assert "3" in res.stderr

    b.config["hooks"] = {"createRuntime": [dict(hook(tmp_path, "createRuntime", "exec sleep 20"), timeout=1)]}
    started = time.monotonic()
    assert_refused(oci, b, oci.new_id("slowhook"), "createRuntime", "timed out")
    assert time.monotonic() - started < 10


def test_run_runs_poststop_hooks(oci, tmp_path):
    b = oci.bundle("runhooks", "true")
    b.config["hooks"] = {"poststop": [hook(tmp_path, "poststop")]}
    cid = oci.new_id("runhooks")
    res = run(oci, b, "runhooks")
    assert res.returncode == 0, res
    assert (tmp_path / "hooks.log").exists(), "run did not call the poststop hook when the container ended"
    state = json.loads((tmp_path / "poststop.json").read_text())
    assert state["id"] == cid and state["status"] == "stopped"


def test_failing_poststart_hook_is_a_warning(oci, tmp_path):
    """Runtime spec: the runtime logs a warning, the remaining hooks and the
    lifecycle go on as if the hook had succeeded."""
    b = oci.bundle("warnhook")
    b.config["hooks"] = {"poststart": [hook(tmp_path, "poststart", "exit 5"), hook(tmp_path, "poststart")]}
    cid = oci.new_id("warnhook")
    oci.create(cid, b.save())
    log = tmp_path / "runtime.log"
    res = oci("start", cid, global_flags=("--log", log, "--log-format", "json"))
    assert res.returncode == 0, res
    assert oci.status(cid) == "running"
    assert (tmp_path / "hooks.log").exists(), "the poststart hook after the failing one did not run"
    logged = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert "poststart" in res.stderr or any("poststart" in e.get("msg", "") for e in logged), \
        f"no warning about the failing poststart hook:\n{res}\nlog: {logged}"


@pytest.mark.parametrize("field,value,words", [
    ("linux.intelRdt", {"closID": "x"}, ["linux.intelRdt"]),
    ("linux.personality", {"domain": "LINUX32"}, ["linux.personality"]),
    ("hooks.createContainer", [{"path": "/bin/true"}], ["createContainer"]),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}, ["SCMP_ACT_NOTIFY"]),
])
def test_unsupported_fields_are_refused(oci, field, value, words):
    b = oci.bundle("unsupported")
    top, key = field.split(".")
    b.config.setdefault(top, {})[key] = value
    assert_refused(oci, b, oci.new_id("unsupported"), *words)


# -- terminal and inherited descriptors


def test_terminal_through_console_socket(oci, tmp_path):
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        b = oci.bundle("tty", "sh", "-c", 'tty; read line; echo "got:$line"; exit 3')
        b.process["terminal"] = True
        cid = oci.new_id("tty")
        oci.create(cid, b.save(), "--console-socket", receiver.path)
        receiver.wait_master()
        pid = oci.state(cid)["pid"]
        oci.ok("start", cid)
        # Typed once `tty` has answered: the terminal echoes what is typed.
        wait_for(lambda: b"\n" in receiver.output, 30, what="the container's tty line")
        receiver.write(b"hello\n")
        output = receiver.wait_closed()
        assert output.splitlines()[0].strip() == "/dev/pts/0", output
        assert "got:hello" in output
        status = oci.wait_exit(pid)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    finally:
        receiver.close()

    res = oci("create", "--bundle", b.path, oci.new_id("noconsole"))
    assert res.returncode != 0 and "console-socket" in res.stderr, res


def test_exec_tty_through_console_socket(oci, tmp_path):
    b = oci.bundle("exectty")
    cid = oci.new_id("exectty")
    oci.start_sleeper(cid, b)
    receiver = ConsoleReceiver(tmp_path / "exec-console.sock")
    try:
        res = oci("exec", "--tty", "--console-socket", receiver.path, cid, "sh", "-c", "tty; exit 4")
        assert res.returncode == 4, res
        output = receiver.wait_closed()
        assert output.strip().startswith("/dev/pts/"), output
    finally:
        receiver.close()


def test_console_size(oci, tmp_path):
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        b = oci.bundle("size", "stty", "size")
        b.process["terminal"] = True
        b.process["consoleSize"] = {"height": 40, "width": 100}
        cid = oci.new_id("size")
        res = oci("create", "--bundle", b.save().path, "--console-socket", receiver.path, cid)
        if res.returncode != 0 and "consoleSize" in res.stderr:
            return  # refused by name
        assert res.returncode == 0, res
        oci.ok("start", cid)
        size = receiver.wait_closed().strip()
        assert size == "40 100", f"process.consoleSize was ignored: stty size says {size!r}"
    finally:
        receiver.close()


def test_preserve_fds(oci, tmp_path):
    b = oci.bundle("fds", "sh", "-c", "echo to-three >&3; cat <&4; "
                   "if [ -e /proc/$$/fd/5 ]; then echo fd5-leaked; else echo fd5-closed; fi")
    (tmp_path / "in4").write_text("from-four\n")
    cid = oci.new_id("fds")
    oci.created.append(cid)
    shell = (f'exec "$0" --root "$1" run --preserve-fds 2 --bundle "$2" "$3" '
             f'3>"$4" 4<"$5" 5>"$6"')
    res = subprocess.run(["/bin/sh", "-c", shell, RUNTIME, oci.root, b.path, cid, tmp_path / "out3",
                          tmp_path / "in4", tmp_path / "out5"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["from-four", "fd5-closed"], res.stdout
    assert (tmp_path / "out3").read_text() == "to-three\n"
