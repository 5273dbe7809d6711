"""The jailed VM worker: a compromised QEMU reaches only its own container's
files. jail_probe.c stands in for the attacker: it takes a running
worker's namespaces, credentials, capabilities, no_new_privs and seccomp
filters (copied from the worker), checks that it can still do the worker's
job (read and write its rootfs, give a file an owner), and tries what an
escape would. Every VM here is real (TCG)."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from containers import IMAGE, box, cgroup_dirs, comm, describe  # noqa: F401
from faultkit import assert_clean, processes_of_store
from test_save_commit import store_blob, stored_manifest

VM = "--isolation=vm"
BOOT = 240
HERE = Path(__file__).parent

# Everything a compromised worker tries, and how it must fail. "EPERM" from
# a seccomp filter may also be QEMU's own filter killing the process.
REFUSED = {
    "read-host-shadow": "ENOENT", "read-host-passwd": "ENOENT", "read-other-container": "ENOENT",
    "list-other-containers": "ENOENT", "write-root": "EROFS", "write-usr": "EROFS", "write-dev": "EROFS",
    "mknod-block-device": "EPERM", "raw-socket": "EPERM", "inet-socket": "EPERM", "packet-socket": "EPERM",
    "mount-tmpfs": "EPERM", "unshare-user": "EPERM", "load-module": "EPERM", "ptrace-worker": "EPERM",
    "keyctl": "EPERM", "bpf": "EPERM", "io-uring": "EPERM", "open-by-handle": "EPERM", "cgroup-fs": "ENOENT",
    "sysctl": "ENOENT",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    out = tmp_path_factory.mktemp("jail-probe")
    cc = shutil.which("cc") or shutil.which("gcc")
    res = subprocess.run([cc, "-O1", "-Wall", "-o", str(out / "probe"), str(HERE / "jail_probe.c")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out / "probe"


@pytest.fixture
def neighbour(box):
    """Another container's file, by its host path: the probe must not see it."""
    cid = box.run_d("--network", "none", IMAGE, "sleep", "1000")
    yield Path(box.inspect(cid)["GraphDriver"]["Data"]["MergedDir"]) / "etc" / "passwd"
    box.rm_f(cid)


def vm_container(box, boot, network, volume):
    args = [VM, f"--vm-boot={boot}", "--network", network]
    if volume:
        args += ["-v", f"{volume}:/data"]
    if boot == "auto":  # the template of this shape, if there is none yet
        box.ok("run", "--rm", *args, IMAGE, "true", timeout=BOOT)
    cid = box.run_d(*args, IMAGE, "sleep", "1000", timeout=BOOT)
    info = box.inspect(cid)
    assert info["VM"]["Boot"] == ("template" if boot == "auto" else "cold"), info["VM"]
    return cid, info


@pytest.mark.parametrize("boot,network,with_volume", [
    ("auto", "none", False), ("cold", "none", False), ("auto", "bridge", True), ("cold", "bridge", True)])
