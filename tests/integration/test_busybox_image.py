"""scripts/make-busybox-image builds a valid, reproducible OCI layout that
isola loads and that runs."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import imagegen as g
from checks import assert_dir, assert_file, assert_symlink, tree_state

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make-busybox-image"


def layer_tar(layout):
    _, [(manifest, _)] = g.verify_oci_layout(layout)
    blob = (layout / g.blob_path(manifest["layers"][0]["digest"])).read_bytes()
    return tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)))


def test_layout_is_valid(busybox_layout):
    index, [(manifest, config)] = g.verify_oci_layout(busybox_layout)
    assert index["manifests"][0]["annotations"] == {g.REF_NAME: "busybox:latest"}
    assert manifest["mediaType"] == g.MT_MANIFEST
    assert [l["mediaType"] for l in manifest["layers"]] == [g.MT_LAYER["gzip"]]
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["created"]
    assert config["config"] == {
        "Cmd": ["sh"], "WorkingDir": "/",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    assert len(config["history"]) == 1


def test_layer_contents(busybox_layout):
    with layer_tar(busybox_layout) as tar:
        members = {m.name: m for m in tar.getmembers()}
    names = [m.name for m in members.values()]
    assert names == sorted(names)
    busybox = members["bin/busybox"]
    assert busybox.isfile() and busybox.mode == 0o755
    assert busybox.size == os.path.getsize("/bin/busybox")
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True,
                             text=True, check=True).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        m = members[applet]
        assert m.issym() and m.linkname == "/bin/busybox", applet
    assert members["bin/sh"].issym()
    for d in ("bin", "dev", "etc", "home", "proc", "sys", "usr/bin", "usr/sbin", "sbin", "var"):
        assert members[d].isdir(), d
    assert members["root"].mode == 0o700
    assert members["tmp"].mode == 0o1777
    assert "etc/hostname" not in members and "etc/hosts" not in members
    assert "etc/resolv.conf" not in members
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert len({m.mtime for m in members.values()}) == 1


def test_passwd_and_group(busybox_layout):
    with layer_tar(busybox_layout) as tar:
        passwd = tar.extractfile("etc/passwd").read().decode().splitlines()
        group = tar.extractfile("etc/group").read().decode().splitlines()
    assert "root:x:0:0:root:/root:/bin/sh" in passwd
    assert "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" in passwd
    assert any(line.startswith("daemon:x:1:1:") for line in passwd)
    groups = {line.split(":")[0]: line.split(":")[2] for line in group}
    assert groups["root"] == "0" and groups["tty"] == "5" and groups["nogroup"] == "65534"


def test_reproducible_and_replaces_outdir(busybox_layout, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "stale").write_text("left from an earlier run")
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True)
    assert not (out / "stale").exists()
    assert not (tmp_path / "again.tmp").exists()
    state = {k: v[6] for k, v in tree_state(out).items()}
    assert state == {k: v[6] for k, v in tree_state(busybox_layout).items()}


def test_busybox_loads_and_runs(isola, busybox_layout):
    assert isola.load(busybox_layout) == ["Loaded image: busybox:latest"]
    info = isola.inspect("busybox")[0]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    index = json.loads((busybox_layout / "index.json").read_text())
    manifest = json.loads((busybox_layout / g.blob_path(index["manifests"][0]["digest"])).read_bytes())
    assert info["Id"] == manifest["config"]["digest"]

    mnt = isola.mount("busybox:latest")
    assert_symlink(mnt, "bin/sh", "/bin/busybox")
    assert_file(mnt, "bin/busybox", open("/bin/busybox", "rb").read(), mode=0o755)
    assert_dir(mnt, "tmp", mode=0o1777)
    assert_dir(mnt, "root", mode=0o700)
    res = subprocess.run(["chroot", str(mnt), "/bin/sh", "-c", "echo hello from $(id -un)"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == "hello from root\n", res
