"""Broken archives: every failure exits 125 with an `isola: ` message that
names the bad thing, and leaves the store exactly as it was."""

import json

import pytest

import imagegen as g
from checks import assert_file, layer_mentioned


def base_layer(compression="gzip"):
    return g.Layer([g.Dir("etc"), g.File("etc/base", "base\n")], compression)


@pytest.fixture
def store(isola, tmp_path):
    """A store that already holds keep:1, which shares its base layer with
    the broken images: a failed load must not disturb it."""
    keep = g.Image([base_layer(), g.Layer([g.File("keep", "keep\n")])], ["keep:1"])
    isola.load(g.save("oci-dir", keep, tmp_path / "keep"))
    return isola


def bad_image(compression="gzip"):
    """Three layers: base (already in the store), mid and top."""
    return g.Image([
        base_layer(compression),
        g.Layer([g.File("mid", "mid\n" * 1000)], compression),
        g.Layer([g.File("top", "top\n")], compression),
    ], ["bad:1"])


def assert_refused(isola, path, *must_mention):
    before = isola.snapshot()
    res = isola.fail("load", "-i", path)
    for text in must_mention:
        assert text in res.stderr, f"stderr does not mention {text!r}:\n{res.stderr}"
    isola.assert_unchanged(before)
    assert "bad:1" not in isola.tags()
    isola.assert_consistent()
    assert_file(isola.mount("keep:1"), "keep", "keep\n")
    return res


OCI_FORMATS = ["oci-dir", "oci-tar"]


# -- OCI layouts: the blob under a digest is not what the digest says


@pytest.mark.parametrize("fmt", OCI_FORMATS)
@pytest.mark.parametrize("which", ["manifest", "config", "mid-layer", "top-layer"])
def test_blob_content_does_not_match_digest(store, tmp_path, fmt, which):
    img = bad_image()
    files = g.oci_layout([img])
    if which == "manifest":
        digest = img.manifest_digest
        other = dict(img.manifest_dict(), annotations={"tampered": "yes"})
        files[g.blob_path(digest)] = g.canonical_json(other)
    elif which == "config":
        digest = img.config_digest
        other = img.config_dict()
        other["config"] = {"Cmd": ["/bin/evil"]}
        files[g.blob_path(digest)] = g.canonical_json(other)
    else:
        layer = img.layers[1 if which == "mid-layer" else 2]
        digest = layer.digest
        files[g.blob_path(digest)] = g.compress(g.tar_bytes([g.File("evil", "evil")]), "gzip")
    path = g.write_archive(fmt, files, tmp_path / "bad")
    assert_refused(store, path, g.hex_of(digest))


@pytest.mark.parametrize("fmt", OCI_FORMATS)
@pytest.mark.parametrize("which", ["manifest", "config", "mid-layer", "top-layer"])
def test_missing_blob(store, tmp_path, fmt, which):
    img = bad_image()
    digest = {"manifest": img.manifest_digest, "config": img.config_digest,
              "mid-layer": img.layers[1].digest, "top-layer": img.layers[2].digest}[which]
    files = g.oci_layout([img])
    del files[g.blob_path(digest)]
    path = g.write_archive(fmt, files, tmp_path / "bad")
    assert_refused(store, path, g.hex_of(digest))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("which", [1, 2])
