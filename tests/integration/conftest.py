"""Fixtures that drive the installed isola binary as a user would.

ISOLA_BIN names the binary (default /usr/local/bin/isola). Every test gets
its own store: `--root <tmp_path>/store` goes before the command, and its
own network namespace: the bridges, NAT rules and published ports the
containers it starts make (the default network is a bridge) stay in a
namespace the test owns, and go with it.
"""

import ctypes
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checks import is_mountpoint, mountpoints, tree_names

ISOLA_BIN = os.environ.get("ISOLA_BIN", "/usr/local/bin/isola")
REPO_ROOT = Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ENGINE_FAILED = 125


def listdir_or_empty(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


class StoreSnapshot:
    def __init__(self, isola):
        self.ids = isola.ids()  # first: it may create an empty store
        self.layers = listdir_or_empty(isola.root / "layers")
        blobs = isola.root / "blobs"
        self.blobs = sorted(p for p in tree_names(blobs) if not (blobs / p).is_dir())

    def __eq__(self, other):
        return (self.layers, self.blobs, self.ids) == (other.layers, other.blobs, other.ids)

    def __repr__(self):
        return f"StoreSnapshot(layers={self.layers}, blobs={self.blobs}, ids={self.ids})"


class Isola:
    """Runs `isola --root ROOT ...` and reads the store the way a user can."""

    def __init__(self, root):
        self.root = Path(root)
        self.bin = ISOLA_BIN
        self._mounts = []  # (ref, path) to undo at teardown

    def __call__(self, *args, check=True, input=None, timeout=120):
        cmd = [self.bin, "--root", str(self.root), *map(str, args)]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {res.returncode}\n"
                        f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}", pytrace=False)
        return res

    def popen(self, *args):
        cmd = [self.bin, "--root", str(self.root), *map(str, args)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def fail(self, *args, input=None):
        """Run a command that must fail as the engine: exit 125, `isola: ...` on stderr."""
        res = self(*args, check=False, input=input)
        assert res.returncode == ENGINE_FAILED, (
            f"isola {' '.join(map(str, args))}: expected exit {ENGINE_FAILED}, got "
            f"{res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
        assert res.stderr.startswith("isola: "), f"stderr does not start with 'isola: ':\n{res.stderr}"
        return res

    # -- commands returning parsed output

    def load(self, path, *extra):
        """Load and return stdout's lines."""
        return self("load", "-i", path, *extra).stdout.splitlines()

    def images_json(self):
        out = self("images", "--format", "json").stdout
        data = json.loads(out)
        assert isinstance(data, list), f"images --format json is not an array: {out}"
        return data

    def ids(self):
        """`isola images -q` as a sorted list."""
        return sorted(self("images", "-q").stdout.split())

    def tags(self):
        """{"name:tag": "sha256:<hex>"} for every tagged image."""
        return {f"{e['Repository']}:{e['Tag']}": e["Id"] for e in self.images_json()
                if e["Repository"] != "<none>"}

    def inspect(self, *refs):
        out = self("image", "inspect", *refs).stdout
        data = json.loads(out)
        assert isinstance(data, list) and len(data) == len(refs), out
        return data

    def mount(self, ref):
        out = self("image", "mount", ref).stdout
        lines = out.splitlines()
        assert len(lines) == 1, f"image mount printed {out!r}"
        path = Path(lines[0])
        assert path.is_absolute(), f"image mount printed a relative path {out!r}"
        self._mounts.append((ref, path))
        assert is_mountpoint(path), f"{path} is not a mount point"
        return path

    def unmount(self, ref):
        return self("image", "unmount", ref)

    # -- store facts

    def layer_dirs(self):
        """Names of the unpacked-layer directories (diff_id hex)."""
        return {n for n in listdir_or_empty(self.root / "layers")
                if (self.root / "layers" / n).is_dir()}

    def snapshot(self):
        return StoreSnapshot(self)

    def assert_unchanged(self, before):
        """Nothing left behind by a failed command."""
        after = self.snapshot()
        assert after == before, f"store changed:\nbefore {before}\nafter  {after}"
        self.assert_tmp_empty()

    def assert_tmp_empty(self):
        leftovers = listdir_or_empty(self.root / "tmp")
        assert leftovers == [], f"{self.root / 'tmp'} not empty: {leftovers}"

    def assert_consistent(self, check_mount=True):
        """Every image inspects and mounts, every layer it needs is unpacked,
        no layer directory is unreferenced, tmp is empty."""
        entries = self.images_json()
        ids = {e["Id"] for e in entries}
        assert {i.split(":", 1)[1][:12] for i in ids} == set(self.ids())
        referenced = set()
        for image_id in sorted(ids):
            info = self.inspect(image_id)[0]
            assert info["Id"] == image_id
            for diff_id in info["RootFS"]["Layers"]:
                referenced.add(diff_id.split(":", 1)[1])
            if check_mount:
                self.mount(image_id)
                self.unmount(image_id)
        dirs = self.layer_dirs()
        assert referenced <= dirs, f"missing layer dirs: {referenced - dirs}"
        assert dirs <= referenced, f"unreferenced layer dirs: {dirs - referenced}"
        for name in dirs:
            assert HEX64.match(name), f"odd layer dir name {name}"
        self.assert_tmp_empty()

    def cleanup(self):
        for ref, path in reversed(self._mounts):
            if is_mountpoint(path):
                self("image", "unmount", ref, check=False)
        # Whatever is still mounted (a failing test, a bug) goes, so that
        # the temporary directories can be removed.
        prefixes = [str(self.root.resolve())] + [str(p) for _, p in self._mounts]
        for point in sorted(mountpoints(), key=len, reverse=True):
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                subprocess.run(["umount", "-l", point], capture_output=True)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(autouse=True)
def own_network_namespace():
    """The test, and every process it starts, in a new network namespace
    with only `lo` (up). The namespace lives on while a process of the test
    does; the test's thread returns to the caller's namespace at the end."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}", pytrace=False)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the test runner's network namespace")
        os.close(home)


def _require_binary():
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root")
    if not (os.path.isfile(ISOLA_BIN) and os.access(ISOLA_BIN, os.X_OK)):
        pytest.fail(f"isola binary {ISOLA_BIN} not found; build and install it, "
                    "or set ISOLA_BIN", pytrace=False)


@pytest.fixture
def make_isola():
    """Factory: make_isola(root) -> Isola using that store."""
    _require_binary()
    made = []

    def make(root):
        isola = Isola(root)
        made.append(isola)
        return isola

    yield make
    for isola in made:
        isola.cleanup()


@pytest.fixture
def isola(make_isola, tmp_path):
    return make_isola(tmp_path / "store")


@pytest.fixture
def sentinel(tmp_path):
    """A directory outside the store that hostile layers aim at."""
    path = tmp_path / "sentinel"
    (path / "dir").mkdir(parents=True)
    (path / "secret").write_bytes(b"host secret\n")
    (path / "dir" / "keep").write_bytes(b"keep me\n")
    return path


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory):
    """The busybox OCI layout scripts/make-busybox-image builds."""
    out = tmp_path_factory.mktemp("busybox") / "busybox-oci"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make-busybox-image"), str(out)],
                   check=True, capture_output=True)
    return out
