"""The container's filesystem: writes land in its own upper directory on
the host, --read-only and --tmpfs, bind-mounted volumes (rw and ro), and the
image itself stays untouched."""

import os
from pathlib import Path

from containers import IMAGE, box, describe  # noqa: F401


def test_rootfs_writes_land_in_the_upper_dir(box):
    res = box.run("--name", "w", IMAGE, "sh", "-c", "echo hi > /newfile && mkdir /d && echo x > /d/y && rm /bin/vi")
    assert res.returncode == 0, describe(res)
    info = box.inspect("w")
    upper = Path(info["GraphDriver"]["Data"]["UpperDir"])
    assert upper.is_absolute()
    assert (upper / "newfile").read_text() == "hi\n"
    assert (upper / "d" / "y").read_text() == "x\n"
    # The deletion is a whiteout in the upper dir, not a change to the image.
    vi = os.lstat(upper / "bin" / "vi")
    assert vi.st_rdev == 0 and (vi.st_mode & 0o170000) == 0o020000, "no whiteout for /bin/vi"
    # Another container from the same image does not see any of it.
    res = box.run(IMAGE, "sh", "-c", "test ! -e /newfile && test -e /bin/vi && echo clean")
    assert res.stdout == "clean\n", describe(res)


def test_changes_survive_a_restart_of_the_same_container(box):
    res = box.run("--name", "keep", IMAGE, "sh", "-c", "cat /state 2>/dev/null; echo kept > /state")
    assert res.returncode == 0 and res.stdout == "", describe(res)
    res = box("start", "-a", "keep")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "kept\n"
    # A new container from the same image starts from the image.
    res = box.run(IMAGE, "cat", "/state")
    assert res.returncode == 1, describe(res)


def test_rm_removes_the_upper_dir(box):
    box.run("--name", "u", IMAGE, "sh", "-c", "echo hi > /f")
    info = box.inspect("u")
    upper = Path(info["GraphDriver"]["Data"]["UpperDir"])
    merged = Path(info["GraphDriver"]["Data"]["MergedDir"])
    assert upper.exists()
    box.ok("rm", "u")
    assert not upper.exists()
    assert not merged.exists()
    box.assert_gone(info["Id"])


def test_read_only_rootfs(box):
    res = box.run("--read-only", IMAGE, "touch", "/x")
    assert res.returncode != 0, describe(res)
    assert "Read-only file system" in res.stderr, describe(res)
    res = box.run("--read-only", IMAGE, "sh", "-c", "echo > /tmp/x")
    assert res.returncode != 0, describe(res)


def test_read_only_rootfs_with_tmpfs(box):
    res = box.run("--read-only", "--tmpfs", "/scratch", IMAGE, "sh", "-c",
                  "echo data > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "data"
    assert lines[1].split()[2] == "tmpfs"


def test_tmpfs_options(box):
    res = box.run("--tmpfs", "/small:size=1m,mode=1777", IMAGE, "sh", "-c",
                  "stat -c %a /small; dd if=/dev/zero of=/small/f bs=1k count=2048 2>&1; echo dd=$?")
    assert res.stdout.splitlines()[0] == "1777", describe(res)
    assert "dd=0" not in res.stdout, describe(res)
    assert "No space left" in res.stdout, describe(res)


def test_volume_read_write(box, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    (host / "from-host").write_text("hello from host\n")
    res = box.run("--name", "v", "-v", f"{host}:/data", IMAGE, "sh", "-c",
                  "cat /data/from-host && echo from ctr > /data/from-ctr")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hello from host\n"
    assert (host / "from-ctr").read_text() == "from ctr\n"
    mounts = box.inspect("v")["Mounts"]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [(str(host), "/data", True)]
    # Nothing of the volume went into the container's upper dir.
    upper = Path(box.inspect("v")["GraphDriver"]["Data"]["UpperDir"])
    assert not (upper / "data" / "from-ctr").exists()


def test_volume_read_only(box, tmp_path):
    host = tmp_path / "ro"
    host.mkdir()
    (host / "f").write_text("original\n")
    res = box.run("--name", "r", "-v", f"{host}:/data:ro", IMAGE, "sh", "-c",
                  "cat /data/f; echo changed > /data/f")
    assert res.returncode != 0, describe(res)
    assert res.stdout == "original\n"
    assert "Read-only file system" in res.stderr, describe(res)
    assert (host / "f").read_text() == "original\n"
    res = box.run("-v", f"{host}:/data:ro", IMAGE, "touch", "/data/new")
    assert res.returncode != 0
    assert not (host / "new").exists()
    [m] = box.inspect("r")["Mounts"]
    assert m["RW"] is False and m["Destination"] == "/data"


def test_volume_single_file_and_new_mount_point(box, tmp_path):
    f = tmp_path / "config.txt"
    f.write_text("cfg\n")
    res = box.run("-v", f"{f}:/etc/app/config.txt:ro", IMAGE, "cat", "/etc/app/config.txt")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "cfg\n"


def test_volume_with_relative_or_missing_source(box, tmp_path):
    res = box.run("-v", "relative/path:/data", IMAGE, "true")
    assert res.returncode == 125, describe(res)
    # docker creates a missing host directory for -v.
    missing = tmp_path / "created-by-isola"
    res = box.run("-v", f"{missing}:/data", IMAGE, "sh", "-c", "echo x > /data/y")
    assert res.returncode == 0, describe(res)
    assert (missing / "y").read_text() == "x\n"


def test_volume_mounts_do_not_leak_to_the_host(box, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    cid = box.run_d("-v", f"{host}:/data", IMAGE, "sleep", "1000")
    # The container's mounts live in its own mount namespace.
    under = box.mounts_under(box.containers_dir())
    assert not [m for m in under if m.endswith("/data")], under
    box.rm_f(cid)
    assert host.exists() and list(host.iterdir()) == []
