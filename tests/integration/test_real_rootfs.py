"""A real Debian root file system, made by debootstrap from Debian's
archive, imported as users do (`tar -C rootfs -c . | isola import - NAME`)
and run in both isolation levels.

Such a tree carries what busybox images do not: device nodes in /dev, the
merged-/usr symlinks (/bin -> usr/bin), hard links, setuid programs and
dpkg's database. The import must keep the device nodes (docker and podman
load them; the OCI layer format allows them) and the container must run
the distribution's own programs.

debootstrap fetches about 40 MiB from deb.debian.org once per test run."""

import os
import stat
import subprocess
import tarfile

import pytest

from containers import box, describe  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_tar(tmp_path_factory):
    """A tar stream of a minbase debootstrap tree, as `tar -C rootfs -c .`
    writes it. Session-scoped fixtures are set up before the function-scoped
    network namespace of conftest, so debootstrap sees the host's network."""
    base = tmp_path_factory.mktemp("debian")
    root = base / "rootfs"
    res = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR],
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        pytest.fail(f"debootstrap {SUITE} from {MIRROR} failed (it needs the network and the "
                    f"debootstrap package, which scripts/setup installs): {res.stderr[-2000:]}", pytrace=False)
    assert stat.S_ISCHR(os.lstat(root / "dev" / "full").st_mode), "debootstrap made no /dev/full"
    out = base / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(out), "."], check=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)
    return out


def import_debian(box, debian_tar):
    with open(debian_tar, "rb") as f:
        res = subprocess.run(box.cmd("import", "-", "debian:" + SUITE), stdin=f, capture_output=True, timeout=600)
    assert res.returncode == 0, f"import of the debootstrap tree: {res.stderr.decode(errors='replace')}"
    return res.stdout.decode().strip()


def exported_members(box, cid):
    """The container's root file system as `isola export` writes it."""
    proc = subprocess.Popen(box.cmd("export", cid), stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        members = {m.name.lstrip("./").lstrip("/"): m for m in tar}
    assert proc.wait(timeout=120) == 0, "isola export failed"
    return members


DISTRIBUTION_SCRIPT = (
    "cat /etc/debian_version; "
    "dpkg-query -W -f='${Package} ${Status}\\n' coreutils dpkg; "
    "readlink /bin; "
    "apt-get --version | head -n 1; "
    "echo written > /root/note && cat /root/note; "
    "test -u /usr/bin/passwd && echo setuid-kept"
)


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_debootstrap_tree_imports_and_runs(box, debian_tar, isolation):
    image_id = import_debian(box, debian_tar)
    assert image_id.startswith("sha256:"), image_id

    # The device nodes are in the image, as debootstrap made them.
    cid = box.create("--name", "deb", "debian:" + SUITE, "true")
    members = exported_members(box, cid)
    full = members.get("dev/full")
    assert full is not None and full.ischr() and (full.devmajor, full.devminor) == (1, 7), \
        f"dev/full in the exported root: {full}"
    assert members["dev/null"].ischr() and (members["dev/null"].devmajor, members["dev/null"].devminor) == (1, 3)
    box.ok("rm", cid)

    # The distribution's own programs run, at this isolation level.
    level = [VM] if isolation == "vm" else []
    res = box.run("--rm", *level, "debian:" + SUITE, "sh", "-c", DISTRIBUTION_SCRIPT, timeout=BOOT)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("12."), describe(res)
    assert "coreutils install ok installed" in lines and "dpkg install ok installed" in lines, describe(res)
    assert "usr/bin" in lines and "written" in lines and "setuid-kept" in lines, describe(res)
    assert any(l.startswith("apt ") for l in lines), describe(res)

    # The container's /dev is its own (a tmpfs with the standard nodes), not
    # the image's: /dev/full behaves as the kernel's full device.
    res = box.run("--rm", *level, "debian:" + SUITE, "sh", "-c",
                  "cp /etc/hostname /dev/full 2>&1; echo rc=$?; ls /dev/sda 2>&1 || true", timeout=BOOT)
    assert "cp: error writing '/dev/full': No space left on device" in res.stdout, describe(res)
    assert "rc=1" in res.stdout and "cannot access '/dev/sda'" in res.stdout, describe(res)
