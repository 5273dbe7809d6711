#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers into fuzz/corpus/<name>/.

Usage: fuzz/make_corpus.py

Deterministic (fixed mtimes, sorted keys, gzip without name or time), so
rerunning it changes nothing unless this file changed. The image seeds
use the manifest and config that scripts/make-busybox-image writes, with a
tiny layer in place of busybox; the spec seeds start from the config.json
of `isola-runtime spec` (fuzz/corpus/spec/runtime-spec.json, copied from
its output). Inputs that must be refused (path escapes, bad frames) are
seeds too: they lead the fuzzer to the checks.
"""

import gzip
import io
import json
import os
import struct
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
MTIME = 1778186025  # make-busybox-image's fixed time


def put(name, file, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, file), "wb") as f:
        f.write(data)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ---- tars ------------------------------------------------------------------

def tar(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, type, extra) with type in dir/file/symlink/link/fifo/char."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            data = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, extra.get("mode", 0o755)
            elif kind == "file":
                data = extra.get("data", b"")
                info.size, info.mode = len(data), extra.get("mode", 0o644)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, extra["target"], 0o777
            elif kind == "link":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, extra["target"], 0o644
            elif kind == "fifo":
                info.type, info.mode = tarfile.FIFOTYPE, 0o600
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, extra["major"], extra["minor"]
            if "uid" in extra:
                info.uid = extra["uid"]
            if "pax" in extra:
                info.pax_headers = extra["pax"]
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    # tarfile pads to 10 KiB records; keep only the two end-of-archive blocks.
    out = buf.getvalue().rstrip(b"\0")
    return out + b"\0" * (-len(out) % 512 + 1024)


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as g:
        g.write(data)
    return buf.getvalue()


def zst(data):
    try:
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


SMALL_LAYER = tar([
    ("bin", "dir", {}),
    ("bin/busybox", "file", {"data": b"#!/bin/sh\necho hi\n", "mode": 0o755}),
    ("bin/sh", "symlink", {"target": "busybox"}),
    ("bin/ls", "link", {"target": "bin/busybox"}),
    ("etc", "dir", {}),
    ("etc/passwd", "file", {"data": b"root:x:0:0:root:/root:/bin/sh\n"}),
    ("tmp", "dir", {"mode": 0o1777}),
    ("usr/bin/su", "file", {"data": b"su", "mode": 0o4755,
                            "pax": {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}}),
    ("var/.wh.cache", "file", {}),
    ("opt/.wh..wh..opq", "file", {}),
    ("run/fifo", "fifo", {}),
    ("home/user", "dir", {"uid": 1000}),
])


def layer_seeds():
    put("layer", "small.tar", SMALL_LAYER)
    put("layer", "small.tar.gz", gz(SMALL_LAYER))
    z = zst(SMALL_LAYER)
    if z:
        put("layer", "small.tar.zst", z)
    put("layer", "gnu.tar", tar([("a", "dir", {}), ("a/" + "x" * 120, "file", {"data": b"long"})], tarfile.GNU_FORMAT))
    put("layer", "replace.tar", tar([
        ("d", "dir", {}), ("d/f", "file", {"data": b"1"}), ("d", "file", {"data": b"now a file"}),
        ("d", "dir", {}), ("d/f", "symlink", {"target": "/etc/shadow"})]))
    # Refused: the checks that keep a layer inside its directory.
    put("layer", "escape-dotdot.tar", tar([("../escaped", "file", {"data": b"x"})]))
    put("layer", "escape-deep.tar", tar([("a/../../../../../canary", "file", {"data": b"x"})]))
    put("layer", "escape-absolute.tar", tar([("/canary", "file", {"data": b"x"})]))
    put("layer", "escape-symlink.tar", tar([
        ("up", "symlink", {"target": "../../../../.."}), ("up/canary", "file", {"data": b"x"})]))
    put("layer", "escape-symlink-dir.tar", tar([
        ("d", "symlink", {"target": "/"}), ("d/tmp/x", "file", {"data": b"x"})]))
    put("layer", "escape-hardlink.tar", tar([("h", "link", {"target": "../../../../../canary"})]))
    put("layer", "hardlink-through-symlink.tar", tar([
        ("s", "symlink", {"target": "../../../../.."}), ("h", "link", {"target": "s/canary"})]))
    put("layer", "device.tar", tar([("dev/null", "char", {"major": 1, "minor": 3})]))
    put("layer", "empty.tar", b"\0" * 1024)


def archive_seeds():
    index = {"manifests": [], "schemaVersion": 2}
    put("archive", "oci-layout.tar", tar([
        ("oci-layout", "file", {"data": b'{"imageLayoutVersion":"1.0.0"}'}),
        ("index.json", "file", {"data": dumps(index).encode()}),
        ("blobs", "dir", {}), ("blobs/sha256", "dir", {}),
        ("blobs/sha256/" + "a" * 64, "file", {"data": b"{}"}),
        ("blobs/sha256/" + "b" * 64, "file", {"data": SMALL_LAYER[:1024], "mode": 0o755})]))
    put("archive", "docker-save.tar", tar([
        ("manifest.json", "file", {"data": b'[{"Config":"c.json","Layers":["l/layer.tar"]}]'}),
        ("c.json", "file", {"data": b"{}"}),
        ("l", "dir", {}), ("l/layer.tar", "file", {"data": SMALL_LAYER[:2048]}),
        ("l2", "dir", {}), ("l2/layer.tar", "symlink", {"target": "../l/layer.tar"}),
        ("l3.tar", "symlink", {"target": "/l/layer.tar"}),
        ("hard.tar", "link", {"target": "l/layer.tar"})]))
    put("archive", "docker-save.tar.gz", gz(open(os.path.join(CORPUS, "archive", "docker-save.tar"), "rb").read()))
    put("archive", "escape-symlink.tar", tar([("s", "symlink", {"target": "../../x"})]))
    put("archive", "symlink-loop.tar", tar([("a", "symlink", {"target": "b"}), ("b", "symlink", {"target": "a"})]))
    put("archive", "through-symlink.tar", tar([("d", "symlink", {"target": "e"}), ("e", "dir", {}),
                                               ("d/f", "file", {"data": b"x"})]))


# ---- images ----------------------------------------------------------------

# scripts/make-busybox-image's documents, with "@N" for the digests the
# harness computes (see image_fuzz.cc).
CONFIG = {"architecture": "amd64",
          "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                     "WorkingDir": "/"},
          "created": "2026-05-07T20:33:45Z",
          "history": [{"created": "2026-05-07T20:33:45Z", "created_by": "make-busybox-image"}],
          "os": "linux", "rootfs": {"diff_ids": ["sha256:@3"], "type": "layers"}}
SEP = b"\n===\n"


def image(*sections):
    return SEP.join(s if isinstance(s, bytes) else s.encode() for s in sections)


def image_seeds():
    layer = tar([("bin", "dir", {}), ("bin/sh", "file", {"data": b"sh", "mode": 0o755}),
                 ("etc/.wh.gone", "file", {})])
    index = {"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "busybox:latest"},
                            "digest": "sha256:@1", "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "size": 405}],
             "mediaType": "application/vnd.oci.image.index.v1+json", "schemaVersion": 2}
    manifest = {"config": {"digest": "sha256:@2", "mediaType": "application/vnd.oci.image.config.v1+json",
                           "size": 449},
                "layers": [{"digest": "sha256:@3", "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "size": len(layer)}],
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "schemaVersion": 2}
    put("image", "oci-busybox", image(dumps(index), dumps(manifest), dumps(CONFIG), layer))

    # index.json -> image index (linux/amd64 among others) -> manifest.
    top = {"manifests": [{"digest": "sha256:@1", "mediaType": "application/vnd.oci.image.index.v1+json",
                          "annotations": {"io.containerd.image.name": "docker.io/library/busybox:1.36"}}],
           "schemaVersion": 2}
    nested = {"manifests": [
        {"digest": "sha256:" + "0" * 64, "platform": {"architecture": "arm64", "os": "linux"}},
        {"digest": "sha256:@2", "platform": {"architecture": "amd64", "os": "linux"}}],
        "mediaType": "application/vnd.oci.image.index.v1+json", "schemaVersion": 2}
    manifest2 = dict(manifest, config=dict(manifest["config"], digest="sha256:@3"),
                     layers=[dict(manifest["layers"][0], digest="sha256:@4")])
    config2 = dict(CONFIG, rootfs={"diff_ids": ["sha256:@4"], "type": "layers"})
    put("image", "oci-index", image(dumps(top), dumps(nested), dumps(manifest2), dumps(config2), layer))

    # docker save, legacy: <hex>.json config and <id>/layer.tar (here a blob path).
    config1 = dict(CONFIG, rootfs={"diff_ids": ["sha256:@2"], "type": "layers"})
    legacy = [{"Config": "@1.json", "RepoTags": ["busybox:latest", "localhost:5000/tools/bb:1"],
               "Layers": ["blobs/sha256/@2"]}]
    put("image", "docker-save", image(dumps(legacy), dumps(config1), layer))
    # docker 25: everything under blobs/.
    modern = [{"Config": "blobs/sha256/@1", "RepoTags": ["busybox:latest"], "Layers": ["blobs/sha256/@2"]}]
    put("image", "docker-save-25", image(dumps(modern), dumps(config1), layer))
    # Refused: a layer path out of the directory, a config that is not its digest.
    bad = [{"Config": "@1.json", "Layers": ["../../canary"]}]
    put("image", "docker-escape", image(dumps(bad), dumps(dict(CONFIG, rootfs={"diff_ids": ["sha256:" + "1" * 64]}))))


def reference_seeds():
    for i, ref in enumerate(["busybox", "busybox:latest", "docker.io/library/busybox:1.36",
                             "index.docker.io/library/alpine", "localhost:5000/tools/bb:v1.2_3",
                             "quay.io/podman/stable", "registry.example.com:443/a/b/c:tag-1",
                             "library/busybox", "sha256:" + "e1abe0ad734c41c7c73461089af47855bb62bf84d93c3379275da770cd29639d",
                             "a" * 250, "UPPER/case", "busybox@sha256:" + "0" * 64]):
        put("reference", "ref%02d" % i, ref)


# ---- protocols -------------------------------------------------------------

def agent_frame(kind, stream, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack("<BII", kind, stream, len(payload)) + payload


def monitor_frame(kind, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack("<BI", kind, len(payload)) + payload


def runtime_spec():
    with open(os.path.join(CORPUS, "spec", "runtime-spec.json")) as f:
        return json.load(f)


def protocol_seeds():
    spec = runtime_spec()
    spec["root"] = {"path": "/run/isola/rootfs"}
    create = {"spec": spec, "shares": [{"tag": "rootfs", "path": "/run/isola/rootfs"},
                                       {"tag": "v0", "path": "/run/isola/v0"}],
              "tty": True, "interactive": True, "rows": 40, "cols": 120, "realtime_ns": 1778186025000000000,
              "id": "c1"}
    process = {"args": ["sh", "-c", "echo hi"], "env": ["A=b"], "cwd": "/tmp", "terminal": False,
               "user": {"uid": 1000, "gid": 1000, "additionalGids": [10]}}
    session = (agent_frame(2, 1, dumps(create)) + agent_frame(5, 1, "ls\n") + agent_frame(9, 1, '{"rows":50,"cols":200}')
               + agent_frame(6, 1, "") + agent_frame(3, 2, dumps({"process": process, "interactive": True}))
               + agent_frame(10, 2, '{"signal":15}') + agent_frame(12, 0, "{}") + agent_frame(14, 0, ""))
    put("agent_protocol", "session", session)
    put("agent_protocol", "create", agent_frame(2, 1, dumps(create)))
    put("agent_protocol", "exec", agent_frame(3, 7, dumps({"process": process, "rows": 0, "cols": 90})))
    put("agent_protocol", "agent-side", agent_frame(1, 0, '{"version":1,"kernel":"6.1.0-28-amd64"}')
        + agent_frame(4, 1, '{"pid":1,"boottime_ms":5}') + agent_frame(7, 1, "hi\n")
        + agent_frame(11, 1, '{"exit_code":0,"oom_killed":false}')
        + agent_frame(15, 3, '{"errno":2,"op":"exec","message":"no such file"}'))
    put("agent_protocol", "wrong-stream", agent_frame(2, 0, "{}") + agent_frame(10, 0, '{"signal":9}'))
    put("agent_protocol", "bad-type", agent_frame(99, 1, ""))
    put("agent_protocol", "wake", agent_frame(16, 0, dumps({"entropy": "5a" * 64, "realtime_ns": 1796593263000000000,
                                                             "boot_id": "0123abcd-4567-49ab-8def-0123456789ab"})))
    seccomp_create = dict(create, spec=dict(spec, linux=dict(spec.get("linux", {}),
                                                               seccomp={"defaultAction": "SCMP_ACT_ALLOW"})))
    seccomp_create["seccomp_bpf"] = "0600000000000000" + "06000000ffff0000"
    put("agent_protocol", "create-seccomp", agent_frame(2, 1, dumps(seccomp_create)))
    put("agent_protocol", "too-large", struct.pack("<BII", 5, 1, (1 << 20) + 1))
    put("agent_protocol", "partial", agent_frame(9, 1, '{"rows":24,"cols":80}')[:12])

    put("monitor_protocol", "attach", monitor_frame(1, '{"op":"attach","stdin":true,"rows":24,"cols":80}')
        + monitor_frame(2, "echo hi\n") + monitor_frame(6, '{"rows":30,"cols":100}') + monitor_frame(3, ""))
    put("monitor_protocol", "exec", monitor_frame(1, dumps({"op": "exec", "process": process})))
    put("monitor_protocol", "replies", monitor_frame(9, "") + monitor_frame(4, "out") + monitor_frame(5, "err")
        + monitor_frame(7, '{"exit_code":0,"error":""}') + monitor_frame(10, '{"titles":["PID"],"processes":[["1"]]}'))
    put("monitor_protocol", "signal-ps", monitor_frame(1, '{"op":"signal","signal":15}') + monitor_frame(1, '{"op":"ps"}'))
    put("monitor_protocol", "bad", monitor_frame(0, "") + monitor_frame(11, "x"))
    put("monitor_protocol", "too-large", struct.pack("<BI", 2, (1 << 20) + 1))


# ---- specs, profiles, bundles ------------------------------------------------

SECCOMP_DOCKER = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["accept", "read", "write", "close", "exit_group", "futex", "mmap"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["bpf", "mount", "umount2"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["kill"], "action": "SCMP_ACT_LOG"},
        {"name": "socket", "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
    ]}
SECCOMP_OCI = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                            {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                            {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
                            {"names": ["write"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                                      {"index": 0, "value": 100, "op": "SCMP_CMP_LT"}]}]}


def spec_seeds():
    spec = runtime_spec()
    full = json.loads(json.dumps(spec))
    full["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 10], "umask": 18}
    full["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    full["process"]["oomScoreAdj"] = 100
    full["process"]["consoleSize"] = {"height": 24, "width": 80}
    full["mounts"] = full.get("mounts", []) + [
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]}]
    full["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    full["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    full["linux"]["namespaces"].append({"type": "user"})
    full["linux"]["resources"] = {
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": 100},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                        "access": "rw"}]}
    full["linux"]["cgroupsPath"] = "isola/c1"
    full["linux"]["seccomp"] = SECCOMP_OCI
    full["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    full["annotations"] = {"io.isola.isolation": "vm"}
    put("spec", "full.json", json.dumps(full, indent=1, sort_keys=True))
    put("spec", "process.json", dumps({"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "terminal": True,
                                       "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
                                       "noNewPrivileges": True}))

    put("seccomp", "docker.json", json.dumps(SECCOMP_DOCKER, indent=1))
    put("seccomp", "oci.json", dumps(SECCOMP_OCI))

    bundle = json.loads(json.dumps(spec))
    bundle["hooks"] = {
        "prestart": [{"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "arg1"], "env": ["key1=value1"]}],
        "createRuntime": [{"path": "/usr/bin/setup-network", "timeout": 5}],
        "poststart": [{"path": "/usr/bin/notify-start", "timeout": 100000}],
        "poststop": [{"path": "/usr/sbin/cleanup.sh", "args": ["cleanup.sh", "-f"]}]}
    bundle["linux"]["cgroupsPath"] = "machine.slice:libpod:0123abcd"
    bundle["linux"]["rootfsPropagation"] = "rprivate"
    bundle["annotations"] = {"io.isola.isolation": "process", "org.opencontainers.image.os": "linux"}
    put("bundle", "hooks.json", json.dumps(bundle, indent=1, sort_keys=True))
    put("bundle", "runtime-spec.json", json.dumps(spec, indent=1, sort_keys=True))
    refused = json.loads(json.dumps(spec))
    refused["linux"]["intelRdt"] = {"closID": "x"}
    refused["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    put("bundle", "refused.json", dumps(refused))


def main():
    layer_seeds()
    archive_seeds()
    image_seeds()
    reference_seeds()
    protocol_seeds()
    spec_seeds()


if __name__ == "__main__":
    main()
