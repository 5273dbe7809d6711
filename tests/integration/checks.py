"""Assertions about files as a user sees them (in a mounted image, on the host)."""

import os
import re
import stat
from pathlib import Path

import imagegen


def mountpoints():
    """Mount points of this mount namespace."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            field = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    return points


def is_mountpoint(path):
    return os.path.realpath(path) in mountpoints()


def tree_names(path):
    """Every path under `path`, relative, without following symlinks."""
    out = set()
    path = Path(path)
    if not path.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(path):
        rel = Path(dirpath).relative_to(path)
        for name in dirnames + filenames:
            out.add(str(rel / name))
    return out


def tree_state(path):
    """Names, types, modes, sizes, link counts, owners and contents under
    path (and of path itself): equal states mean nothing was touched."""
    state = {}
    for rel in sorted(tree_names(path)) + ["."]:
        p = Path(path) / rel
        st = os.lstat(p)
        content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
        link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
        state[rel] = (st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns,
                      st.st_uid, st.st_gid, content, link)
    return state


def find_named(root, fragment):
    """Paths under root whose name contains fragment."""
    return sorted(p for p in tree_names(root) if fragment in os.path.basename(p))


def assert_file(root, rel, content, mode=None, uid=None, gid=None, mtime=None):
    p = Path(root) / rel
    st = os.lstat(p)
    assert stat.S_ISREG(st.st_mode), f"{rel} is not a regular file (mode {st.st_mode:o})"
    data = p.read_bytes()
    expected = content.encode() if isinstance(content, str) else content
    assert data == expected, f"{rel}: content {data[:80]!r}, expected {expected[:80]!r}"
    _check_meta(rel, st, mode, uid, gid, mtime)


def assert_dir(root, rel, mode=None, uid=None, gid=None):
    st = os.lstat(Path(root) / rel)
    assert stat.S_ISDIR(st.st_mode), f"{rel} is not a directory (mode {st.st_mode:o})"
    _check_meta(rel, st, mode, uid, gid, None)


def assert_symlink(root, rel, target):
    p = Path(root) / rel
    assert p.is_symlink(), f"{rel} is not a symlink"
    assert os.readlink(p) == target, f"{rel} -> {os.readlink(p)}, expected -> {target}"


def assert_absent(root, rel):
    p = Path(root) / rel
    assert not os.path.lexists(p), f"{rel} exists but should not"


def _check_meta(rel, st, mode, uid, gid, mtime):
    if mode is not None:
        assert stat.S_IMODE(st.st_mode) == mode, \
            f"{rel}: mode {stat.S_IMODE(st.st_mode):o}, expected {mode:o}"
    if uid is not None:
        assert st.st_uid == uid, f"{rel}: uid {st.st_uid}, expected {uid}"
    if gid is not None:
        assert st.st_gid == gid, f"{rel}: gid {st.st_gid}, expected {gid}"
    if mtime is not None:
        assert int(st.st_mtime) == mtime, f"{rel}: mtime {int(st.st_mtime)}, expected {mtime}"


def layer_mentioned(text, layer):
    """Whether an error message names the layer (by blob digest or diff_id)."""
    return imagegen.hex_of(layer.digest) in text or imagegen.hex_of(layer.diff_id) in text
