"""The store keeps layer blobs; `isola save`, `isola import` and `isola commit`.

After a load every blob the stored manifest names (config and layers, as
given) is in <root>/blobs/sha256, which save (and pull/push) rely on. Save
writes an OCI layout tar (with a docker manifest.json) that isola, skopeo and
podman read; import makes a one-layer image of a rootfs tarball; commit makes
a container's changes a new layer."""

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

import imagegen
from containers import IMAGE, TIMEOUT, box, describe, userns_box  # noqa: F401
from engines import RUNTIME, Podman

NET = ("--network", "none")


def store_blob(isola, digest):
    return isola.root / "blobs" / "sha256" / imagegen.hex_of(digest)


def stored_manifest(isola, ref):
    info = isola.inspect(ref)[0]
    return json.loads(store_blob(isola, info["Digest"]).read_bytes())


def blob_files(isola):
    return set(os.listdir(isola.root / "blobs" / "sha256"))


def busybox_blob(layout):
    _, [(manifest, _)] = imagegen.verify_oci_layout(layout)
    return (layout / imagegen.blob_path(manifest["layers"][0]["digest"])).read_bytes()


def sample_image(tag="app:v1", compressions=("gzip", "zstd", "none")):
    layers = [imagegen.Layer([imagegen.File(f"f{i}", f"layer {i}\n".encode())], c)
              for i, c in enumerate(compressions)]
    return imagegen.Image(layers, [tag])


# -- the store keeps layer blobs


@pytest.mark.parametrize("fmt", ["oci-tar", "oci-dir", "docker-new"])
def test_load_keeps_the_layer_blobs_byte_for_byte(isola, tmp_path, fmt):
    image = sample_image()
    isola.load(imagegen.save(fmt, image, tmp_path / "in"))
    manifest = stored_manifest(isola, "app:v1")
    assert isola.inspect("app:v1")[0]["Digest"] == image.manifest_digest
    assert store_blob(isola, manifest["config"]["digest"]).read_bytes() == image.config_bytes
    for layer, desc in zip(image.layers, manifest["layers"]):
        assert store_blob(isola, desc["digest"]).read_bytes() == layer.blob


def test_legacy_docker_archive_gets_a_manifest_naming_its_stored_blobs(isola, tmp_path):
    image = sample_image(compressions=("none", "none"))
    isola.load(imagegen.save("docker-legacy", image, tmp_path / "in.tar"))
    manifest = stored_manifest(isola, "app:v1")
    assert len(manifest["layers"]) == 2
    for layer, desc in zip(image.layers, manifest["layers"]):
        data = store_blob(isola, desc["digest"]).read_bytes()
        assert imagegen.digest_of(data) == desc["digest"] == layer.digest
        assert desc["size"] == len(data)
        assert desc["mediaType"] == imagegen.MT_LAYER["none"]


def test_rmi_drops_the_layer_blobs_no_image_names(isola, tmp_path):
    shared = imagegen.Layer([imagegen.File("shared", b"both\n")])
    a = imagegen.Image([shared, imagegen.Layer([imagegen.File("a", b"a\n")])], ["a:1"])
    b = imagegen.Image([shared], ["b:1"])
    isola.load(imagegen.save("oci-tar", [a, b], tmp_path / "in.tar"))
    hexes = lambda *ds: {imagegen.hex_of(d) for d in ds}  # noqa: E731
    assert hexes(*(l.digest for l in a.layers)) <= blob_files(isola)
    isola("rmi", "a:1")
    assert blob_files(isola) == hexes(shared.digest, b.config_digest, b.manifest_digest)
    isola("rmi", "b:1")
    assert blob_files(isola) == set()
    isola.assert_consistent(check_mount=False)


# -- save


