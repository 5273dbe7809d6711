"""`isola images`, `image inspect`, `tag` and `rmi` as a user sees them."""

import itertools
import re

import pytest

import imagegen as g
from checks import assert_file, is_mountpoint

CONFIG = {
    "Entrypoint": ["/bin/app", "--serve"],
    "Cmd": ["--port", "80"],
    "Env": ["PATH=/usr/bin:/bin", "GREETING=hello world"],
    "WorkingDir": "/srv",
    "User": "1000:1000",
    "Labels": {"org.example.name": "app", "empty": ""},
    "ExposedPorts": {"80/tcp": {}},
    "StopSignal": "SIGTERM",
}
BIG = 200_000


def make_image(tags, marker="x", base=None, config=None, created=g.CREATED):
    layers = [base] if base else []
    layers.append(g.Layer([g.File("marker", marker), g.File("big", b"\0" * BIG)]))
    return g.Image(layers, tags, config=config, created=created)


def load(isola, tmp_path, *images, fmt="oci-dir"):
    path = tmp_path / f"load-{len(list(tmp_path.iterdir()))}"
    return isola.load(g.save(fmt, list(images), path))


# -- images


def test_images_table(isola, tmp_path):
    app = make_image(["app:v1", "app:v2"], "app")
    other = make_image(["registry.local:5000/team/other:1.0"], "other")
    untagged = make_image([], "untagged")
    load(isola, tmp_path, app, other, untagged)

    lines = isola("images").stdout.splitlines()
    header = lines[0]
    positions = [header.find(col) for col in ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    assert -1 not in positions and positions == sorted(positions), header
    rows = sorted(tuple(line.split()[:3]) for line in lines[1:])
    assert rows == sorted([
        ("app", "v1", app.short_id), ("app", "v2", app.short_id),
        ("registry.local:5000/team/other", "1.0", other.short_id),
        ("<none>", "<none>", untagged.short_id),
    ])


def test_images_quiet_lists_each_image_once(isola, tmp_path):
    app = make_image(["app:v1", "app:v2", "alias:latest"], "app")
    other = make_image(["other:1"], "other")
    load(isola, tmp_path, app, other)
    out = isola("images", "-q").stdout.split()
    assert sorted(out) == sorted([app.short_id, other.short_id])
    for short in out:
        assert re.fullmatch(r"[0-9a-f]{12}", short)


def test_images_no_trunc(isola, tmp_path):
    app = make_image(["app:v1"])
    load(isola, tmp_path, app)
    table = isola("images", "--no-trunc").stdout
    assert g.hex_of(app.id) in table
    quiet = isola("images", "-q", "--no-trunc").stdout.split()
    assert len(quiet) == 1 and quiet[0].endswith(g.hex_of(app.id))


def test_images_json(isola, tmp_path):
    app = make_image(["app:v1", "app:v2"], "app")
    untagged = make_image([], "untagged")
    load(isola, tmp_path, app, untagged)
    entries = isola.images_json()
    for e in entries:
        assert set(e) >= {"Repository", "Tag", "Id", "Created", "Size"}, e
        assert isinstance(e["Size"], int) and e["Size"] >= BIG, e
        assert e["Created"], e
    pairs = sorted((e["Repository"], e["Tag"], e["Id"]) for e in entries)
    assert pairs == sorted([("app", "v1", app.id), ("app", "v2", app.id),
                            ("<none>", "<none>", untagged.id)])


def test_images_with_a_repository_operand(isola, tmp_path):
    app = make_image(["app:v1", "app:v2"], "app")
    other = make_image(["other:1"], "other")
    load(isola, tmp_path, app, other)
    rows = [line.split()[:2] for line in isola("images", "app").stdout.splitlines()[1:]]
    assert sorted(rows) == [["app", "v1"], ["app", "v2"]]
    assert isola("images", "-q", "app:v2").stdout.split() == [app.short_id]
    assert isola("images", "-q", "app", "--filter", "reference=*:v1").stdout.split() == [app.short_id]
    assert isola("images", "-q", "app", "--filter", "reference=other:*").stdout.split() == []
    assert isola("images", "-q", "nothing").stdout.split() == []


def test_images_empty_store(isola):
    assert isola.images_json() == []
    assert isola("images", "-q").stdout.strip() == ""
    lines = isola("images").stdout.splitlines()
    assert len(lines) == 1 and "REPOSITORY" in lines[0]


# -- image inspect


def test_inspect_fields(isola, tmp_path):
    base = g.Layer([g.File("etc/base", "base")])
    app = make_image(["app:v1"], base=base, config=CONFIG, created="2021-02-03T04:05:06Z")
    load(isola, tmp_path, app)
    info = isola.inspect("app:v1")[0]
    assert info["Id"] == app.id
    assert info["RepoTags"] == ["app:v1"]
    assert info["Created"].startswith("2021-02-03T04:05:06")
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert isinstance(info["Size"], int) and info["Size"] >= BIG
    for key, value in CONFIG.items():
        assert info["Config"].get(key) == value, f"Config.{key}: {info['Config'].get(key)!r}"
    assert info["RootFS"] == {"Type": "layers", "Layers": [l.diff_id for l in app.layers]}
    listed = [e for e in isola.images_json() if e["Id"] == app.id][0]
    assert listed["Size"] == info["Size"]


def test_image_inspect_format(isola, tmp_path):
    app = make_image(["app:v1"], "app", config=CONFIG)
    load(isola, tmp_path, app)
    for cmd in (["image", "inspect"], ["inspect"]):
        res = isola(*cmd, "-f", "{{.Id}} {{join .Config.Entrypoint \",\"}} {{json .RepoTags}}", "app:v1")
        assert res.stdout == f"{app.id} /bin/app,--serve [\"app:v1\"]\n", res
    res = isola("image", "inspect", "-f", "{{.Nope}}", "app:v1", check=False)
    assert res.returncode == 125 and "Nope" in res.stderr, res


def test_inspect_reference_forms(isola, tmp_path):
    app = make_image(["app:latest", "app:v1"], "app")
    load(isola, tmp_path, app)
    hexid = g.hex_of(app.id)
    for ref in ("app", "app:latest", "app:v1", hexid, hexid[:12], hexid[:3], app.id,
                "sha256:" + hexid[:12]):
        assert isola.inspect(ref)[0]["Id"] == app.id, ref


def test_inspect_several_refs_in_order(isola, tmp_path):
    one, two = make_image(["one:1"], "one"), make_image(["two:1"], "two")
    load(isola, tmp_path, one, two)
    assert [i["Id"] for i in isola.inspect("two:1", "one:1", "two:1")] == [two.id, one.id, two.id]


@pytest.mark.parametrize("ref", ["nosuch", "nosuch:tag", "app:v2", "0123456789ab",
                                 "sha256:" + "f" * 64])
def test_inspect_unknown(isola, tmp_path, ref):
    load(isola, tmp_path, make_image(["app:v1"]))
    res = isola.fail("image", "inspect", ref)
    assert ref in res.stderr and "not found" in res.stderr, res.stderr


def test_inspect_ambiguous_prefix(isola, tmp_path):
    """Two images whose IDs share 3 leading hex digits: the 3-digit prefix
    must not silently pick one."""
    layer = g.Layer([g.File("same", "same")])
    seen = {}
    for n in itertools.count():
        img = g.Image([layer], [f"amb{n}:1"], config={"Labels": {"n": str(n)}})
        prefix = g.hex_of(img.id)[:3]
        if prefix in seen:
            first = seen[prefix]
            break
        seen[prefix] = img
    load(isola, tmp_path, first, img)
    isola.fail("image", "inspect", prefix)
    assert isola.inspect(g.hex_of(img.id)[:12])[0]["Id"] == img.id
    assert isola.inspect(g.hex_of(first.id)[:12])[0]["Id"] == first.id


# -- tag


def test_tag(isola, tmp_path):
    app = make_image(["app:v1"])
    load(isola, tmp_path, app)
    isola("tag", "app:v1", "app:v2")
    isola("tag", g.hex_of(app.id)[:12], "registry.local:5000/mirror/app:stable")
    isola("tag", "app:v1", "bare")
    assert isola.tags() == {"app:v1": app.id, "app:v2": app.id, "bare:latest": app.id,
                            "registry.local:5000/mirror/app:stable": app.id}
    assert sorted(isola.inspect("app:v2")[0]["RepoTags"]) == sorted(
        ["app:v1", "app:v2", "bare:latest", "registry.local:5000/mirror/app:stable"])
    assert isola.ids() == [app.short_id]


def test_tag_moves_existing_tag(isola, tmp_path):
    one, two = make_image(["one:1", "shared:latest"], "one"), make_image(["two:1"], "two")
    load(isola, tmp_path, one, two)
    isola("tag", "two:1", "shared")
    assert isola.tags()["shared:latest"] == two.id
    assert "shared:latest" not in isola.inspect("one:1")[0]["RepoTags"]


def test_tag_unknown_source(isola, tmp_path):
    load(isola, tmp_path, make_image(["app:v1"]))
    res = isola.fail("tag", "nosuch:1", "new:1")
    assert "nosuch" in res.stderr and "not found" in res.stderr
    assert "new:1" not in isola.tags()


# -- rmi


def deleted_line(img):
    return f"Deleted: {img.id}"


def test_rmi_by_name_untags_until_last_tag(isola, tmp_path):
    app = make_image(["app:v1", "app:v2"])
    load(isola, tmp_path, app)
    out = isola("rmi", "app:v1").stdout.splitlines()
    assert "Untagged: app:v1" in out
    assert deleted_line(app) not in out
    assert isola.tags() == {"app:v2": app.id}
    assert len(isola.layer_dirs()) == 1

    out = isola("rmi", "app:v2").stdout.splitlines()
    assert "Untagged: app:v2" in out
    assert deleted_line(app) in out
    assert isola.images_json() == []
    assert isola.layer_dirs() == set()
    isola.fail("image", "inspect", app.id)
    isola.assert_consistent()


def test_rmi_name_defaults_to_latest(isola, tmp_path):
    app = make_image(["app:latest", "app:v1"])
    load(isola, tmp_path, app)
    assert "Untagged: app:latest" in isola("rmi", "app").stdout.splitlines()
    assert isola.tags() == {"app:v1": app.id}


def test_rmi_by_id_with_several_tags_needs_force(isola, tmp_path):
    app = make_image(["app:v1", "app:v2"])
    load(isola, tmp_path, app)
    before = isola.snapshot()
    res = isola.fail("rmi", app.short_id)
    assert app.short_id in res.stderr or g.hex_of(app.id) in res.stderr, res.stderr
    isola.assert_unchanged(before)
    assert set(isola.tags()) == {"app:v1", "app:v2"}

    out = isola("rmi", "-f", app.short_id).stdout.splitlines()
    assert "Untagged: app:v1" in out and "Untagged: app:v2" in out
    assert deleted_line(app) in out
    assert isola.images_json() == [] and isola.layer_dirs() == set()


@pytest.mark.parametrize("how", ["full", "short", "sha256", "prefix"])
def test_rmi_by_id_with_one_tag(isola, tmp_path, how):
    app = make_image(["app:v1"])
    load(isola, tmp_path, app)
    ref = {"full": g.hex_of(app.id), "short": app.short_id, "sha256": app.id,
           "prefix": g.hex_of(app.id)[:5]}[how]
    out = isola("rmi", ref).stdout.splitlines()
    assert "Untagged: app:v1" in out and deleted_line(app) in out
    assert isola.images_json() == []


def test_rmi_untagged_image(isola, tmp_path):
    img = make_image([])
    load(isola, tmp_path, img)
    assert deleted_line(img) in isola("rmi", img.short_id).stdout.splitlines()
    assert isola.images_json() == [] and isola.layer_dirs() == set()


def test_rmi_several_refs(isola, tmp_path):
    one, two, three = (make_image([f"{n}:1"], n) for n in ("one", "two", "three"))
    load(isola, tmp_path, one, two, three)
    out = isola("rmi", "one:1", three.short_id).stdout.splitlines()
    assert deleted_line(one) in out and deleted_line(three) in out
    assert isola.tags() == {"two:1": two.id}
    isola.assert_consistent()


def test_rmi_keeps_shared_layers(isola, tmp_path):
    base = g.Layer([g.File("etc/base", "shared base\n")])
    one = make_image(["one:1"], "one", base=base)
    two = make_image(["two:1"], "two", base=base)
    load(isola, tmp_path, one, two)
    assert len(isola.layer_dirs()) == 3

    isola("rmi", "one:1")
    assert isola.layer_dirs() == {g.hex_of(base.diff_id), g.hex_of(two.layers[1].diff_id)}
    mnt = isola.mount("two:1")
    assert_file(mnt, "etc/base", "shared base\n")
    assert_file(mnt, "marker", "two")
    isola.unmount("two:1")
    isola.assert_consistent()

    isola("rmi", "two:1")
    assert isola.layer_dirs() == set()


def test_rmi_unknown(isola, tmp_path):
    load(isola, tmp_path, make_image(["app:v1"]))
    before = isola.snapshot()
    for ref in ("nosuch:1", "app:v2", "abcdef123456"):
        res = isola.fail("rmi", ref)
        assert ref in res.stderr and "not found" in res.stderr, res.stderr
    isola.assert_unchanged(before)


def test_rmi_refused_while_mounted(isola, tmp_path):
    app = make_image(["app:v1"], "app")
    load(isola, tmp_path, app)
    mnt = isola.mount("app:v1")
    before = isola.snapshot()
    for ref in ("app:v1", app.short_id):
        isola.fail("rmi", ref)
    isola.assert_unchanged(before)
    assert is_mountpoint(mnt)
    assert_file(mnt, "marker", "app")

    out = isola("rmi", "-f", "app:v1").stdout.splitlines()
    assert deleted_line(app) in out
    assert not is_mountpoint(mnt)
    assert isola.images_json() == [] and isola.layer_dirs() == set()
    isola.assert_tmp_empty()


def test_untagging_a_mounted_image_keeps_it(isola, tmp_path):
    """Removing one of two tags deletes nothing, so a mount is no obstacle."""
    app = make_image(["app:v1", "app:v2"], "app")
    load(isola, tmp_path, app)
    mnt = isola.mount("app:v2")
    res = isola("rmi", "app:v1", check=False)
    if res.returncode == 0:
        assert isola.tags() == {"app:v2": app.id}
    else:
        assert res.returncode == 125
    assert is_mountpoint(mnt)
    assert_file(mnt, "marker", "app")


# -- image prune


def test_image_prune_removes_dangling_images_then_unused_ones(isola, tmp_path):
    dangling = make_image([], "dangling")
    tagged = make_image(["keep:1"], "kept")
    load(isola, tmp_path, dangling, tagged)
    res = isola("image", "prune", "-f")
    assert "Deleted Images:" in res.stdout and f"deleted: {dangling.id}" in res.stdout.splitlines(), res.stdout
    assert re.search(r"^Total reclaimed space: [1-9][0-9.]*[kM]?B$", res.stdout, re.M), res.stdout
    assert list(isola.tags()) == ["keep:1"] and len(isola.images_json()) == 1, "wrong images went"
    res = isola("image", "prune", "-a", "-f")
    assert "untagged: keep:1" in res.stdout and f"deleted: {tagged.id}" in res.stdout.splitlines(), res.stdout
    assert isola.images_json() == [] and isola.layer_dirs() == set()


def test_image_prune_without_a_terminal_asks_for_f(isola, tmp_path):
    load(isola, tmp_path, make_image([], "dangling"))
    res = isola.fail("image", "prune", input="y\n")
    assert "-f" in res.stderr, res.stderr
    assert len(isola.images_json()) == 1, "prune removed an image without confirmation"
