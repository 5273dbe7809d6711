"""Build test images, well-formed or deliberately broken, in every format
`isola load` accepts.

An image is a list of Layers, each a list of tar Entries. The writers turn
images into a mapping {archive path: bytes} for one of four formats:

    oci_layout(images)     OCI image layout (oci-layout, index.json, blobs/)
    docker_legacy(images)  `docker save` before docker 25 (manifest.json,
                           <id>/layer.tar, <id>/json, <id>/VERSION, repositories)
    docker_new(images)     `docker save` from docker 25 on: an OCI layout plus
                           a manifest.json whose paths point into blobs/sha256/

The mapping is plain data, so a test corrupts an archive by editing it
(replace a blob's bytes, delete a blob) before write_dir() or write_tar()
puts it on disk. Corruptions that must stay self-consistent up the chain
(a truncated layer whose digest is nonetheless right, a malformed config
whose digest matches) are made on the Layer or Image before writing:
set Layer.blob, Image.config_raw, Image.manifest_raw, or Image.diff_ids.
"""

import gzip
import hashlib
import io
import json
import os
import posixpath
import subprocess
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"

MTIME = 1_600_000_000  # 2020-09-13T12:26:40Z, a fixed time for every entry
CREATED = "2023-04-05T06:07:08Z"
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def digest_of(data):
    return "sha256:" + sha256_hex(data)


def hex_of(digest):
    """'sha256:abc…' -> 'abc…'"""
    return digest.split(":", 1)[1]


def blob_path(digest):
    return "blobs/sha256/" + hex_of(digest)


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------
# Tar entries


class Entry:
    """One tar member. kind is file, dir, symlink, hardlink, chardev,
    blockdev or fifo; linkname is the target of links."""

    def __init__(self, kind, path, *, data=b"", mode=0o644, uid=0, gid=0,
                 mtime=MTIME, linkname="", major=0, minor=0, pax=None):
        self.kind = kind
        self.path = path
        self.data = data if isinstance(data, bytes) else data.encode()
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.linkname = linkname
        self.major = major
        self.minor = minor
        self.pax = dict(pax or {})

    def __repr__(self):
        return f"Entry({self.kind} {self.path!r})"

    def tarinfo(self):
        types = {
            "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
            "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
            "chardev": tarfile.CHRTYPE, "blockdev": tarfile.BLKTYPE,
            "fifo": tarfile.FIFOTYPE,
        }
        info = tarfile.TarInfo(self.path)
        info.type = types[self.kind]
        info.mode = self.mode
        info.uid, info.gid = self.uid, self.gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        info.linkname = self.linkname
        info.devmajor, info.devminor = self.major, self.minor
        info.size = len(self.data) if self.kind == "file" else 0
        info.pax_headers = dict(self.pax)
        return info


def File(path, content=b"", mode=0o644, uid=0, gid=0, mtime=MTIME, pax=None):
    return Entry("file", path, data=content, mode=mode, uid=uid, gid=gid,
                 mtime=mtime, pax=pax)


def Dir(path, mode=0o755, uid=0, gid=0, mtime=MTIME):
    return Entry("dir", path, mode=mode, uid=uid, gid=gid, mtime=mtime)


def Symlink(path, target, uid=0, gid=0):
    return Entry("symlink", path, linkname=target, mode=0o777, uid=uid, gid=gid)


def Hardlink(path, target):
    return Entry("hardlink", path, linkname=target)


def CharDev(path, major, minor, mode=0o666):
    return Entry("chardev", path, major=major, minor=minor, mode=mode)


def BlockDev(path, major, minor, mode=0o660):
    return Entry("blockdev", path, major=major, minor=minor, mode=mode)


def Fifo(path, mode=0o644):
    return Entry("fifo", path, mode=mode)


def Whiteout(path):
    """Deletes `path` (file or directory) of the layers below."""
    parent, name = posixpath.split(path.rstrip("/"))
    return File(posixpath.join(parent, ".wh." + name))


def Opaque(dirpath):
    """Hides everything the layers below have in `dirpath`."""
    return File(posixpath.join(dirpath.rstrip("/"), ".wh..wh..opq"))


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for entry in entries:
            info = entry.tarinfo()
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buf.getvalue()


def compress(data, kind):
    if kind == "none":
        return data
    if kind == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        return buf.getvalue()
    if kind == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "--no-progress"], input=data,
                              check=True, capture_output=True).stdout
    raise ValueError(f"unknown compression {kind!r}")


# ---------------------------------------------------------------------------
# Layers and images


