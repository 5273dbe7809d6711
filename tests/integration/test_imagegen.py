"""The test-image generator itself writes what real tools write (these
tests need no isola binary)."""

import gzip
import io
import json
import subprocess
import tarfile

import pytest

import imagegen as g


def sample(compression):
    return g.Image([
        g.Layer([g.Dir("a"), g.File("a/f", "f"), g.Symlink("a/s", "f"), g.Hardlink("a/h", "a/f")],
                compression),
        g.Layer([g.Whiteout("a/f"), g.Opaque("a")], compression),
    ], ["app:v1"])


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_oci_layout_digests(tmp_path, compression):
    img = sample(compression)
    g.write_dir(g.oci_layout([img]), tmp_path / "oci")
    index, [(manifest, config)] = g.verify_oci_layout(tmp_path / "oci")
    assert index["manifests"][0]["annotations"][g.REF_NAME] == "app:v1"
    assert config["rootfs"]["diff_ids"] == [l.diff_id for l in img.layers]
    assert [l["mediaType"] for l in manifest["layers"]] == [g.MT_LAYER[compression]] * 2


def test_layer_entries(tmp_path):
    layer = g.Layer([g.File("x", "data", mode=0o4755, uid=7), g.CharDev("dev/c", 1, 3),
                     g.Hardlink("y", "x"), g.Opaque("d"), g.Whiteout("d/e")], "gzip")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.blob))) as tar:
        m = {i.name: i for i in tar.getmembers()}
    assert m["x"].mode == 0o4755 and m["x"].uid == 7
    assert m["dev/c"].ischr() and (m["dev/c"].devmajor, m["dev/c"].devminor) == (1, 3)
    assert m["y"].islnk() and m["y"].linkname == "x"
    assert "d/.wh..wh..opq" in m and "d/.wh.e" in m


def test_zstd_round_trip():
    layer = g.Layer([g.File("z", "zzz")], "zstd")
    out = subprocess.run(["zstd", "-d", "-c"], input=layer.blob, capture_output=True, check=True)
    assert out.stdout == layer.tar


def test_docker_legacy_structure(tmp_path):
    img = sample("none")
    path = g.save("docker-legacy", img, tmp_path / "d.tar")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        repos = json.load(tar.extractfile("repositories"))
        config = tar.extractfile(manifest[0]["Config"]).read()
        layers = [tar.extractfile(p).read() for p in manifest[0]["Layers"]]
    assert manifest[0]["RepoTags"] == ["app:v1"]
    assert g.digest_of(config) == img.config_digest
    assert [g.digest_of(l) for l in layers] == json.loads(config)["rootfs"]["diff_ids"]
    top = manifest[0]["Layers"][-1].split("/")[0]
    assert repos == {"app": {"v1": top}}
    assert f"{top}/VERSION" in names and f"{top}/json" in names


def test_docker_new_structure(tmp_path):
    img = sample("none")
    path = g.save("docker-new", img, tmp_path / "d.tar")
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
        assert "oci-layout" in tar.getnames()
        config = tar.extractfile(manifest[0]["Config"]).read()
        for p in manifest[0]["Layers"]:
            assert g.digest_of(tar.extractfile(p).read()) == "sha256:" + p.split("/")[-1]
    assert manifest[0]["Config"] == g.blob_path(img.config_digest)
    assert g.digest_of(config) == img.config_digest
    ann = index["manifests"][0]["annotations"]
    assert ann == {g.REF_NAME: "v1", "io.containerd.image.name": "docker.io/library/app:v1"}


def test_split_tag():
    assert g.split_tag("app") == ("app", "latest")
    assert g.split_tag("app:v1") == ("app", "v1")
    assert g.split_tag("reg:5000/a/b") == ("reg:5000/a/b", "latest")
    assert g.split_tag("reg:5000/a/b:c") == ("reg:5000/a/b", "c")
