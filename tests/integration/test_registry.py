"""isola pull, push, login and logout against Debian's docker-registry on
127.0.0.1 (plain HTTP, HTTPS with a certificate made here, token and basic
authentication), with skopeo as the other client. Nothing outside this
machine is contacted."""

import json
import os
import shutil
import signal
import stat
import time

import pytest

import imagegen as ig
from conftest import StoreSnapshot
from registries import Proxy, Registry, TokenServer, push_layout, skopeo, write_layout


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def busybox_image(busybox_layout):
    """(config digest, manifest digest, layer digests) of the embedded busybox layout."""
    index = json.loads((busybox_layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((busybox_layout / "blobs/sha256" / manifest_digest[7:]).read_text())
    return manifest["config"]["digest"], manifest_digest, [l["digest"] for l in manifest["layers"]]


def image_ids(isola):
    return {i["Id"] for i in json.loads(isola("images", "--format", "json").stdout)}


def assert_nothing_stored(isola, before):
    assert StoreSnapshot(isola) == before
    assert not [p for p in os.listdir(isola.root / "downloads")] if (isola.root / "downloads").exists() else True
    assert not [p for p in os.listdir(isola.root / "tmp") if p.startswith("load-")]


def test_pull_by_tag_then_run(isola, registry, busybox_layout, busybox_image):
    push_layout(busybox_layout, f"{registry.host}/tools/busybox:1.36")
    res = isola("pull", f"{registry.host}/tools/busybox:1.36")
    config_digest, manifest_digest, layers = busybox_image
    # Not a terminal: plain lines, one per step of each layer.
    assert f"{layers[0][7:19]}: Pull complete" in res.stdout
    assert f"Digest: {manifest_digest}" in res.stdout
    image = json.loads(isola("image", "inspect", f"{registry.host}/tools/busybox:1.36").stdout)[0]
    assert image["Id"] == config_digest
    assert image["Digest"] == manifest_digest
    run = isola("run", "--rm", "--network", "none", f"{registry.host}/tools/busybox:1.36", "echo", "pulled")
    assert run.stdout == "pulled\n"


def test_pull_again_fetches_no_layer(isola, registry, busybox_layout, busybox_image):
    push_layout(busybox_layout, f"{registry.host}/busybox:latest")
    push_layout(busybox_layout, f"{registry.host}/other:v2")
    proxy = Proxy(registry.host)
    try:
        isola("pull", f"{proxy.host}/busybox")
        _, _, layers = busybox_image
        assert len(proxy.blob_requests(layers[0])) == 1
        res = isola("pull", f"{proxy.host}/other:v2")
        assert f"{layers[0][7:19]}: Already exists" in res.stdout
        assert len(proxy.blob_requests(layers[0])) == 1, "a layer the store holds was downloaded again"
        assert len(image_ids(isola)) == 1
    finally:
        proxy.stop()


def test_pull_by_digest(isola, registry, busybox_layout, busybox_image):
    config_digest, manifest_digest, _ = busybox_image
    push_layout(busybox_layout, f"{registry.host}/busybox:latest")
    res = isola("pull", "-q", f"{registry.host}/busybox@{manifest_digest}")
    assert res.stdout.strip() == config_digest
    rows = json.loads(isola("images", "--format", "json").stdout)
    assert [(r["Repository"], r["Tag"], r["Id"]) for r in rows] == [("<none>", "<none>", config_digest)]
    wrong = "sha256:" + "0" * 64
    err = isola.fail("pull", f"{registry.host}/busybox@{wrong}").stderr
    assert "manifest unknown" in err and wrong in err


def test_pull_image_index_picks_linux_amd64(isola, registry, busybox_layout, busybox_image, tmp_path):
    arm = ig.Image([ig.Layer([ig.File("arch", b"arm64\n")])], architecture="arm64")
    layout = write_layout(ig.oci_layout([arm]), tmp_path / "multi")
    for blob in (busybox_layout / "blobs/sha256").iterdir():
        shutil.copy(blob, layout / "blobs/sha256" / blob.name)
    config_digest, manifest_digest, _ = busybox_image
    amd_desc = json.loads((busybox_layout / "index.json").read_text())["manifests"][0]
    amd_desc = {k: amd_desc[k] for k in ("mediaType", "digest", "size")}
    index = ig.canonical_json({"schemaVersion": 2, "mediaType": ig.MT_INDEX, "manifests": [
        dict(arm.manifest_descriptor(), platform={"os": "linux", "architecture": "arm64"}),
        dict(amd_desc, platform={"os": "linux", "architecture": "amd64"})]})
    (layout / "blobs/sha256" / ig.hex_of(ig.digest_of(index))).write_bytes(index)
    (layout / "index.json").write_bytes(ig.canonical_json({"schemaVersion": 2, "manifests": [
        {"mediaType": ig.MT_INDEX, "digest": ig.digest_of(index), "size": len(index)}]}))
    push_layout(layout, f"{registry.host}/multi:latest")

    assert isola("pull", "-q", f"{registry.host}/multi").stdout.strip() == config_digest
    image = json.loads(isola("image", "inspect", f"{registry.host}/multi").stdout)[0]
    assert image["Architecture"] == "amd64" and image["Digest"] == manifest_digest


def test_pull_errors_name_the_problem(isola, registry):
    err = isola.fail("pull", f"{registry.host}/nothing:here").stderr
    assert "manifest unknown" in err and f"{registry.host}/nothing" in err
    err = isola.fail("pull", "127.0.0.1:1/busybox").stderr
    assert "127.0.0.1:1" in err
    err = isola.fail("pull", "Bad_Name").stderr
    assert "invalid repository name" in err


def test_https_registry_needs_trust(isola, tmp_path, busybox_layout, busybox_image):
    reg = Registry(tmp_path / "tls-registry", tls=True)
    try:
        push_layout(busybox_layout, f"{reg.host}/busybox:latest")
        err = isola.fail("pull", f"{reg.host}/busybox").stderr
        assert "certificate" in err and "--tls-verify=false" in err
        assert not image_ids(isola)
        isola("pull", "--tls-verify=false", f"{reg.host}/busybox")
        isola("rmi", f"{reg.host}/busybox")
        certs = tmp_path / "certs"
        certs.mkdir()
        shutil.copy(reg.ca, certs / "ca.crt")
        isola("pull", "--cert-dir", certs, f"{reg.host}/busybox")
        assert image_ids(isola) == {busybox_image[0]}
    finally:
        reg.stop()


@pytest.fixture
def token_registry(tmp_path, busybox_layout):
    token = TokenServer(tmp_path / "token", "alice", "s3cret-pw")
    reg = Registry(tmp_path / "auth-registry", token=token)
    push_layout(busybox_layout, f"{reg.host}/private/busybox:latest", "--dest-creds", "alice:s3cret-pw")
    yield reg, token
    reg.stop()
    token.stop()


def test_token_auth_refuses_without_login(isola, token_registry):
    reg, _ = token_registry
    before = StoreSnapshot(isola)
    err = isola.fail("pull", f"{reg.host}/private/busybox").stderr
    assert f"isola login {reg.host}" in err
    err = isola.fail("pull", "--creds", "alice:wrong", f"{reg.host}/private/busybox").stderr
    assert "refused the credentials for user 'alice'" in err
    assert "wrong" not in err
    err = isola.fail("login", "-u", "alice", "--password-stdin", reg.host, input="nope\n").stderr
    assert "refused" in err and "nope" not in err
    assert not (isola.root / "auth.json").exists()
    assert StoreSnapshot(isola) == before


def test_login_pull_logout(isola, token_registry, busybox_image):
    reg, token = token_registry
    res = isola("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret-pw\n")
    assert res.stdout == "Login Succeeded\n" and "s3cret" not in res.stderr
    auth = isola.root / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert "s3cret-pw" not in auth.read_text()  # encoded, as docker's config.json
    res = isola("pull", f"{reg.host}/private/busybox")
    assert "s3cret" not in res.stdout + res.stderr
    assert image_ids(isola) == {busybox_image[0]}
    assert any("scope=repository%3Aprivate%2Fbusybox%3Apull" in r for r in token.requests)
    assert isola("logout", reg.host).stdout == f"Removed login credentials for {reg.host}\n"
    isola("rmi", f"{reg.host}/private/busybox")
    isola.fail("pull", f"{reg.host}/private/busybox")
    assert "not logged in" in isola.fail("logout", reg.host).stderr


def test_basic_auth_registry(isola, tmp_path, busybox_layout, busybox_image):
    reg = Registry(tmp_path / "basic-registry", htpasswd=("bob", "hunter22"))
    try:
        push_layout(busybox_layout, f"{reg.host}/busybox:latest", "--dest-creds", "bob:hunter22")
        err = isola.fail("pull", f"{reg.host}/busybox").stderr
        assert f"isola login {reg.host}" in err
        isola("login", "-u", "bob", "-p", "hunter22", reg.host)
        isola("pull", f"{reg.host}/busybox")
        assert image_ids(isola) == {busybox_image[0]}
    finally:
        reg.stop()


def test_push_round_trip(isola, registry, busybox_layout, busybox_image, tmp_path):
    config_digest, manifest_digest, _ = busybox_image
    isola.load(busybox_layout)
    isola("tag", "busybox", f"{registry.host}/team/box:v1")
    res = isola("push", f"{registry.host}/team/box:v1")
    assert f"Digest: {manifest_digest}" in res.stdout
    # skopeo reads back the same manifest and config.
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/team/box:v1").stdout)
    assert info["Digest"] == manifest_digest
    out = tmp_path / "readback"
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/team/box:v1", f"oci:{out}")
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert manifest["config"]["digest"] == config_digest
    # A second push sends no blob again; push to another name with DESTINATION.
    res = isola("push", "busybox", f"{registry.host}/team/copy:v2")
    assert res.stdout.count("Already exists") == 0  # other repository: the registry wants them again
    res = isola("push", f"{registry.host}/team/box:v1")
    assert "Already exists" in res.stdout and "Pushed" not in res.stdout
    # And isola pulls it into a fresh store.
    fresh = type(isola)(tmp_path / "fresh")
    assert fresh("pull", "-q", f"{registry.host}/team/copy:v2").stdout.strip() == config_digest


def test_push_needs_credentials(isola, token_registry, busybox_layout):
    reg, _ = token_registry
    isola.load(busybox_layout)
    err = isola.fail("push", "busybox", f"{reg.host}/private/mine:v1").stderr
    assert f"isola login {reg.host}" in err
    isola("push", "--creds", "alice:s3cret-pw", "busybox", f"{reg.host}/private/mine:v1")
    skopeo("inspect", "--tls-verify=false", "--creds", "alice:s3cret-pw", f"docker://{reg.host}/private/mine:v1")


@pytest.mark.parametrize("what", ["layer", "config"])
def test_corrupted_blob_is_refused(isola, registry, busybox_layout, busybox_image, what):
    config_digest, _, layers = busybox_image
    push_layout(busybox_layout, f"{registry.host}/busybox:latest")
    proxy = Proxy(registry.host)
    try:
        proxy.corrupt.add(layers[0] if what == "layer" else config_digest)
        before = StoreSnapshot(isola)
        err = isola.fail("pull", f"{proxy.host}/busybox").stderr
        assert "does not match its digest" in err and "nothing was stored" in err
        assert_nothing_stored(isola, before)
        proxy.corrupt.clear()
        isola("pull", f"{proxy.host}/busybox")
        assert image_ids(isola) == {config_digest}
    finally:
        proxy.stop()


@pytest.mark.parametrize("registry_does_range", [True, False])
def test_interrupted_pull_resumes(isola, registry, tmp_path, registry_does_range):
    """A pull killed mid-layer leaves a partial file (which system prune
    reclaims); the next pull asks for the rest with Range, or, from a
    registry that ignores Range, starts the layer over."""
    big = ig.Image([ig.Layer([ig.File("big.bin", os.urandom(4 << 20))])], config={"Cmd": ["true"]})
    write_layout(ig.oci_layout([big]), tmp_path / "big")
    push_layout(tmp_path / "big", f"{registry.host}/big:latest")
    layer = big.layers[0].digest
    size = len(big.layers[0].blob)
    proxy = Proxy(registry.host)
    partial = isola.root / "downloads" / (ig.hex_of(layer) + ".partial")

    def interrupted_pull():
        pull = isola.popen("pull", f"{proxy.host}/big")
        deadline = time.time() + 60
        while time.time() < deadline:
            if partial.exists() and partial.stat().st_size > size // 4:
                break
            assert pull.poll() is None, pull.communicate()
            time.sleep(0.05)
        pull.send_signal(signal.SIGKILL)
        pull.wait()
        return partial.stat().st_size

    try:
        proxy.rate = 512 << 10  # 8 s for the layer
        # What an interrupted pull leaves is reclaimable.
        interrupted_pull()
        res = isola("system", "prune", "-f")
        assert "Deleted Partial Downloads" in res.stdout and ig.hex_of(layer)[:12] in res.stdout
        assert not partial.exists()
        have = interrupted_pull()
        assert 0 < have < size
        proxy.rate = None
        proxy.ignore_range = not registry_does_range
        isola("pull", f"{proxy.host}/big")
        second = proxy.blob_requests(layer)[-1]
        assert second[2] == f"bytes={have}-", f"the second pull did not resume: {second}"
        if registry_does_range:
            assert second[3] == 206 and second[4] == size - have
        else:
            assert second[3] == 200 and second[4] == size
        assert image_ids(isola) == {big.id}
        assert not partial.exists()
    finally:
        proxy.stop()


def test_run_pulls_a_missing_image(isola, registry, busybox_layout, busybox_image):
    push_layout(busybox_layout, f"{registry.host}/busybox:latest")
    name = f"{registry.host}/busybox"
    res = isola.fail("run", "--rm", "--pull", "never", "--network", "none", name, "true")
    assert "not found locally" in res.stderr
    res = isola("run", "--rm", "--network", "none", name, "echo", "ran")
    assert res.stdout == "ran\n"
    assert f"Unable to find image '{name}' locally" in res.stderr
    assert image_ids(isola) == {busybox_image[0]}
    # Present now: no second pull.
    res = isola("run", "--rm", "--network", "none", name, "true")
    assert "Unable to find" not in res.stderr
    res = isola("run", "--rm", "--network", "none", "127.0.0.1:1/nothing", "true", check=False)
    assert res.returncode == 125
    assert "isola: image '127.0.0.1:1/nothing' is not stored locally and pulling it failed" in res.stderr


def test_progress_bars_on_a_terminal(isola, registry, busybox_layout):
    import pty
    import subprocess
    push_layout(busybox_layout, f"{registry.host}/busybox:latest")
    proxy = Proxy(registry.host)
    try:
        proxy.rate = 400 << 10  # about 2.5 s for the layer: several redraws
        master, slave = pty.openpty()
        proc = subprocess.Popen([isola.bin, "--root", str(isola.root), "pull", f"{proxy.host}/busybox"],
                                stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0, out
        os.close(master)
        text = out.decode()
        assert "\x1b[1A\x1b[2K" in text, "no line redrawn in place"
        assert "Downloading [===" in text and "/1.03MB" in text and "B/s" in text
        assert text.rstrip().splitlines()[-1].startswith("Image: ")
        # --quiet prints the ID alone, on a terminal too.
        isola("rmi", f"{proxy.host}/busybox")
        proxy.rate = None
        res = isola("pull", "-q", f"{proxy.host}/busybox")
        assert res.stdout.startswith("sha256:") and len(res.stdout.split()) == 1
    finally:
        proxy.stop()


def test_docker_media_types_and_vm_isolation(isola, registry, busybox_layout, busybox_image):
    """A docker v2 schema 2 manifest pulls as well as an OCI one, and the
    pulled image runs with either isolation level."""
    push_layout(busybox_layout, f"{registry.host}/dockerfmt:v1", "--format", "v2s2")
    info = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                             f"docker://{registry.host}/dockerfmt:v1").stdout)
    assert info["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    remote_digest = json.loads(skopeo("inspect", "--tls-verify=false",
                                      f"docker://{registry.host}/dockerfmt:v1").stdout)["Digest"]
    isola("pull", f"{registry.host}/dockerfmt:v1")
    image = json.loads(isola("image", "inspect", f"{registry.host}/dockerfmt:v1").stdout)[0]
    assert image["Id"] == busybox_image[0]
    assert image["Digest"] == remote_digest
    for level in ("process", "vm"):
        res = isola("run", "--rm", "--network", "none", "--isolation", level, f"{registry.host}/dockerfmt:v1",
                    "echo", level, timeout=300)
        assert res.stdout == level + "\n"
