"""`isola load` of every archive format and layer compression, and what a
user then sees: the load output, `images`, `image inspect` and the files in
the mounted image."""

import os
import stat

import pytest

import imagegen as g
from checks import (assert_absent, assert_dir, assert_file, assert_symlink, find_named,
                    is_mountpoint)

TOOL = b"#!/bin/sh\necho tool\n"


def rich_layers(compression):
    """Two layers that exercise every ordinary entry type."""
    base = g.Layer([
        g.Dir("etc"),
        g.File("etc/os-release", "ID=isola-test\n"),
        g.Dir("bin"),
        g.File("bin/tool", TOOL, mode=0o755),
        g.Symlink("bin/link", "tool"),
        g.Symlink("abs", "/etc/os-release"),
        g.Hardlink("bin/tool-hl", "bin/tool"),
        g.Dir("data", mode=0o750, uid=1000, gid=1000),
        g.File("data/owned", "owned by 1000:1001\n", mode=0o640, uid=1000, gid=1001),
        g.Dir("tmp", mode=0o1777),
        g.File("implicit/parent/file", "no dir entries above me\n"),
        g.File("empty", b""),
    ], compression)
    top = g.Layer([
        g.File("etc/os-release", "ID=isola-test\nVERSION=2\n"),
        g.File("layer2", "second layer\n", mode=0o600),
    ], compression)
    return [base, top]


def assert_rich_rootfs(mnt):
    assert_file(mnt, "etc/os-release", "ID=isola-test\nVERSION=2\n", mode=0o644, uid=0, gid=0)
    assert_file(mnt, "bin/tool", TOOL, mode=0o755, mtime=g.MTIME)
    assert_symlink(mnt, "bin/link", "tool")
    assert_symlink(mnt, "abs", "/etc/os-release")
    assert_file(mnt, "bin/tool-hl", TOOL, mode=0o755)
    assert os.path.samefile(mnt / "bin/tool", mnt / "bin/tool-hl"), "hardlink is a copy"
    assert_dir(mnt, "data", mode=0o750, uid=1000, gid=1000)
    assert_file(mnt, "data/owned", "owned by 1000:1001\n", mode=0o640, uid=1000, gid=1001)
    assert_dir(mnt, "tmp", mode=0o1777)
    assert_file(mnt, "implicit/parent/file", "no dir entries above me\n")
    assert_dir(mnt, "implicit/parent")
    assert_file(mnt, "empty", b"")
    assert_file(mnt, "layer2", "second layer\n", mode=0o600)


FORMAT_COMPRESSION = [
    ("oci-dir", "none"), ("oci-dir", "gzip"), ("oci-dir", "zstd"),
    ("oci-tar", "none"), ("oci-tar", "gzip"), ("oci-tar", "zstd"),
    ("docker-legacy", "none"), ("docker-legacy", "gzip"),
    ("docker-new", "none"), ("docker-new", "gzip"), ("docker-new", "zstd"),
]


@pytest.mark.parametrize("fmt,compression", FORMAT_COMPRESSION)
def test_load_format(isola, tmp_path, fmt, compression):
    config = {"Entrypoint": ["/bin/tool"], "Cmd": ["--help"], "WorkingDir": "/data",
              "Env": ["PATH=/bin", "FOO=bar baz"], "User": "1000:1001",
              "Labels": {"org.example.fmt": fmt}}
    img = g.Image(rich_layers(compression), ["app:v1"], config=config)
    path = g.save(fmt, img, tmp_path / f"image-{fmt}-{compression}")

    assert isola.load(path) == ["Loaded image: app:v1"]

    assert isola.tags() == {"app:v1": img.id}
    info = isola.inspect("app:v1")[0]
    assert info["Id"] == img.id
    assert info["RepoTags"] == ["app:v1"]
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["RootFS"] == {"Type": "layers", "Layers": [l.diff_id for l in img.layers]}
    for key, value in config.items():
        assert info["Config"].get(key) == value, f"Config.{key}"

    assert isola.layer_dirs() == {g.hex_of(l.diff_id) for l in img.layers}
    assert_rich_rootfs(isola.mount("app:v1"))
    isola.assert_consistent()