def test_truncated_compressed_layer(store, tmp_path, compression, which):
    """The digest is right (the archive was cut before it was described), so
    only decompression can notice."""
    img = bad_image(compression)
    layer = img.layers[which]
    layer.blob = layer.blob[: len(layer.blob) // 2]
    path = g.save("oci-dir", img, tmp_path / "bad")
    assert_refused(store, path, g.hex_of(layer.digest))


def test_truncated_tar_inside_valid_gzip(store, tmp_path):
    """A layer whose tar stops in the middle of a file's data."""
    full = g.tar_bytes([g.File("a", "a\n"), g.File("big", b"x" * 20000)])
    layer = g.Layer(tar=full[:512 * 3 + 5000], compression="gzip")
    img = g.Image([base_layer(), layer], ["bad:1"])
    path = g.save("oci-dir", img, tmp_path / "bad")
    res = assert_refused(store, path)
    assert layer_mentioned(res.stderr, layer), res.stderr


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layer_that_is_not_a_tar(store, tmp_path, compression):
    layer = g.Layer(tar=b"this is not a tar archive\n" * 100, compression=compression)
    img = g.Image([base_layer(), layer], ["bad:1"])
    path = g.save("oci-dir", img, tmp_path / "bad")
    res = assert_refused(store, path)
    assert layer_mentioned(res.stderr, layer), res.stderr


@pytest.mark.parametrize("fmt", OCI_FORMATS)
def test_diff_id_mismatch(store, tmp_path, fmt):
    img = bad_image()
    claimed = g.digest_of(b"not the mid layer")
    img.diff_ids = [img.layers[0].diff_id, claimed, img.layers[2].diff_id]
    path = g.save(fmt, img, tmp_path / "bad")
    res = assert_refused(store, path)
    assert layer_mentioned(res.stderr, img.layers[1]) or g.hex_of(claimed) in res.stderr, res.stderr


def test_diff_ids_fewer_than_layers(store, tmp_path):
    img = bad_image()
    img.diff_ids = [img.layers[0].diff_id]
    assert_refused(store, g.save("oci-dir", img, tmp_path / "bad"))


# -- malformed JSON


@pytest.mark.parametrize("fmt", OCI_FORMATS)
def test_malformed_manifest_json(store, tmp_path, fmt):
    img = bad_image()
    img.manifest_raw = b'{"schemaVersion": 2, "config": {"digest": '
    assert_refused(store, g.save(fmt, img, tmp_path / "bad"), g.hex_of(img.manifest_digest))


def test_manifest_json_of_wrong_shape(store, tmp_path):
    img = bad_image()
    img.manifest_raw = g.canonical_json({"schemaVersion": 2, "config": "nope", "layers": {}})
    assert_refused(store, g.save("oci-dir", img, tmp_path / "bad"), g.hex_of(img.manifest_digest))


@pytest.mark.parametrize("fmt", OCI_FORMATS)
def test_malformed_config_json(store, tmp_path, fmt):
    img = bad_image()
    img.config_raw = b'{"architecture": "amd64", "rootfs": {"diff_ids": ['
    assert_refused(store, g.save(fmt, img, tmp_path / "bad"), g.hex_of(img.config_digest))


def test_config_json_of_wrong_shape(store, tmp_path):
    img = bad_image()
    img.config_raw = g.canonical_json({"architecture": "amd64", "os": "linux",
                                       "rootfs": {"type": "layers", "diff_ids": "sha256:x"}})
    assert_refused(store, g.save("oci-dir", img, tmp_path / "bad"), g.hex_of(img.config_digest))


@pytest.mark.parametrize("fmt", OCI_FORMATS)
def test_malformed_index_json(store, tmp_path, fmt):
    files = g.oci_layout([bad_image()])
    files["index.json"] = b'{"schemaVersion": 2, "manifests": [{'
    assert_refused(store, g.write_archive(fmt, files, tmp_path / "bad"), "index.json")


# -- digests that are not digests


def test_index_digest_with_path_traversal(store, tmp_path, sentinel):
    """A digest is 64 hex characters; anything else must not become a path."""
    img = bad_image()
    files = g.oci_layout([img])
    # A readable file outside the layout, holding a valid manifest.
    (sentinel / "manifest").write_bytes(img.manifest_bytes)
    evil = "sha256:" + "../" * 12 + str(sentinel / "manifest").lstrip("/")
    index = json.loads(files["index.json"])
    index["manifests"][0]["digest"] = evil
    files["index.json"] = g.canonical_json(index)
    assert_refused(store, g.write_archive("oci-dir", files, tmp_path / "bad"))


def test_layer_digest_with_path_traversal(store, tmp_path):
    img = bad_image()
    manifest = img.manifest_dict()
    manifest["layers"][1]["digest"] = "sha256:../../index.json"
    img.manifest_raw = g.canonical_json(manifest)
    assert_refused(store, g.save("oci-dir", img, tmp_path / "bad"))


def test_unsupported_digest_algorithm(store, tmp_path):
    img = bad_image()
    manifest = img.manifest_dict()
    manifest["layers"][1]["digest"] = "md5:" + "0" * 32
    img.manifest_raw = g.canonical_json(manifest)
    assert_refused(store, g.save("oci-dir", img, tmp_path / "bad"))


# -- docker save, legacy form


def legacy_layer_path(files, layer):
    for path, data in files.items():
        if path.endswith("/layer.tar") and data == layer.blob:
            return path
    raise AssertionError("layer not in archive")


def test_legacy_layer_does_not_match_diff_id(store, tmp_path):
    img = bad_image("none")
    files = g.docker_legacy([img])
    files[legacy_layer_path(files, img.layers[1])] = g.tar_bytes([g.File("evil", "evil")])
    res = assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"))
    assert g.hex_of(img.layers[1].diff_id) in res.stderr, res.stderr


def test_legacy_missing_layer_tar(store, tmp_path):
    img = bad_image("none")
    files = g.docker_legacy([img])
    path = legacy_layer_path(files, img.layers[2])
    del files[path]
    res = assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"))
    assert path in res.stderr or g.hex_of(img.layers[2].diff_id) in res.stderr, res.stderr


def test_legacy_missing_config(store, tmp_path):
    img = bad_image("none")
    files = g.docker_legacy([img])
    del files[g.hex_of(img.config_digest) + ".json"]
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"), g.hex_of(img.config_digest))


def test_legacy_malformed_manifest_json(store, tmp_path):
    files = g.docker_legacy([bad_image("none")])
    files["manifest.json"] = b'[{"Config": "abc.json", "Layers": ['
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"), "manifest.json")


def test_legacy_malformed_config_json(store, tmp_path):
    img = bad_image("none")
    img.config_raw = b'{"rootfs": {"type": "layers", "diff_ids": ["sha256:'
    assert_refused(store, g.save("docker-legacy", img, tmp_path / "bad.tar"),
                   g.hex_of(img.config_digest))


def test_legacy_truncated_gzip_layer(store, tmp_path):
    img = bad_image("gzip")
    img.layers[1].blob = img.layers[1].blob[:100]
    res = assert_refused(store, g.save("docker-legacy", img, tmp_path / "bad.tar"))
    assert layer_mentioned(res.stderr, img.layers[1]) or "layer.tar" in res.stderr, res.stderr


def test_legacy_config_name_is_not_its_digest(isola, tmp_path):
    """The config file's name claims a digest its content does not have:
    either refuse, or identify the image by what the content hashes to."""
    img = g.Image([base_layer("none")], ["named:1"])
    files = g.docker_legacy([img])
    real_name = g.hex_of(img.config_digest) + ".json"
    fake_hex = g.sha256_hex(b"fake")
    files[fake_hex + ".json"] = files.pop(real_name)
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Config"] = fake_hex + ".json"
    files["manifest.json"] = g.canonical_json(manifest)
    path = g.write_tar(files, tmp_path / "named.tar")
    res = isola("load", "-i", path, check=False)
    if res.returncode == 0:
        assert isola.inspect("named:1")[0]["Id"] == img.id
    else:
        assert res.returncode == 125 and res.stderr.startswith("isola: "), res
        assert fake_hex in res.stderr or g.hex_of(img.id) in res.stderr, res.stderr


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-new"])
@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_manifest_json_paths_outside_the_archive(store, tmp_path, sentinel, fmt, how):
    """manifest.json names files of the archive; a path that climbs out of
    it must not read the host, even when the host file is a valid layer."""
    img = bad_image("none")
    files = g.archive_files(fmt, [img])
    host_layer = sentinel / "layer.tar"
    host_layer.write_bytes(img.layers[1].blob)
    manifest = json.loads(files["manifest.json"])
    if how == "relative":
        manifest[0]["Layers"][1] = "../" * 12 + str(host_layer).lstrip("/")
    else:
        manifest[0]["Layers"][1] = str(host_layer)
    files["manifest.json"] = g.canonical_json(manifest)
    for path in list(files):
        if files[path] == img.layers[1].blob:
            del files[path]
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"))


# -- docker save, docker 25+ form


def test_docker_new_layer_blob_wrong_content(store, tmp_path):
    img = bad_image("none")
    files = g.docker_new([img])
    files[g.blob_path(img.layers[1].digest)] = g.tar_bytes([g.File("evil", "evil")])
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"), g.hex_of(img.layers[1].digest))


def test_docker_new_missing_config_blob(store, tmp_path):
    img = bad_image("none")
    files = g.docker_new([img])
    del files[g.blob_path(img.config_digest)]
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"), g.hex_of(img.config_digest))


def test_docker_new_malformed_manifest_json(store, tmp_path):
    files = g.docker_new([bad_image("none")])
    files["manifest.json"] = b"[{]"
    assert_refused(store, g.write_tar(files, tmp_path / "bad.tar"), "manifest.json")


# -- all or nothing


@pytest.mark.parametrize("fmt", g.FORMATS)
def test_one_bad_image_fails_the_whole_archive(store, tmp_path, fmt):
    good = g.Image([base_layer("none"), g.Layer([g.File("good", "good")], "none")], ["good:1"])
    bad = bad_image("none")
    bad.diff_ids = [bad.layers[0].diff_id, g.digest_of(b"wrong"), bad.layers[2].diff_id]
    assert_refused(store, g.save(fmt, [good, bad], tmp_path / "two"))
    assert "good:1" not in store.tags()


# -- not an image at all


def test_load_missing_path(store, tmp_path):
    path = tmp_path / "does-not-exist.tar"
    assert_refused(store, path, str(path))


def test_load_random_bytes(store, tmp_path):
    path = tmp_path / "random.tar"
    path.write_bytes(b"\x00\x01garbage" * 1000)
    assert_refused(store, path)


def test_load_directory_that_is_not_a_layout(store, tmp_path):
    path = tmp_path / "notalayout"
    path.mkdir()
    (path / "hello").write_text("hi")
    assert_refused(store, path)


def test_load_tar_that_is_not_an_image(store, tmp_path):
    path = g.write_tar({"hello.txt": b"hello"}, tmp_path / "plain.tar")
    assert_refused(store, path)