def test_save_load_round_trip_keeps_id_and_digest(isola, make_isola, busybox_layout, tmp_path):
    isola.load(busybox_layout)
    isola.load(imagegen.save("oci-tar", sample_image(), tmp_path / "app.tar"))
    before = {ref: isola.inspect(ref)[0] for ref in ("busybox", "app:v1")}
    out = tmp_path / "saved.tar"
    isola("save", "-o", out, "busybox", "app:v1")
    names = tarfile.open(out).getnames()
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    index = json.loads(tarfile.open(out).extractfile("index.json").read())
    annotations = sorted(m["annotations"]["io.containerd.image.name"] for m in index["manifests"])
    assert annotations == ["docker.io/library/app:v1", "docker.io/library/busybox:latest"]
    assert sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]) == [
        "latest", "v1"]
    docker = json.loads(tarfile.open(out).extractfile("manifest.json").read())
    assert sorted(t for e in docker for t in e["RepoTags"]) == ["app:v1", "busybox:latest"]

    fresh = make_isola(tmp_path / "fresh")
    assert sorted(fresh.load(out)) == ["Loaded image: app:v1", "Loaded image: busybox:latest"]
    for ref, info in before.items():
        again = fresh.inspect(ref)[0]
        assert (again["Id"], again["Digest"]) == (info["Id"], info["Digest"])
    assert blob_files(fresh) == blob_files(isola)
    res = fresh("run", "--rm", *NET, "busybox", "echo", "saved and loaded", timeout=TIMEOUT)
    assert res.stdout == "saved and loaded\n"
    # Into the store it came from, after removing it: the same image again.
    isola("rmi", "app:v1")
    isola.load(out)
    assert isola.inspect("app:v1")[0]["Digest"] == before["app:v1"]["Digest"]