def test_a_compromised_worker_reaches_nothing_but_its_files(box, probe, neighbour, tmp_path, boot, network,
                                                            with_volume):
    volume = tmp_path / "vol" if with_volume else None
    if volume:
        volume.mkdir()
        (volume / "in").write_text("from the host\n")
    cid, info = vm_container(box, boot, network, volume)
    try:
        worker = info["State"]["Pid"]
        rootfs = info["GraphDriver"]["Data"]["MergedDir"]
        res = subprocess.run([str(probe), str(worker), rootfs, str(neighbour)], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, describe(res)
        seen = dict(line.split(" ", 1) for line in res.stdout.splitlines())
        # The probe really is the worker: its job still works.
        for allowed in ("read-own-rootfs", "write-own-rootfs", "chown-own-file"):
            assert seen.get(allowed) == "ok", (allowed, seen)
        refused = {k: "EPERM" if seen.get(k) == "killed-SYS" else seen.get(k) for k in REFUSED}
        assert refused == REFUSED, res.stdout
        assert int(seen["visible-processes"]) <= 2, seen  # QEMU and the probe
        # A clone's RAM is the template's, shared by every clone: never writable.
        assert seen["write-template-ram"] == ("EPERM" if boot == "auto" else "ENODEV"), seen
        # The container still works through the jail.
        if volume:
            out = box.exec(cid, "sh", "-c", "cat /data/in && echo back > /data/out", timeout=60)
            assert out.returncode == 0 and "from the host" in out.stdout, describe(out)
            assert (volume / "out").read_text() == "back\n"
        if network == "bridge":
            gateway = next(iter(info["NetworkSettings"]["Networks"].values()))["Gateway"]
            ping = box.exec(cid, "ping", "-c", "1", "-W", "5", gateway, timeout=60)
            assert ping.returncode == 0, describe(ping)
    finally:
        box.rm_f(cid)


def test_inspect_shows_the_workers_confinement(box):
    cid = box.run_d(VM, "--network", "none", IMAGE, "sleep", "1000", timeout=BOOT)
    try:
        info = box.inspect(cid)
        worker = info["VM"]["Worker"]
        assert worker["Jail"] is True and worker["NoNewPrivileges"] is True, worker
        assert sorted(worker["Namespaces"]) == sorted(["user", "mnt", "pid", "ipc", "net", "uts", "cgroup"]), worker
        assert worker["Capabilities"] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
                                          "CAP_FSETID"], worker
        assert worker["SeccompFilters"] == 2, worker
        # The host's ps still shows the worker by its name, in a cgroup of its own.
        pid = info["State"]["Pid"]
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "isola-vm-" + info["Id"][:6]
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"/isola/{info['Id']}" in cgroups, cgroups
    finally:
        box.rm_f(cid)


SCRIPT = ("mkdir -p /data/sub && echo a > /data/f && chown 1234:5678 /data/f && chmod 4750 /data/f && "
          "ln -s f /data/l && chown -h 42:43 /data/l && chmod 1777 /data/sub && echo b > /data/sub/g && "
          "chown 7:8 /data/sub/g && ln /data/f /data/hard && rm /etc/group")


def layer_members(box, image):
    manifest = stored_manifest(box.isola, image)
    with tarfile.open(store_blob(box.isola, manifest["layers"][-1]["digest"])) as t:
        out = {}
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else b""
            out[m.name] = (m.type, m.uid, m.gid, m.mode, m.linkname, data)
        return out


def test_files_made_in_a_vm_keep_their_owners_and_commit_like_a_process_containers(box):
    layers = {}
    for isolation in ("process", "vm"):
        name = f"own-{isolation}"
        res = box.run("--name", name, f"--isolation={isolation}", "--network", "none", IMAGE, "sh", "-c", SCRIPT,
                      timeout=BOOT)
        assert res.returncode == 0, describe(res)
        upper = Path(box.inspect(name)["GraphDriver"]["Data"]["UpperDir"])
        st = os.lstat(upper / "data" / "f")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o4750), (isolation, st)
        st = os.lstat(upper / "data" / "l")
        assert (st.st_uid, st.st_gid) == (42, 43), (isolation, st)
        box.ok("commit", name, f"own:{isolation}")
        layers[isolation] = layer_members(box, f"own:{isolation}")
        box.rm_f(name)
    assert layers["vm"] == layers["process"]


def test_a_jail_that_cannot_be_built_fails_the_start_and_leaves_nothing(box, tmp_path):
    # The volume's directory goes between create and start: the worker's
    # jail cannot show it, the start says so, and no process or cgroup stays.
    gone = tmp_path / "gone"
    gone.mkdir()
    cid = box.ok("create", VM, "--network", "none", "-v", f"{gone}:/v", IMAGE, "true").strip()
    gone.rmdir()
    res = box("start", "-a", cid, timeout=BOOT)
    assert res.returncode == 125, describe(res)
    assert "jail the VM worker" in res.stderr and str(gone) in res.stderr, describe(res)
    assert not cgroup_dirs(cid), cgroup_dirs(cid)
    assert not [p for p in processes_of_store(box.root) if comm(p) == "isola-vm-" + cid[:6]]
    box.ok("rm", cid)
    assert_clean(box, [cid])
