"""Whiteouts and opaque directories, seen through `isola image mount`."""

import os

import pytest

import imagegen as g
from checks import assert_absent, assert_dir, assert_file, find_named, is_mountpoint


def layer1(compression="gzip"):
    return g.Layer([
        g.Dir("a"), g.File("a/f1", "f1\n"), g.File("a/f2", "f2\n"),
        g.Dir("b"), g.File("b/x", "x\n"), g.Dir("b/sub"), g.File("b/sub/y", "y\n"),
        g.Dir("c"), g.File("c/keep", "keep\n"),
    ], compression)


def layer2(compression="gzip", opaque_last=False):
    b_entries = [g.Opaque("b"), g.File("b/new", "new\n")]
    if opaque_last:  # the marker may come after the directory's new entries
        b_entries.reverse()
    return g.Layer([
        g.Whiteout("a/f1"),
        *b_entries,
        g.File("c/added", "added\n"),
    ], compression)


def assert_no_whiteout_names(mnt):
    assert find_named(mnt, ".wh.") == [], "whiteout files visible in the merged view"


@pytest.mark.parametrize("fmt,compression", [("oci-dir", "gzip"), ("docker-legacy", "none"),
                                             ("docker-new", "zstd")])
@pytest.mark.parametrize("opaque_last", [False, True])
def test_two_layers(isola, tmp_path, fmt, compression, opaque_last):
    img = g.Image([layer1(compression), layer2(compression, opaque_last)], ["wh:1"])
    isola.load(g.save(fmt, img, tmp_path / "wh"))
    mnt = isola.mount("wh:1")
    assert_file(mnt, "a/f2", "f2\n")
    assert_absent(mnt, "a/f1")
    assert_absent(mnt, "b/x")
    assert_absent(mnt, "b/sub")
    assert_file(mnt, "b/new", "new\n")
    assert sorted(os.listdir(mnt / "b")) == ["new"]
    assert_file(mnt, "c/keep", "keep\n")
    assert_file(mnt, "c/added", "added\n")
    assert sorted(os.listdir(mnt / "c")) == ["added", "keep"]
    assert sorted(os.listdir(mnt / "a")) == ["f2"]
    assert_no_whiteout_names(mnt)


def test_third_layer_recreates_whited_out_files(isola, tmp_path):
    layer3 = g.Layer([
        g.File("a/f1", "f1 again\n"),
        g.File("b/x", "x again\n"),
        g.Dir("c"),
        g.File("c/third", "third\n"),
    ])
    img = g.Image([layer1(), layer2(), layer3], ["wh3:1"])
    isola.load(g.save("oci-tar", img, tmp_path / "wh3.tar"))
    mnt = isola.mount("wh3:1")
    assert_file(mnt, "a/f1", "f1 again\n")
    assert_file(mnt, "a/f2", "f2\n")
    assert_file(mnt, "b/x", "x again\n")
    assert_file(mnt, "b/new", "new\n")
    assert_absent(mnt, "b/sub")
    assert sorted(os.listdir(mnt / "b")) == ["new", "x"]
    assert sorted(os.listdir(mnt / "c")) == ["added", "keep", "third"]
    assert_no_whiteout_names(mnt)


def test_whiteout_of_a_directory_then_recreated(isola, tmp_path):
    """A whited-out directory that a later layer creates again holds only the
    later layer's entries: the lower contents must not shine through."""
    l2 = g.Layer([g.Whiteout("c"), g.Whiteout("b/sub")])
    l3 = g.Layer([g.Dir("c", mode=0o700), g.File("c/fresh", "fresh\n")])
    img = g.Image([layer1(), l2, l3], ["whdir:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "whdir"))
    mnt = isola.mount("whdir:1")
    assert_dir(mnt, "c", mode=0o700)
    assert sorted(os.listdir(mnt / "c")) == ["fresh"]
    assert_absent(mnt, "b/sub")
    assert_file(mnt, "b/x", "x\n")
    assert_no_whiteout_names(mnt)


def test_whiteout_of_something_never_there(isola, tmp_path):
    layers = [layer1(), g.Layer([g.Whiteout("nothing"), g.Whiteout("a/ghost"),
                                 g.Opaque("brand-new-dir"), g.File("brand-new-dir/f", "f")])]
    isola.load(g.save("oci-dir", g.Image(layers, ["ghost:1"]), tmp_path / "ghost"))
    mnt = isola.mount("ghost:1")
    assert_absent(mnt, "nothing")
    assert sorted(os.listdir(mnt / "a")) == ["f1", "f2"]
    assert_file(mnt, "brand-new-dir/f", "f")
    assert_no_whiteout_names(mnt)


def test_whiteout_in_first_layer(isola, tmp_path):
    """Nothing below to hide; the image still loads and shows no marker.
    (Overlayfs lists a whiteout of a directory that exists in one layer only,
    so only lookups are checked here, not directory listings.)"""
    layer = g.Layer([g.File("a/f", "f"), g.Whiteout("a/gone"), g.Opaque("a")])
    isola.load(g.save("oci-dir", g.Image([layer], ["first:1"]), tmp_path / "first"))
    mnt = isola.mount("first:1")
    assert_file(mnt, "a/f", "f")
    assert_absent(mnt, "a/gone")
    assert_no_whiteout_names(mnt)


def test_file_replaced_by_directory_and_back(isola, tmp_path):
    l1 = g.Layer([g.File("thing", "a file\n"), g.Dir("other"), g.File("other/inner", "i")])
    l2 = g.Layer([g.Whiteout("thing"), g.Dir("thing"), g.File("thing/inside", "now a dir\n"),
                  g.Whiteout("other"), g.File("other", "now a file\n")])
    img = g.Image([l1, l2], ["swap:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "swap"))
    mnt = isola.mount("swap:1")
    assert_file(mnt, "thing/inside", "now a dir\n")
    assert_file(mnt, "other", "now a file\n")


def test_each_image_mount_shows_its_own_layers(isola, tmp_path):
    """Two images sharing layer1: the whiteouts of one do not leak into the other."""
    plain = g.Image([layer1(), g.Layer([g.File("plain", "p")])], ["plain:1"])
    whited = g.Image([layer1(), layer2()], ["whited:1"])
    isola.load(g.save("oci-dir", [plain, whited], tmp_path / "both"))
    m_plain = isola.mount("plain:1")
    m_whited = isola.mount("whited:1")
    assert m_plain != m_whited
    assert_file(m_plain, "a/f1", "f1\n")
    assert_file(m_plain, "b/sub/y", "y\n")
    assert_absent(m_whited, "a/f1")
    assert_absent(m_whited, "b/sub")


def test_unmount_then_mount_again(isola, tmp_path):
    img = g.Image([layer1(), layer2()], ["again:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "again"))
    first = isola.mount("again:1")
    isola.unmount("again:1")
    assert not is_mountpoint(first)
    second = isola.mount("again:1")
    assert_file(second, "a/f2", "f2\n")
    assert_absent(second, "a/f1")


def test_mount_unknown_image(isola):
    res = isola.fail("image", "mount", "nosuch:1")
    assert "nosuch" in res.stderr and "not found" in res.stderr