def test_oci_tar_with_dot_slash_prefix(isola, tmp_path):
    """`tar -C layout -cf x.tar .` names every member ./something."""
    img = g.Image(rich_layers("gzip"), ["dotted:1"])
    path = g.write_tar(g.oci_layout([img]), tmp_path / "dotted.tar", prefix="./")
    assert isola.load(path) == ["Loaded image: dotted:1"]
    assert_rich_rootfs(isola.mount("dotted:1"))


def test_mixed_compression_in_one_image(isola, tmp_path):
    layers = [
        g.Layer([g.File("one", "1")], "gzip"),
        g.Layer([g.File("two", "2")], "zstd"),
        g.Layer([g.File("three", "3")], "none"),
    ]
    img = g.Image(layers, ["mixed:1"])
    assert isola.load(g.save("oci-dir", img, tmp_path / "mixed")) == ["Loaded image: mixed:1"]
    mnt = isola.mount("mixed:1")
    for name, content in (("one", "1"), ("two", "2"), ("three", "3")):
        assert_file(mnt, name, content)


def test_media_type_does_not_decide_compression(isola, tmp_path):
    """Compression is detected from the bytes: a gzip blob labelled as a plain
    tar (as some tools write) loads."""
    layer = g.Layer([g.File("hello", "hi\n")], "gzip")
    layer.compression = "none"  # descriptor now says .tar, the bytes are gzip
    img = g.Image([layer], ["mislabelled:1"])
    assert isola.load(g.save("oci-dir", img, tmp_path / "ml")) == ["Loaded image: mislabelled:1"]
    assert_file(isola.mount("mislabelled:1"), "hello", "hi\n")


def test_pax_long_names_and_utf8(isola, tmp_path):
    deep = "/".join(["d" * 40] * 4)  # 163 characters: beyond ustar's name field
    target = "/" + "t" * 150
    layer = g.Layer([
        g.File(deep + "/file-with-a-long-path", "deep\n"),
        g.Symlink("longlink", target),
        g.File("caf\u00e9/\u65e5\u672c.txt", "utf8\n"),
        g.File("big", os.urandom(3 * 1024 * 1024 + 17)),
    ], "gzip")
    img = g.Image([layer], ["pax:1"])
    isola.load(g.save("oci-tar", img, tmp_path / "pax.tar"))
    mnt = isola.mount("pax:1")
    assert_file(mnt, deep + "/file-with-a-long-path", "deep\n")
    assert_symlink(mnt, "longlink", target)
    assert_file(mnt, "caf\u00e9/\u65e5\u672c.txt", "utf8\n")
    big = [e for e in layer.entries if e.path == "big"][0]
    assert_file(mnt, "big", big.data)


def test_empty_layer(isola, tmp_path):
    layers = [g.Layer([g.File("a", "a")]), g.Layer([]), g.Layer([g.File("b", "b")])]
    img = g.Image(layers, ["withempty:1"])
    isola.load(g.save("docker-new", img, tmp_path / "e.tar"))
    info = isola.inspect("withempty:1")[0]
    assert info["RootFS"]["Layers"] == [l.diff_id for l in layers]
    mnt = isola.mount("withempty:1")
    assert_file(mnt, "a", "a")
    assert_file(mnt, "b", "b")


