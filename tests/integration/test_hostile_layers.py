"""Layers built to escape the store. Each is refused (exit 125, the message
names the layer and the offending entry), nothing outside the store is
created or changed, and nothing is left in it."""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

import imagegen as g
from checks import assert_file, find_named, layer_mentioned, mountpoints, tree_state
from containers import box, describe, load_derived_image  # noqa: F401

UP = "../" * 24  # more than enough to climb from anywhere in the store to /


def hostile_cases(sentinel):
    s = str(sentinel)
    rel_s = UP + s.lstrip("/")  # relative path that resolves to the sentinel
    # name -> (entries, the entry isola must name: for a hardlink its name or its target)
    return {
        "dotdot-leading": ([g.File(rel_s + "/pwned", "x")], rel_s + "/pwned"),
        "dotdot-middle": ([g.Dir("a"), g.File("a/" + rel_s + "/pwned", "x")],
                          "a/" + rel_s + "/pwned"),
        "dotdot-dir": ([g.Dir(rel_s + "/pwned-dir")], rel_s + "/pwned-dir"),
        "absolute-file": ([g.File(s + "/pwned", "x")], s + "/pwned"),
        "absolute-dir": ([g.Dir(s + "/pwned-dir")], s + "/pwned-dir"),
        "absolute-symlink-name": ([g.Symlink(s + "/pwned-link", "/etc/passwd")], s + "/pwned-link"),
        "file-through-absolute-symlink": (
            [g.Symlink("evil", s + "/dir"), g.File("evil/pwned", "x")], "evil/pwned"),
        "file-through-relative-symlink": (
            [g.Symlink("evil", rel_s + "/dir"), g.File("evil/pwned", "x")], "evil/pwned"),
        "file-through-dotdot-symlink": (
            [g.Dir("sub"), g.Symlink("sub/evil", "../../.."), g.File("sub/evil/pwned", "x")],
            "sub/evil/pwned"),
        "file-through-symlink-chain": (
            [g.Symlink("a", "b"), g.Symlink("b", s + "/dir"), g.File("a/pwned", "x")], "a/pwned"),
        "overwrite-through-symlink": (
            [g.Symlink("evil", s + "/dir"), g.File("evil/keep", "OVERWRITTEN")], "evil/keep"),
        "dir-through-symlink": (
            [g.Symlink("evil", s + "/dir"), g.Dir("evil/pwned-dir")], "evil/pwned-dir"),
        "symlink-through-symlink": (
            [g.Symlink("evil", s + "/dir"), g.Symlink("evil/pwned-link", "/etc/shadow")],
            "evil/pwned-link"),
        "whiteout-through-symlink": (
            [g.Symlink("evil", s + "/dir"), g.Whiteout("evil/keep")], "evil/.wh.keep"),
        "opaque-through-symlink": (
            [g.Symlink("evil", s + "/dir"), g.Opaque("evil")], "evil/.wh..wh..opq"),
        "whiteout-dotdot": ([g.Whiteout(rel_s + "/secret")], rel_s + "/.wh.secret"),
        "whiteout-absolute": ([g.Whiteout(s + "/secret")], s + "/.wh.secret"),
        "hardlink-absolute-target": ([g.Hardlink("pwned-hl", s + "/secret")],
                                     ("pwned-hl", s + "/secret")),
        "hardlink-dotdot-target": ([g.Hardlink("pwned-hl", rel_s + "/secret")],
                                   ("pwned-hl", rel_s + "/secret")),
        "hardlink-target-through-symlink": (
            [g.Symlink("evil", s), g.Hardlink("pwned-hl", "evil/secret")],
            ("pwned-hl", "evil/secret")),
        "hardlink-name-through-symlink": (
            [g.File("inner", "inner"), g.Symlink("evil", s + "/dir"),
             g.Hardlink("evil/pwned-hl", "inner")], "evil/pwned-hl"),
        # Device nodes load, but not one overlayfs would read as a whiteout.
        "whiteout-lookalike-device": ([g.CharDev("pwned-wh", 0, 0)], "pwned-wh"),
    }


CASES = sorted(hostile_cases(Path("/x")))


@pytest.mark.parametrize("fmt", ["oci-dir", "docker-legacy"])
@pytest.mark.parametrize("case", CASES)
def test_hostile_layer_refused(isola, tmp_path, sentinel, case, fmt):
    entries, offending = hostile_cases(sentinel)[case]
    keep = g.Image([g.Layer([g.File("keep", "keep\n")])], ["keep:1"])
    isola.load(g.save("oci-dir", keep, tmp_path / "keep"))

    compression = "none" if fmt == "docker-legacy" else "gzip"
    good = g.Layer([g.Dir("etc"), g.File("etc/good", "good\n")], compression)
    hostile = g.Layer(entries + [g.File("after", "after\n")], compression)
    img = g.Image([good, hostile], ["hostile:1"])
    path = g.save(fmt, img, tmp_path / "hostile")

    sentinel_before = tree_state(sentinel)
    before = isola.snapshot()
    res = isola.fail("load", "-i", path)

    assert layer_mentioned(res.stderr, hostile), f"layer digest not named:\n{res.stderr}"
    names = offending if isinstance(offending, tuple) else (offending,)
    assert any(n in res.stderr or n.lstrip("/") in res.stderr for n in names), \
        f"offending entry {offending!r} not named:\n{res.stderr}"
    assert tree_state(sentinel) == sentinel_before, "the sentinel outside the store changed"
    assert find_named(tmp_path, "pwned") == []
    isola.assert_unchanged(before)
    isola.assert_consistent()


