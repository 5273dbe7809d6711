"""isola cp, export, diff and history, as a user sees them.

cp follows docker's rules for SRC_PATH/DEST_PATH (files, directories, a
trailing "/" and "/."), resolves every container path inside the
container's root, and works on running and stopped containers of both
isolation levels (a VM's root is a 9p share of the host's overlay mount, so
a copy into a running VM is visible to its guest at once). The VM checks
share one VM start."""

import io
import json
import os
import tarfile

import pytest

from containers import IMAGE, box, describe, load_derived_image  # noqa: F401

VM = "--isolation=vm"
BOOT = 240


def tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: m for m in t.getmembers()}


def cp(box, *args, **kw):
    return box("cp", *args, **kw)


def sleeper(box, *flags):
    return box.run_d(*flags, IMAGE, "sleep", "1000", timeout=BOOT)


def raw(box, *args):
    """Runs isola with binary stdout (export, cp to -)."""
    import subprocess
    return subprocess.run(box.cmd(*args), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


# -- the key checks, on a running and then a stopped container of each isolation

@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_cp_both_ways_running_and_stopped(box, tmp_path, isolation):
    flags = [VM] if isolation == "vm" else []
    cid = sleeper(box, *flags)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("in a dir\n")
    (tmp_path / "file").write_text("hello\n")

    # A file into a running container: the container sees it at once.
    res = cp(box, tmp_path / "file", f"{cid}:/tmp/copied")
    assert res.returncode == 0, describe(res)
    assert box.sh(cid, "cat /tmp/copied; stat -c %u:%g /tmp/copied").stdout == "hello\n0:0\n"
    # A directory into an existing one, and a directory's contents with "/.".
    assert cp(box, src, f"{cid}:/tmp").returncode == 0
    assert cp(box, f"{src}/.", f"{cid}:/root").returncode == 0
    assert box.sh(cid, "cat /tmp/src/sub/f /root/sub/f").stdout == "in a dir\n" * 2
    # Something the container writes, out to the host.
    box.sh(cid, "mkdir -p /made/deep && echo from inside > /made/deep/x")
    assert cp(box, f"{cid}:/made", tmp_path / "out").returncode == 0
    assert (tmp_path / "out" / "deep" / "x").read_text() == "from inside\n"
    # A tar on standard output.
    res = raw(box, "cp", f"{cid}:/made/deep", "-")
    assert res.returncode == 0, res.stderr
    assert set(tar_names(res.stdout)) == {"deep", "deep/x"}

    box.ok("stop", "-t", "1", cid, timeout=BOOT)
    # Stopped: copies both ways still work, and leave no mount behind.
    assert cp(box, tmp_path / "file", f"{cid}:/stopped").returncode == 0
    res = cp(box, f"{cid}:/tmp/copied", tmp_path / "back")
    assert res.returncode == 0, describe(res)
    assert (tmp_path / "back").read_text() == "hello\n"
    assert box.mounts_under(box.containers_dir()) == []
    diff = box.ok("diff", cid).splitlines()
    assert "A /stopped" in diff and "A /tmp/copied" in diff and "C /tmp" in diff, diff
    res = box("start", cid, timeout=BOOT)
    assert res.returncode == 0, describe(res)
    assert box.sh(cid, "cat /stopped").stdout == "hello\n"
    box.rm_f(cid)


# -- docker's path rules

def test_cp_path_rules(box, tmp_path):
    cid = sleeper(box)
    (tmp_path / "f").write_text("x\n")
    d = tmp_path / "d"
    d.mkdir()
    (d / "inner").write_text("y\n")
    # File to a missing path: created under that name.
    assert cp(box, tmp_path / "f", f"{cid}:/newname").returncode == 0
    # File to a missing directory named with "/": an error, nothing written.
    res = cp(box, tmp_path / "f", f"{cid}:/nodir/")
    assert res.returncode == 125 and "does not exist" in res.stderr, describe(res)
    # Directory to a missing path: created with the directory's contents.
    assert cp(box, d, f"{cid}:/fresh").returncode == 0
    # Directory onto a file: an error.
    res = cp(box, d, f"{cid}:/newname")
    assert res.returncode == 125 and "cannot copy a directory to a file" in res.stderr, describe(res)
    # A file with a trailing "/": not a directory.
    res = cp(box, f"{cid}:/newname/", tmp_path / "o")
    assert res.returncode == 125 and "not a directory" in res.stderr, describe(res)
    # Into a missing directory's child: the parent must exist.
    res = cp(box, tmp_path / "f", f"{cid}:/no/such/place")
    assert res.returncode == 125 and "does not exist" in res.stderr, describe(res)
    out = box.sh(cid, "cat /newname /fresh/inner; ls /nodir /no 2>&1 || true").stdout
    assert out.startswith("x\ny\n") and "No such file" in out


def test_cp_tar_streams_archive_mode_and_follow_link(box, tmp_path):
    cid = sleeper(box)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, uid in (("a.txt", b"A\n", 1234), ("dir/b.txt", b"B\n", 1234)):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid = len(data), uid, uid
            t.addfile(info, io.BytesIO(data))
    # Without -a the container's root owns what comes in; with -a the tar's owners stay.
    import subprocess
    res = subprocess.run(box.cmd("cp", "-", f"{cid}:/tmp"), input=buf.getvalue(), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(box.cmd("cp", "-a", "-", f"{cid}:/root"), input=buf.getvalue(), capture_output=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    out = box.sh(cid, "stat -c '%u %n' /tmp/a.txt /tmp/dir/b.txt /root/a.txt /root/dir/b.txt").stdout
    assert out.split("\n")[:4] == ["0 /tmp/a.txt", "0 /tmp/dir/b.txt", "1234 /root/a.txt", "1234 /root/dir/b.txt"]
    # -a out to the host keeps the container's owners too.
    box.sh(cid, "echo z > /owned; chown 4321:4321 /owned; ln -s /owned /link")
    assert cp(box, "-a", f"{cid}:/owned", tmp_path / "owned").returncode == 0
    assert os.stat(tmp_path / "owned").st_uid == 4321
    # Without -L a symlink is copied as one; with -L its target's content.
    assert cp(box, f"{cid}:/link", tmp_path / "link").returncode == 0
    assert os.readlink(tmp_path / "link") == "/owned"
    assert cp(box, "-L", f"{cid}:/link", tmp_path / "followed").returncode == 0
    assert (tmp_path / "followed").read_text() == "z\n"


# -- paths resolve inside the container; refusals write nothing

def test_symlinks_in_the_container_resolve_inside_it(box, tmp_path):
    cid = sleeper(box)
    box.sh(cid, "ln -s /etc /cfg; ln -s ../../.. /up; echo mine > /etc/only-here")
    (tmp_path / "f").write_text("planted\n")
    assert cp(box, tmp_path / "f", f"{cid}:/cfg/placed").returncode == 0
    assert cp(box, tmp_path / "f", f"{cid}:/up/up/placed").returncode == 0
    assert not os.path.exists("/etc/placed") and not os.path.exists("/placed")
    assert box.sh(cid, "cat /etc/placed /placed").stdout == "planted\n" * 2
    # Reading through them reads the container's /etc, not the host's.
    assert cp(box, f"{cid}:/up/etc/only-here", tmp_path / "read").returncode == 0
    assert (tmp_path / "read").read_text() == "mine\n"


def test_refusals_say_why_and_write_nothing(box, tmp_path):
    cid = sleeper(box)
    (tmp_path / "f").write_text("x\n")
    before = box.sh(cid, "find / -xdev | sort | md5sum").stdout
    cases = [
        (("cp", tmp_path / "f", f"{cid}:../../escaped"), "leaves the container's root"),
        (("cp", f"{cid}:../etc/passwd", tmp_path / "got"), "leaves the container's root"),
        (("cp", f"{cid}:/no/such/file", tmp_path / "got"), "no such file or directory in container"),
        (("cp", tmp_path / "f", "nosuchcontainer:/x"), "nosuchcontainer"),
        (("cp", tmp_path / "f", tmp_path / "g"), "neither side is in a container"),
    ]
    for args, message in cases:
        res = box(*args)
        assert res.returncode == 125, describe(res)
        assert res.stderr.startswith("isola: ") and message in res.stderr, describe(res)
    # A hostile tar: a name that leaves the destination, and one below its own symlink.
    import subprocess
    for entries in ((("ok", None), ("../../../escaped", None)), (("ln", str(tmp_path)), ("ln/planted", None))):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, link in entries:
                info = tarfile.TarInfo(name)
                if link:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                t.addfile(info, io.BytesIO(b""))
        res = subprocess.run(box.cmd("cp", "-", f"{cid}:/tmp"), input=buf.getvalue(), capture_output=True, timeout=60)
        assert res.returncode == 125 and b"nothing was copied" in res.stderr, res.stderr
    assert not (tmp_path / "got").exists() and not (tmp_path / "g").exists()
    assert not (tmp_path / "planted").exists() and not os.path.exists("/escaped")
    assert box.sh(cid, "find / -xdev | sort | md5sum").stdout == before


# -- export and diff

def test_export_matches_what_the_container_sees(box, tmp_path):
    cid = sleeper(box)
    box.sh(cid, "echo exported > /new-file; rm /etc/group")
    assert box("export", "-o", tmp_path / "fs.tar", cid).returncode == 0
    with tarfile.open(tmp_path / "fs.tar") as t:
        names = set(t.getnames())
        assert t.extractfile("new-file").read() == b"exported\n"
    assert "bin/busybox" in names and "etc/group" not in names and "etc/passwd" in names
    seen = set(box.sh(cid, "cd / && find bin usr").stdout.split())
    assert seen == {n for n in names if n.split("/")[0] in ("bin", "usr")}
    piped = raw(box, "export", cid)
    assert piped.returncode == 0 and set(tar_names(piped.stdout)) == names


def test_diff_lists_added_changed_and_deleted(box):
    cid = sleeper(box)
    box.sh(cid, "mkdir /newdir && echo a > /newdir/f; echo changed >> /etc/passwd; rm /etc/group; rm -rf /home")
    lines = box.ok("diff", cid).splitlines()
    for expected in ("A /newdir", "A /newdir/f", "C /etc", "C /etc/passwd", "D /etc/group", "D /home"):
        assert expected in lines, lines
    assert lines == sorted(lines, key=lambda l: l[2:])
    res = box("diff", "nosuch")
    assert res.returncode == 125 and "nosuch" in res.stderr


# -- history

def test_history_of_busybox_multi_layer_and_committed_images(box, busybox_layout, tmp_path):
    import imagegen
    out = box.ok("history", IMAGE).splitlines()
    assert out[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    image_id = json.loads(box.ok("image", "inspect", IMAGE))[0]["Id"].split(":")[1][:12]
    assert out[1].startswith(image_id)

    history = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
               {"created": "2024-01-02T00:00:00Z", "created_by": "ENV A=1", "empty_layer": True},
               {"created": "2024-01-03T00:00:00Z", "created_by": "RUN " + "x" * 80, "comment": "layer two"}]
    from containers import busybox_layer
    img = imagegen.Image([busybox_layer(busybox_layout), imagegen.Layer([imagegen.Entry("file", "two", data="2")])],
                         ["multi:1"], history=history)
    box.ok("load", "-i", imagegen.save("oci-dir", [img], tmp_path / "multi"))
    rows = [json.loads(l) for l in box.ok("history", "--format", "json", "multi:1").splitlines()]
    assert [r["CreatedBy"] for r in rows] == [h["created_by"] for h in reversed(history)]
    assert [r["ID"] for r in rows] == [img.short_id, "<missing>", "<missing>"]
    assert rows[1]["Size"] == "0B" and rows[0]["Comment"] == "layer two"
    table = box.ok("history", "multi:1").splitlines()
    assert "RUN " + "x" * 40 + "…" in table[1] and "<missing>" in table[2]
    full = box.ok("image", "history", "--no-trunc", "--human=false", "multi:1").splitlines()
    assert img.id in full[1] and "x" * 80 in full[1] and "2024-01-03T00:00:00Z" in full[1]
    assert box.ok("history", "-q", "multi:1").split() == [img.short_id, "<missing>", "<missing>"]

    cid = box.create(IMAGE, "true")
    new = box.ok("commit", "-m", "my change", cid, "committed:1").strip()
    rows = [json.loads(l) for l in box.ok("history", "--format", "json", "committed:1").splitlines()]
    assert rows[0]["ID"] == new.split(":")[-1][:12] and rows[0]["Comment"] == "my change"
    assert rows[0]["CreatedBy"].startswith("isola commit")
    res = box("history", "nosuch:1")
    assert res.returncode == 125 and "nosuch" in res.stderr