def test_setuid_and_special_modes_kept(isola, tmp_path):
    layer = g.Layer([
        g.File("usr/bin/suid", TOOL, mode=0o4755),
        g.File("usr/bin/sgid", TOOL, mode=0o2755, gid=42),
        g.Dir("shared", mode=0o2775),
    ])
    img = g.Image([layer], ["modes:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "modes"))
    mnt = isola.mount("modes:1")
    assert_file(mnt, "usr/bin/suid", TOOL, mode=0o4755, uid=0)
    assert_file(mnt, "usr/bin/sgid", TOOL, mode=0o2755, gid=42)
    assert_dir(mnt, "shared", mode=0o2775)


def test_mount_is_read_only_and_unmount_removes_it(isola, tmp_path):
    img = g.Image(rich_layers("gzip"), ["ro:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "ro"))
    mnt = isola.mount("ro:1")
    with pytest.raises(OSError):
        (mnt / "newfile").write_text("nope")
    with pytest.raises(OSError):
        (mnt / "etc/os-release").write_text("nope")
    isola.unmount("ro:1")
    assert not is_mountpoint(mnt)


# -- names and tags


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
def test_oci_ref_name_without_tag_means_latest(isola, tmp_path, fmt):
    img = g.Image([g.Layer([g.File("x", "x")])], ["plain"])
    assert isola.load(g.save(fmt, img, tmp_path / "img")) == ["Loaded image: plain:latest"]
    assert isola.inspect("plain")[0]["Id"] == img.id
    assert isola.inspect("plain:latest")[0]["RepoTags"] == ["plain:latest"]


def test_oci_index_with_several_tags(isola, tmp_path):
    img = g.Image([g.Layer([g.File("x", "x")])], ["multi:1", "multi:2", "other/name:3"])
    lines = isola.load(g.save("oci-dir", img, tmp_path / "m"))
    assert sorted(lines) == ["Loaded image: multi:1", "Loaded image: multi:2",
                             "Loaded image: other/name:3"]
    assert isola.ids() == [img.short_id]
    assert sorted(isola.inspect(img.id)[0]["RepoTags"]) == ["multi:1", "multi:2", "other/name:3"]


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-new"])
def test_docker_repotags_as_given(isola, tmp_path, fmt):
    """RepoTags name the image, including registry hosts with ports; in the
    docker 25 form the index.json ref.name is only "1.0" and must not win."""
    img = g.Image([g.Layer([g.File("x", "x")])], ["registry.local:5000/team/app:1.0", "app:2"])
    lines = isola.load(g.save(fmt, img, tmp_path / "d.tar"))
    assert sorted(lines) == ["Loaded image: app:2",
                             "Loaded image: registry.local:5000/team/app:1.0"]
    entries = {(e["Repository"], e["Tag"]) for e in isola.images_json()}
    assert entries == {("registry.local:5000/team/app", "1.0"), ("app", "2")}
    assert isola.inspect("registry.local:5000/team/app:1.0")[0]["Id"] == img.id


@pytest.mark.parametrize("fmt", g.FORMATS)
def test_untagged_image(isola, tmp_path, fmt):
    img = g.Image([g.Layer([g.File("x", "untagged")])], [])
    path = g.save(fmt, img, tmp_path / "u")
    assert isola.load(path) == [f"Loaded image ID: {img.id}"]
    entries = isola.images_json()
    assert [(e["Repository"], e["Tag"], e["Id"]) for e in entries] == [("<none>", "<none>", img.id)]
    info = isola.inspect(img.id)[0]
    assert info["RepoTags"] == []
    assert_file(isola.mount(img.short_id), "x", "untagged")


@pytest.mark.parametrize("fmt", g.FORMATS)
def test_several_images_in_one_archive(isola, tmp_path, fmt):
    base = g.Layer([g.File("base", "shared base\n")])
    one = g.Image([base, g.Layer([g.File("who", "one")])], ["one:1"])
    two = g.Image([base, g.Layer([g.File("who", "two")])], ["two:1"])
    lines = isola.load(g.save(fmt, [one, two], tmp_path / "two"))
    assert sorted(lines) == ["Loaded image: one:1", "Loaded image: two:1"]
    assert isola.tags() == {"one:1": one.id, "two:1": two.id}
    assert len(isola.layer_dirs()) == 3
    assert_file(isola.mount("one:1"), "who", "one")
    assert_file(isola.mount("two:1"), "who", "two")
    isola.assert_consistent()


def test_load_quiet(isola, tmp_path):
    img = g.Image([g.Layer([g.File("q", "q")])], ["quiet:1"])
    res = isola("load", "-q", "-i", g.save("oci-dir", img, tmp_path / "q"))
    assert res.stderr == ""
    assert isola.tags() == {"quiet:1": img.id}


# -- loading again, sharing layers


@pytest.mark.parametrize("fmt", ["oci-dir", "docker-legacy"])
def test_load_twice_is_idempotent(isola, tmp_path, fmt):
    img = g.Image(rich_layers("gzip"), ["twice:1"])
    path = g.save(fmt, img, tmp_path / "t")
    assert isola.load(path) == ["Loaded image: twice:1"]
    first = isola.snapshot()
    images_before = isola.images_json()
    assert isola.load(path) == ["Loaded image: twice:1"]
    assert isola.snapshot() == first
    assert isola.images_json() == images_before
    isola.assert_consistent()


def test_same_image_from_different_formats_is_one_image(isola, tmp_path):
    img = g.Image(rich_layers("none"), ["same:1"])
    isola.load(g.save("docker-legacy", img, tmp_path / "a.tar"))
    isola.load(g.save("oci-tar", img, tmp_path / "b.tar"))
    assert isola.ids() == [img.short_id]
    assert len(isola.layer_dirs()) == 2


def test_layers_shared_between_images(isola, tmp_path):
    base = g.Layer([g.File("base", "base\n")], "gzip")
    one = g.Image([base, g.Layer([g.File("one", "1")])], ["one:1"])
    # The same base content compressed differently is still the same layer.
    base_zstd = g.Layer(base.entries, "zstd")
    assert base_zstd.diff_id == base.diff_id and base_zstd.digest != base.digest
    two = g.Image([base_zstd, g.Layer([g.File("two", "2")])], ["two:1"])
    isola.load(g.save("oci-dir", one, tmp_path / "one"))
    assert len(isola.layer_dirs()) == 2
    isola.load(g.save("oci-dir", two, tmp_path / "two"))
    assert isola.layer_dirs() == {g.hex_of(l.diff_id) for l in one.layers + two.layers}
    assert len(isola.layer_dirs()) == 3
    isola.assert_consistent()


def test_retagging_moves_the_tag(isola, tmp_path):
    old = g.Image([g.Layer([g.File("v", "old")])], ["app:latest"])
    new = g.Image([g.Layer([g.File("v", "new")])], ["app:latest"])
    isola.load(g.save("oci-dir", old, tmp_path / "old"))
    isola.load(g.save("oci-dir", new, tmp_path / "new"))
    assert isola.tags()["app:latest"] == new.id
    assert_file(isola.mount("app"), "v", "new")


def test_store_root_is_private(isola, tmp_path):
    img = g.Image([g.Layer([g.File("x", "x")])], ["priv:1"])
    isola.load(g.save("oci-dir", img, tmp_path / "p"))
    # The root may be traversed (containers in a user namespace need that)
    # but not listed; what holds image files is private to root.
    assert stat.S_IMODE(os.stat(isola.root).st_mode) in (0o700, 0o711)
    for sub in ("layers", "blobs", "mounts", "tmp"):
        assert stat.S_IMODE(os.stat(os.path.join(isola.root, sub)).st_mode) == 0o700, sub


def test_converted_layers_hold_no_whiteout_files(isola, tmp_path):
    lower = g.Layer([g.File("a/f1", "1"), g.File("a/f2", "2"), g.File("b/x", "x")])
    upper = g.Layer([g.Whiteout("a/f1"), g.Opaque("b"), g.File("b/y", "y")])
    isola.load(g.save("oci-dir", g.Image([lower, upper], ["wh:1"]), tmp_path / "wh"))
    assert find_named(isola.root / "layers", ".wh.") == []
    mnt = isola.mount("wh:1")
    assert_absent(mnt, "a/f1")
    assert_absent(mnt, "b/x")