class Layer:
    """A layer: its uncompressed tar (`tar`, whose sha256 is the diff_id) and
    the blob stored in the archive (`blob`, whose sha256 is the digest).
    Assign `blob` to store something else under a self-consistent digest."""

    def __init__(self, entries=(), compression="gzip", *, tar=None):
        self.entries = list(entries)
        self.compression = compression
        self.tar = tar if tar is not None else tar_bytes(self.entries)
        self.blob = compress(self.tar, compression)

    @property
    def diff_id(self):
        return digest_of(self.tar)

    @property
    def digest(self):
        return digest_of(self.blob)

    @property
    def media_type(self):
        return MT_LAYER[self.compression]

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


class Image:
    """An image config + manifest over `layers`.

    tags: names as they appear in the archive (OCI ref.name annotations or
    docker RepoTags), e.g. "app:v1"; empty for an untagged image.
    config: the container config ("config" of the image config).
    Overrides for broken images: diff_ids (list), config_raw / manifest_raw
    (bytes stored verbatim)."""

    def __init__(self, layers, tags=(), *, config=None, created=CREATED,
                 architecture="amd64", os_name="linux", labels=None, history=None):
        self.layers = list(layers)
        self.tags = list(tags)
        self.config = config if config is not None else {"Cmd": ["sh"], "Env": list(DEFAULT_ENV)}
        if labels:
            self.config = dict(self.config, Labels=dict(labels))
        self.created = created
        self.architecture = architecture
        self.os_name = os_name
        self.history = history
        self.diff_ids = None
        self.config_raw = None
        self.manifest_raw = None

    def config_dict(self):
        diff_ids = self.diff_ids if self.diff_ids is not None else [l.diff_id for l in self.layers]
        history = self.history
        if history is None:
            history = [{"created": self.created, "created_by": f"imagegen layer {i}"}
                       for i in range(len(self.layers))]
        return {
            "architecture": self.architecture,
            "os": self.os_name,
            "created": self.created,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }

    @property
    def config_bytes(self):
        if self.config_raw is not None:
            return self.config_raw
        return canonical_json(self.config_dict())

    @property
    def config_digest(self):
        return digest_of(self.config_bytes)

    @property
    def id(self):
        """The image ID isola reports: the config digest."""
        return self.config_digest

    @property
    def short_id(self):
        return hex_of(self.id)[:12]

    def manifest_dict(self):
        return {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": self.config_digest,
                       "size": len(self.config_bytes)},
            "layers": [l.descriptor() for l in self.layers],
        }

    @property
    def manifest_bytes(self):
        if self.manifest_raw is not None:
            return self.manifest_raw
        return canonical_json(self.manifest_dict())

    @property
    def manifest_digest(self):
        return digest_of(self.manifest_bytes)

    def manifest_descriptor(self, annotations=None):
        desc = {"mediaType": MT_MANIFEST, "digest": self.manifest_digest,
                "size": len(self.manifest_bytes)}
        if annotations:
            desc["annotations"] = dict(annotations)
        return desc


def split_tag(ref):
    """'reg:5000/app:v1' -> ('reg:5000/app', 'v1'); a missing tag is 'latest'."""
    if ":" in ref.rsplit("/", 1)[-1]:
        name, _, tag = ref.rpartition(":")
        return name, tag
    return ref, "latest"


def normalized_tags(image):
    """The NAME:TAG strings isola should report for the image's tags."""
    return ["%s:%s" % split_tag(tag) for tag in image.tags]


# ---------------------------------------------------------------------------
# Archive formats. Each returns {path: bytes}, in the order a real tool
# writes them; None as a value stands for a directory entry.


def _add_blob(files, data):
    files[blob_path(digest_of(data))] = data


def oci_layout(images):
    files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
             "blobs/": None, "blobs/sha256/": None}
    manifests = []
    for image in images:
        for layer in image.layers:
            _add_blob(files, layer.blob)
        _add_blob(files, image.config_bytes)
        _add_blob(files, image.manifest_bytes)
        if image.tags:
            for tag in image.tags:
                manifests.append(image.manifest_descriptor({REF_NAME: tag}))
        else:
            manifests.append(image.manifest_descriptor())
    files["index.json"] = canonical_json(
        {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests})
    return files


def _legacy_layer_ids(image):
    """Docker's v1 layer IDs: a chain over the diff_ids."""
    ids, parent = [], ""
    for layer in image.layers:
        parent = sha256_hex(f"{parent}\n{layer.diff_id}".encode())
        ids.append(parent)
    return ids


def docker_legacy(images):
    files = {}
    entries = []
    repositories = {}
    for image in images:
        ids = _legacy_layer_ids(image)
        paths = []
        for i, (layer, lid) in enumerate(zip(image.layers, ids)):
            files[f"{lid}/"] = None
            files[f"{lid}/VERSION"] = b"1.0"
            v1 = {"id": lid, "created": image.created,
                  "container_config": {"Cmd": None}, "os": image.os_name}
            if i:
                v1["parent"] = ids[i - 1]
            files[f"{lid}/json"] = canonical_json(v1)
            files[f"{lid}/layer.tar"] = layer.blob
            paths.append(f"{lid}/layer.tar")
        config_name = hex_of(image.config_digest) + ".json"
        files[config_name] = image.config_bytes
        entries.append({"Config": config_name,
                        "RepoTags": list(image.tags) if image.tags else None,
                        "Layers": paths})
        for tag in image.tags:
            name, t = split_tag(tag)
            repositories.setdefault(name, {})[t] = ids[-1] if ids else ""
    files["manifest.json"] = canonical_json(entries)
    if repositories:
        files["repositories"] = canonical_json(repositories)
    return files