def test_hostile_layer_escape_check_is_not_vacuous(tmp_path, sentinel):
    """The escapes above really land in the sentinel when extracted naively:
    a permissive extractor (tar with -P) writes there."""
    entries, _ = hostile_cases(sentinel)["absolute-file"]
    tarball = tmp_path / "layer.tar"
    tarball.write_bytes(g.tar_bytes(entries))
    dest = tmp_path / "naive"
    dest.mkdir()
    subprocess.run(["tar", "-xPf", str(tarball), "-C", str(dest)], check=True)
    assert (sentinel / "pwned").exists()


def test_hardlink_then_file_of_same_name(isola, tmp_path):
    """Writing a regular file over a hardlink's name replaces the name; it
    must not write through the link into the file it points to."""
    layer = g.Layer([
        g.File("target", "original\n"),
        g.Hardlink("link", "target"),
        g.File("link", "REPLACED\n"),
    ])
    img = g.Image([layer], ["hl:1"])
    res = isola("load", "-i", g.save("oci-dir", img, tmp_path / "hl"), check=False)
    if res.returncode == 0:
        mnt = isola.mount("hl:1")
        assert_file(mnt, "target", "original\n")
        assert_file(mnt, "link", "REPLACED\n")
    else:
        assert res.returncode == 125 and res.stderr.startswith("isola: "), res
        assert "link" in res.stderr


def test_hardlink_to_outside_then_file_of_same_name(isola, tmp_path, sentinel):
    """The two-step attack: link to a host file, then write through the link."""
    s = str(sentinel)
    layer = g.Layer([g.Hardlink("pwned-hl", s + "/secret"), g.File("pwned-hl", "OVERWRITTEN\n")])
    img = g.Image([layer], ["hl:1"])
    before_sentinel = tree_state(sentinel)
    before = isola.snapshot()
    res = isola.fail("load", "-i", g.save("oci-dir", img, tmp_path / "hl"))
    assert "pwned-hl" in res.stderr or s + "/secret" in res.stderr or s[1:] + "/secret" in res.stderr
    assert tree_state(sentinel) == before_sentinel
    assert (sentinel / "secret").read_bytes() == b"host secret\n"
    isola.assert_unchanged(before)


def test_symlink_in_lower_layer_does_not_redirect_upper_layer(isola, tmp_path, sentinel):
    """Layer 1 points `evil` outside; layer 2 writes evil/pwned. Layers are
    unpacked separately, so this may load (evil is then a directory of the
    upper layer in the merged view) or be refused; it never writes outside."""
    lower = g.Layer([g.Symlink("evil", str(sentinel) + "/dir")])
    upper = g.Layer([g.File("evil/pwned", "x\n")])
    img = g.Image([lower, upper], ["cross:1"])
    before_sentinel = tree_state(sentinel)
    res = isola("load", "-i", g.save("oci-dir", img, tmp_path / "cross"), check=False)
    assert tree_state(sentinel) == before_sentinel
    if res.returncode == 0:
        mnt = isola.mount("cross:1")
        assert_file(mnt, "evil/pwned", "x\n")
        assert not (mnt / "evil" / "keep").exists()
    else:
        assert res.returncode == 125 and res.stderr.startswith("isola: "), res
        isola.assert_tmp_empty()
    assert tree_state(sentinel) == before_sentinel


def test_hardlink_through_symlink_of_lower_layer(isola, tmp_path, sentinel):
    """A hardlink names a file of its own layer; a lower layer's symlink must
    not make it reach a host file."""
    lower = g.Layer([g.Symlink("evil", str(sentinel))])
    upper = g.Layer([g.Hardlink("pwned-hl", "evil/secret")])
    img = g.Image([lower, upper], ["cross:1"])
    before_sentinel = tree_state(sentinel)
    res = isola("load", "-i", g.save("oci-dir", img, tmp_path / "cross"), check=False)
    assert tree_state(sentinel) == before_sentinel  # link count of secret included
    if res.returncode == 0:
        path = isola.mount("cross:1") / "pwned-hl"
        assert not path.exists() or not os.path.samefile(path, sentinel / "secret")
    else:
        assert res.returncode == 125 and "pwned-hl" in res.stderr, res
        isola.assert_tmp_empty()