def test_save_to_stdout_and_by_id(isola, busybox_layout, tmp_path):
    isola.load(busybox_layout)
    image_id = isola.inspect("busybox")[0]["Id"]
    res = subprocess.run([isola.bin, "--root", isola.root, "save", image_id], capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    (tmp_path / "out.tar").write_bytes(res.stdout)
    index = json.loads(tarfile.open(tmp_path / "out.tar").extractfile("index.json").read())
    assert "annotations" not in index["manifests"][0]  # by ID: untagged, as docker
    isola("rmi", "busybox")
    assert isola.load(tmp_path / "out.tar") == [f"Loaded image ID: {image_id}"]


def test_save_failure_leaves_no_file(isola, busybox_layout, tmp_path):
    isola.load(busybox_layout)
    res = isola.fail("save", "-o", tmp_path / "out.tar", "busybox", "nosuchimage")
    assert "nosuchimage" in res.stderr
    assert os.listdir(tmp_path) == ["store"]


def test_save_of_an_image_without_layer_blobs_says_to_load_it_again(isola, busybox_layout, tmp_path):
    """An image an older isola recorded: its manifest names layer blobs the store never kept."""
    isola.load(busybox_layout)
    layer = stored_manifest(isola, "busybox")["layers"][0]["digest"]
    store_blob(isola, layer).unlink()
    res = isola.fail("save", "-o", tmp_path / "out.tar", "busybox")
    assert "load or pull the image again" in res.stderr
    assert not (tmp_path / "out.tar").exists()
    isola.load(busybox_layout)  # fills the blob in
    assert store_blob(isola, layer).exists()
    isola("save", "-o", tmp_path / "out.tar", "busybox")


def test_save_is_readable_by_skopeo(isola, tmp_path):
    if not shutil.which("skopeo"):
        pytest.skip("skopeo not installed")
    image = sample_image()
    isola.load(imagegen.save("oci-tar", image, tmp_path / "in.tar"))
    out = tmp_path / "saved.tar"
    isola("save", "-o", out, "app:v1")
    res = subprocess.run(["skopeo", "inspect", f"oci-archive:{out}"], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == [l.digest for l in image.layers]
    res = subprocess.run(["skopeo", "copy", f"oci-archive:{out}", f"dir:{tmp_path / 'copy'}"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    for layer in image.layers:
        assert (tmp_path / "copy" / imagegen.hex_of(layer.digest)).read_bytes() == layer.blob


def test_save_is_loadable_by_podman(isola, busybox_layout, tmp_path):
    if not shutil.which("podman"):
        pytest.skip("podman not installed")
    isola.load(busybox_layout)
    out = tmp_path / "saved.tar"
    isola("save", "-o", out, "busybox")
    # A short base path (podman refuses a runroot over 50 characters); the
    # host's crun cannot run in its hybrid cgroups, so isola-runtime runs it.
    scratch = tempfile.mkdtemp(prefix="isola-podman-", dir="/tmp")
    podman = Podman(scratch, runtime=os.environ.get("ISOLA_RUNTIME_BIN", RUNTIME))
    try:
        res = podman("load", "-i", out)
        assert res.returncode == 0, describe(res)
        assert "busybox:latest" in res.stdout
        res = podman("run", "--rm", *podman.run_args("process"), "docker.io/library/busybox:latest",
                     "echo", "hello from podman")
        assert res.returncode == 0, describe(res)
        assert res.stdout == "hello from podman\n"
    finally:
        podman("rmi", "-a", "-f")
        subprocess.run(["umount", "-R", "-l", f"{scratch}/root/overlay"], capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(scratch, ignore_errors=True)


# -- import


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_import_rootfs_tarball_then_run(isola, busybox_layout, tmp_path, compression):
    rootfs = gzip.decompress(busybox_blob(busybox_layout))
    data = imagegen.compress(rootfs, compression)
    path = tmp_path / "rootfs.tar"
    path.write_bytes(data)
    res = isola("import", "-c", 'CMD ["echo", "imported"]', "-c", "ENV GREETING=hi", path, "mine:1")
    image_id = res.stdout.strip()
    info = isola.inspect("mine:1")[0]
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [imagegen.digest_of(rootfs)]
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    manifest = stored_manifest(isola, "mine:1")
    assert manifest["layers"][0]["digest"] == imagegen.digest_of(data)
    assert manifest["layers"][0]["mediaType"] == imagegen.MT_LAYER[compression]
    assert store_blob(isola, manifest["layers"][0]["digest"]).read_bytes() == data
    assert isola("run", "--rm", *NET, "mine:1", timeout=TIMEOUT).stdout == "imported\n"
    res = isola("run", "--rm", *NET, "mine:1", "sh", "-c", "echo $GREETING", timeout=TIMEOUT)
    assert res.stdout == "hi\n"
    isola.assert_tmp_empty()


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_import_of_a_root_with_device_nodes_runs(isola, busybox_layout, tmp_path, isolation):
    """A real root file system (debootstrap's, `tar -C rootfs -c .`) carries
    /dev/null, /dev/full, ...: it imports, as with docker, and runs in both
    isolation levels, with the container's own /dev over the image's."""
    rootfs = gzip.decompress(busybox_blob(busybox_layout))
    extra = imagegen.tar_bytes([imagegen.Dir("./dev"), imagegen.CharDev("./dev/full", 1, 7),
                                imagegen.CharDev("./dev/null", 1, 3), imagegen.BlockDev("./dev/loop0", 7, 0)])
    path = tmp_path / "rootfs.tar"
    # Both archives end with two zero blocks; the first one's are dropped.
    path.write_bytes(strip_tar_end(rootfs) + extra)
    isola("import", path, "devroot:1")
    layer = isola.mount("devroot:1")
    assert os.major(os.lstat(layer / "dev/full").st_rdev) == 1
    res = isola("run", "--rm", *NET, f"--isolation={isolation}", "devroot:1", "sh", "-c",
                "echo ok > /dev/null && head -c 4 /dev/zero | wc -c", timeout=TIMEOUT * 3)
    assert res.stdout == "4\n", describe(res)


def strip_tar_end(data):
    """A tar archive without its end-of-archive blocks (zeros), so another can follow."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.getmembers()
        end = tar.offset
    return data[:end]


def test_import_of_a_non_tar_leaves_the_store_unchanged(isola, busybox_layout, tmp_path):
    isola.load(busybox_layout)
    before = isola.snapshot()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(gzip.compress(b"this is not a tar archive" * 100))
    isola.fail("import", bad, "bad:1")
    isola.fail("import", tmp_path / "missing.tar")
    isola.fail("import", "-c", "FROBNICATE x", bad)
    isola.assert_unchanged(before)


# -- commit


def committed_run(box, image, script):
    res = box.run("--rm", *NET, image, "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    return res.stdout


def test_commit_keeps_writes_and_deletions(box, tmp_path):
    script = ("echo new > /newfile && ln /newfile /hardlink && ln -s newfile /symlink && mkfifo /fifo && "
              "rm /etc/group && rm -rf /var/spool && mkdir /var/spool && echo only > /var/spool/only && "
              "chmod 4711 /newfile && chown -h 12:34 /symlink")
    res = box.run("--name", "c1", *NET, IMAGE, "sh", "-c", script)
    assert res.returncode == 0, describe(res)
    image_id = box.ok("commit", "-m", "my change", "-c", "ENV FOO=bar", "c1", "committed:1").strip()
    info = box.isola.inspect("committed:1")[0]
    assert info["Id"] == image_id
    base = box.isola.inspect(IMAGE)[0]
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    assert "FOO=bar" in info["Config"]["Env"]
    out = committed_run(box, "committed:1",
                        "cat /newfile; test -e /etc/group || echo group gone; ls /var/spool; "
                        "stat -c '%h %a' /newfile; readlink /symlink; stat -c '%u:%g' /symlink; "
                        "test -p /fifo && echo fifo; echo $FOO")
    assert out.split("\n") == ["new", "group gone", "only", "2 4711", "newfile", "12:34", "fifo", "bar", ""]

    # The new layer in OCI form: whiteout and opaque markers, nothing else odd.
    manifest = stored_manifest(box.isola, "committed:1")
    layer = store_blob(box.isola, manifest["layers"][-1]["digest"])
    assert manifest["layers"][-1]["mediaType"] == imagegen.MT_LAYER["gzip"]
    names = tarfile.open(layer).getnames()
    assert "etc/.wh.group" in names and "var/spool/.wh..wh..opq" in names
    assert not any(n.startswith("/") or ".." in n.split("/") for n in names)
    history = box.isola.inspect("committed:1")[0]
    assert history  # inspect works; the config's history holds the message
    config = json.loads(store_blob(box.isola, manifest["config"]["digest"]).read_bytes())
    assert config["history"][-1]["comment"] == "my change"
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == len(config["rootfs"]["diff_ids"])


def test_commit_of_a_running_container_and_of_an_imported_image(box, busybox_layout, tmp_path):
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(busybox_blob(busybox_layout))
    box.ok("import", "-c", "CMD sh", path, "imported:1")
    cid = box.run_d("--name", "running", *NET, "imported:1", "sh", "-c", "echo hello > /hello; sleep 1000")
    box.wait_status(cid, "running")
    for _ in range(50):
        if box.sh(cid, "cat /hello").stdout == "hello\n":
            break
    box.ok("container", "commit", "running", "imported:2")
    assert committed_run(box, "imported:2", "cat /hello") == "hello\n"
    box.rm_f(cid)
    # GC keeps what a remaining image names and drops the rest.
    layers = stored_manifest(box.isola, "imported:2")["layers"]
    box.ok("rmi", "imported:1")
    assert all(store_blob(box.isola, l["digest"]).exists() for l in layers)
    box.ok("rmi", "imported:2")
    assert not store_blob(box.isola, layers[-1]["digest"]).exists()


def test_commit_survives_save_and_load(box, make_isola, tmp_path):
    box.run("--name", "c2", *NET, IMAGE, "sh", "-c", "echo kept > /kept")
    box.ok("commit", "c2", "roundtrip:1")
    out = tmp_path / "rt.tar"
    box.ok("save", "-o", out, "roundtrip:1")
    fresh = make_isola(tmp_path / "fresh")
    fresh.load(out)
    assert fresh.inspect("roundtrip:1")[0]["Digest"] == box.isola.inspect("roundtrip:1")[0]["Digest"]
    assert fresh("run", "--rm", *NET, "roundtrip:1", "cat", "/kept", timeout=TIMEOUT).stdout == "kept\n"


def test_commit_keeps_a_device_node_and_refuses_an_unknown_container(box):
    """As docker commits it: the node is in the new image, and a container
    of that image cannot open it through its nodev root."""
    res = box.run("--name", "dev", *NET, "--cap-add", "MKNOD", IMAGE, "mknod", "/null2", "c", "1", "3")
    assert res.returncode == 0, describe(res)
    box.ok("commit", "dev", "withdev:1")
    res = box.run("--rm", *NET, "withdev:1", "sh", "-c", "ls -l /null2; echo x > /null2 && echo WROTE")
    assert res.stdout.startswith("c") and "WROTE" not in res.stdout, describe(res)
    before = box.isola.snapshot()
    res = box("commit", "nosuchcontainer")
    assert res.returncode == 125, describe(res)
    box.isola.assert_unchanged(before)


def test_commit_of_a_userns_container_writes_container_owners(userns_box):
    box = userns_box
    res = box.run("--name", "u", "--userns=auto", *NET, IMAGE, "sh", "-c", "echo x > /owned && chown 5:6 /owned")
    assert res.returncode == 0, describe(res)
    box.ok("commit", "u", "userns:1")
    assert committed_run(box, "userns:1", "stat -c '%u:%g' /owned; stat -c '%u:%g' /bin/busybox") == "5:6\n0:0\n"


def test_commit_of_a_vm_container(box):
    """A VM's root is a 9p share of the host's overlay mount: its changes are
    in the same upper directory on the host."""
    res = box("run", "--name", "vm", "--isolation=vm", *NET, IMAGE, "sh", "-c",
              "echo from the vm > /vmfile && rm /etc/group", timeout=240)
    assert res.returncode == 0, describe(res)
    box.ok("commit", "vm", "fromvm:1")
    assert committed_run(box, "fromvm:1", "cat /vmfile; test -e /etc/group || echo gone") == "from the vm\ngone\n"