def docker_new(images):
    """docker save as docker 25+ writes it: an OCI layout whose index
    annotates each manifest with the tag alone (as OCI intends) and the
    containerd name, plus the legacy manifest.json pointing into blobs/."""
    files = {"blobs/": None, "blobs/sha256/": None}
    manifests = []
    entries = []
    repositories = {}
    for image in images:
        for layer in image.layers:
            _add_blob(files, layer.blob)
        _add_blob(files, image.config_bytes)
        _add_blob(files, image.manifest_bytes)
        for tag in image.tags or [None]:
            if tag is None:
                manifests.append(image.manifest_descriptor())
                continue
            name, t = split_tag(tag)
            full = name if "/" in name else "docker.io/library/" + name
            manifests.append(image.manifest_descriptor(
                {"io.containerd.image.name": f"{full}:{t}", REF_NAME: t}))
            repositories.setdefault(name, {})[t] = hex_of(image.manifest_digest)
        entries.append({
            "Config": blob_path(image.config_digest),
            "RepoTags": list(image.tags) if image.tags else None,
            "Layers": [blob_path(l.digest) for l in image.layers],
            "LayerSources": {l.diff_id: l.descriptor() for l in image.layers},
        })
    files["index.json"] = canonical_json(
        {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests})
    files["manifest.json"] = canonical_json(entries)
    files["oci-layout"] = canonical_json({"imageLayoutVersion": "1.0.0"})
    if repositories:
        files["repositories"] = canonical_json(repositories)
    return files


# ---------------------------------------------------------------------------
# Writing to disk


def write_dir(files, dest):
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    for path, data in files.items():
        full = os.path.join(dest, path)
        if data is None:
            os.makedirs(full, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    return dest


def write_tar(files, dest, prefix=""):
    """Write the archive as a tar; prefix (e.g. "./") goes before every name."""
    dest = os.fspath(dest)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(prefix + path)
            info.mtime = MTIME
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return dest


FORMATS = ("oci-dir", "oci-tar", "docker-legacy", "docker-new")


def archive_files(fmt, images):
    if fmt in ("oci-dir", "oci-tar"):
        return oci_layout(images)
    if fmt == "docker-legacy":
        return docker_legacy(images)
    if fmt == "docker-new":
        return docker_new(images)
    raise ValueError(f"unknown format {fmt!r}")


def write_archive(fmt, files, dest):
    """Write `files` as `fmt`: a directory for oci-dir, a tar otherwise."""
    if fmt == "oci-dir":
        return write_dir(files, dest)
    return write_tar(files, dest)


def save(fmt, images, dest):
    """Build and write images in one step; returns the path to load."""
    if isinstance(images, Image):
        images = [images]
    return write_archive(fmt, archive_files(fmt, images), dest)


# ---------------------------------------------------------------------------
# Checking a layout (used to validate this module and make-busybox-image)


def verify_oci_layout(root):
    """Check every digest and size in an OCI layout directory; return the
    parsed (index, [(manifest, config)])."""
    def read_blob(desc):
        with open(os.path.join(root, blob_path(desc["digest"])), "rb") as f:
            data = f.read()
        assert digest_of(data) == desc["digest"], f"digest mismatch for {desc['digest']}"
        assert len(data) == desc["size"], f"size mismatch for {desc['digest']}"
        return data

    with open(os.path.join(root, "oci-layout")) as f:
        assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
    with open(os.path.join(root, "index.json")) as f:
        index = json.load(f)
    assert index["schemaVersion"] == 2
    out = []
    for mdesc in index["manifests"]:
        assert mdesc["mediaType"] == MT_MANIFEST
        manifest = json.loads(read_blob(mdesc))
        assert manifest["schemaVersion"] == 2
        assert manifest["config"]["mediaType"] == MT_CONFIG
        config = json.loads(read_blob(manifest["config"]))
        diff_ids = []
        for ldesc in manifest["layers"]:
            data = read_blob(ldesc)
            kind = {v: k for k, v in MT_LAYER.items()}[ldesc["mediaType"]]
            if kind == "gzip":
                data = gzip.decompress(data)
            elif kind == "zstd":
                data = subprocess.run(["zstd", "-q", "-d", "-c"], input=data,
                                      check=True, capture_output=True).stdout
            diff_ids.append(digest_of(data))
        assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
        out.append((manifest, config))
    return index, out