def test_device_nodes_load_as_nodes_a_container_cannot_open(box, busybox_layout, tmp_path):
    """Device nodes in a layer load as docker loads them (a debootstrap
    tree has /dev/null, /dev/full, ...), and stay harmless: a container's
    root is mounted nodev, so even root in it cannot open the host's memory
    or disk through them."""
    load_derived_image(box, busybox_layout, tmp_path, "devs:1", {}, [
        g.Dir("nodes"), g.CharDev("nodes/mem", 1, 1, mode=0o640), g.BlockDev("nodes/sda", 8, 0)])
    mem = os.lstat(box.isola.mount("devs:1") / "nodes/mem")
    assert stat.S_ISCHR(mem.st_mode) and os.major(mem.st_rdev) == 1 and os.minor(mem.st_rdev) == 1
    assert stat.S_IMODE(mem.st_mode) == 0o640
    sda = os.lstat(box.isola.mount("devs:1") / "nodes/sda")
    assert stat.S_ISBLK(sda.st_mode) and os.major(sda.st_rdev) == 8
    res = box.run("--rm", "--network", "none", "devs:1", "sh", "-c",
                  "ls -l /nodes; head -c 1 /nodes/mem && echo OPENED-MEM; head -c 1 /nodes/sda && echo OPENED-SDA")
    assert "OPENED" not in res.stdout, describe(res)
    assert "mem" in res.stdout and "sda" in res.stdout, describe(res)
    assert "Permission denied" in res.stderr or "not permitted" in res.stderr, describe(res)


def test_fifo_is_not_a_device(isola, tmp_path):
    """A FIFO is an ordinary image entry."""
    layer = g.Layer([g.Dir("run"), g.Fifo("run/pipe", mode=0o600)])
    isola.load(g.save("oci-dir", g.Image([layer], ["fifo:1"]), tmp_path / "fifo"))
    st = os.lstat(isola.mount("fifo:1") / "run/pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600


# -- setuid files stay in the store, out of reach of host users


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def public_parent():
    """A world-searchable directory, so that only the store's own mode can
    keep other users out (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="isola-it-public-"))
    os.chmod(path, 0o755)
    yield path
    for point in sorted(mountpoints(), key=len, reverse=True):
        if point.startswith(str(path) + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(*cmd):
    return subprocess.run(NOBODY + list(cmd), capture_output=True, text=True)


def test_setuid_file_kept_but_unreachable_by_host_users(make_isola, tmp_path, public_parent):
    isola = make_isola(public_parent / "store")
    layer = g.Layer([g.File("usr/bin/suidprog", "#!/bin/sh\nid\n", mode=0o4755)])
    isola.load(g.save("oci-dir", g.Image([layer], ["suid:1"]), tmp_path / "suid"))

    found = [isola.root / "layers" / p for p in find_named(isola.root / "layers", "suidprog")]
    assert found, "setuid file not found under the store's layers"
    for path in found:
        st = os.lstat(path)
        assert st.st_mode & stat.S_ISUID and st.st_uid == 0, "setuid bit or owner lost"

    # The root may be searchable (0711, for user-namespaced containers) but
    # what holds image files is root's alone.
    assert stat.S_IMODE(os.stat(isola.root).st_mode) in (0o700, 0o711)
    assert stat.S_IMODE(os.stat(isola.root / "layers").st_mode) == 0o700
    # Control: nobody can reach the store's parent, so a denial below comes
    # from the store itself.
    assert as_nobody("stat", str(public_parent)).returncode == 0
    for path in found:
        res = as_nobody("stat", str(path))
        assert res.returncode != 0 and "Permission denied" in res.stderr, res
        res = as_nobody(str(path))
        assert res.returncode != 0 and "Permission denied" in res.stderr, res
    res = as_nobody("ls", str(isola.root))
    assert res.returncode != 0 and "Permission denied" in res.stderr, res


def test_setuid_file_in_mounted_image_unusable_by_host_users(make_isola, tmp_path, public_parent):
    """The read-only view from `image mount` is either out of reach of other
    users or mounted nosuid: a host user must not gain root through it."""
    isola = make_isola(public_parent / "store")
    probe = "#!/bin/sh\nid -u\n"
    layer = g.Layer([g.File("usr/bin/suidprog", probe, mode=0o4755)])
    isola.load(g.save("oci-dir", g.Image([layer], ["suid:1"]), tmp_path / "suid"))
    mnt = isola.mount("suid:1")
    path = mnt / "usr/bin/suidprog"
    assert os.lstat(path).st_mode & stat.S_ISUID
    reachable = as_nobody("stat", str(path)).returncode == 0
    if reachable:
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if l.split()[4] == str(os.path.realpath(mnt)))
        assert "nosuid" in line.split()[5], f"{mnt} reachable by nobody and not nosuid: {line}"
