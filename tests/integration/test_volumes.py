"""Volumes: `isola volume` and -v NAME:/path, -v /path, the image's VOLUMEs,
--mount, --volumes-from, rm -v and --rm, as docker has them.

Every test has its own store (the `box` fixture); the VM checks boot real
VMs, so only the main one (data outlives its container) runs at both
isolation levels."""

import json
import os
import re

import pytest

from containers import IMAGE, box, describe, userns_box  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def volumes(box):
    return box.ok("volume", "ls", "-q").split()


def volume_dirs(box):
    d = box.root / "volumes"
    return sorted(os.listdir(d)) if d.exists() else []


def volume_image(box, tag="withvol:1"):
    """busybox plus /data/hello (owned 1234:5678, mode 0640) in a VOLUME /data."""
    cid = box.create(IMAGE, "sh", "-c", "mkdir -p /data && echo from the image > /data/hello && "
                     "chown 1234:5678 /data/hello && chmod 640 /data/hello && chmod 750 /data")
    res = box("start", "-a", cid)
    assert res.returncode == 0, describe(res)
    box.ok("commit", "-c", "VOLUME /data", cid, tag)
    box.ok("rm", cid)
    return tag


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_named_volume_data_outlives_its_container(box, isolation, tmp_path):
    flags = [VM] if isolation == "vm" else []
    timeout = BOOT if isolation == "vm" else 60
    w = box.run("--name", "writer", *flags, "-v", "data:/data", IMAGE, "sh", "-c", "echo persisted > /data/f",
                timeout=timeout)
    assert w.returncode == 0, describe(w)
    assert volumes(box) == ["data"]  # made on first use
    r = box.run("--name", "reader", *flags, "-v", "data:/data:ro", IMAGE, "sh", "-c",
                "cat /data/f; touch /data/g", timeout=timeout)
    assert r.stdout == "persisted\n", describe(r)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, describe(r)
    mount = box.inspect("reader")["Mounts"][0]
    mountpoint = json.loads(box.ok("volume", "inspect", "data"))[0]["Mountpoint"]
    assert mount == {"Type": "volume", "Name": "data", "Source": mountpoint, "Destination": "/data",
                     "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}, mount
    assert open(os.path.join(mountpoint, "f")).read() == "persisted\n"
    if isolation == "vm":
        # A volume is a share of its directory like any bind mount: the VM
        # has the shape (and the template) a bind mount would give it.
        host = tmp_path / "host"
        host.mkdir()
        b = box.run("--name", "binder", VM, "-v", f"{host}:/data:ro", IMAGE, "true", timeout=BOOT)
        assert b.returncode == 0, describe(b)
        assert box.inspect("binder")["VM"]["Template"] == box.inspect("reader")["VM"]["Template"]


def test_copy_up_of_the_images_volume_content(box):
    image = volume_image(box)
    res = box.run("--name", "c1", image, "sh", "-c", "stat -c '%u:%g %a' /data/hello /data; cat /data/hello")
    assert res.returncode == 0, describe(res)
    assert res.stdout.splitlines() == ["1234:5678 640", "0:0 750", "from the image"], describe(res)
    names = volumes(box)
    assert len(names) == 1 and HEX64.match(names[0]), names  # an anonymous volume for VOLUME /data
    mount = box.inspect("c1")["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in mount] == [("volume", names[0], "/data", True)]
    # A named volume over a path with content gets it too, unless nocopy.
    res = box.run("--rm", "-v", "etcvol:/etc", IMAGE, "grep", "^root:", "/etc/group")
    assert res.returncode == 0 and res.stdout.startswith("root:"), describe(res)
    res = box.run("--rm", "-v", "bare:/etc:nocopy", IMAGE, "ls", "-A", "/etc")
    listed = res.stdout.split()  # the empty volume, not the image's /etc
    assert res.returncode == 0 and not {"group", "passwd"} & set(listed), describe(res)
    # A -v over the VOLUME path replaces the anonymous volume.
    res = box.run("--rm", "-v", "mine:/data", image, "cat", "/data/hello")
    assert res.stdout == "from the image\n", describe(res)
    assert sorted(volumes(box)) == sorted(["bare", "etcvol", "mine", names[0]])


def test_bind_mounts_get_no_copy_up(box, tmp_path):
    host = tmp_path / "etc"
    host.mkdir()
    res = box.run("--rm", "-v", f"{host}:/etc", IMAGE, "true")
    assert res.returncode == 0, describe(res)
    assert "group" not in os.listdir(host) and "passwd" not in os.listdir(host)


def test_mount_of_each_type(box, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "file").write_text("host data\n")
    res = box.run("--rm", "--mount", f"type=bind,source={host},target=/h,readonly",
                  "--mount", "type=volume,src=mv,dst=/v",
                  "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
                  IMAGE, "sh", "-c",
                  "cat /h/file; touch /h/x 2>/dev/null && echo bind writable; echo v > /v/f; "
                  "stat -c %a /t; grep ' /t ' /proc/mounts")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "host data" and "bind writable" not in res.stdout, describe(res)
    assert lines[1] == "1770", describe(res)
    assert "size=1024k" in lines[2], describe(res)
    assert volumes(box) == ["mv"]
    res = box.run("--rm", "--mount", "type=volume,source=mv,target=/v,ro", IMAGE, "sh", "-c",
                  "cat /v/f; touch /v/g")
    assert res.stdout == "v\n" and res.returncode != 0 and "Read-only" in res.stderr, describe(res)
    # ps names them as docker does: a volume by its name, a bind mount by its host path.
    box.create("--name", "listed", "-v", f"{host}:/h", "-v", "mv:/v", "--tmpfs", "/t", IMAGE, "true")
    assert box.ok("ps", "-a", "--filter", "name=listed", "--format", "{{.Mounts}}") == f"{host},mv\n"


def test_a_vm_takes_as_many_volumes_as_it_has_device_slots(box):
    # A VM has 24 device slots: the agent's, the network card's, the root's
    # and /etc's leave 20 for volumes and bind-mounted directories.
    twenty = [arg for i in range(20) for arg in ("-v", f"/a{i}")]
    res = box.run("--rm", VM, *twenty, IMAGE, "sh", "-c", "ls -d /a* | wc -l", timeout=BOOT)
    assert res.returncode == 0 and res.stdout.strip() == "20", describe(res)
    assert volumes(box) == []
    res = box.run("--rm", VM, *twenty, "-v", "/one-more", IMAGE, "true", timeout=BOOT)
    assert res.returncode == 125 and "at most 20 volumes and bind-mounted directories" in res.stderr, describe(res)
    assert volumes(box) == [] and box.ids() == []  # nothing of the refused container stays


def test_volumes_from(box):
    box.create("--name", "src", "-v", "shared:/s", "-v", "/anon", IMAGE, "true")
    box.run("--rm", "--volumes-from", "src", IMAGE, "sh", "-c", "echo 1 > /s/f; echo 2 > /anon/f")
    res = box.run("--rm", "--volumes-from", "src:ro", IMAGE, "sh", "-c", "cat /s/f /anon/f; touch /s/g")
    assert res.stdout == "1\n2\n" and res.returncode != 0 and "Read-only" in res.stderr, describe(res)
    res = box("run", "--rm", "--volumes-from", "nosuch", IMAGE, "true")
    assert res.returncode == 125 and "no such container" in res.stderr, describe(res)


def test_rm_v_and_run_rm_remove_anonymous_volumes_only(box):
    cid = box.create("-v", "/anon", "-v", "kept:/k", IMAGE, "true")
    assert len(volumes(box)) == 2
    box.ok("rm", "-v", cid)
    assert volumes(box) == ["kept"]
    res = box.run("--rm", "-v", "/scratch", "-v", "kept:/k", IMAGE, "true")
    assert res.returncode == 0, describe(res)
    assert volumes(box) == ["kept"]
    assert volume_dirs(box) == ["kept"]
    cid = box.create("-v", "/anon", IMAGE, "true")
    box.ok("rm", cid)  # without -v the anonymous volume stays
    assert len(volumes(box)) == 2


def test_a_volume_in_use_cannot_be_removed(box):
    cid = box.create("-v", "busy:/d", IMAGE, "true")
    res = box("volume", "rm", "busy")
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: ") and f"volume is in use - [{cid}]" in res.stderr, describe(res)
    assert volumes(box) == ["busy"]
    res = box("volume", "rm", "-f", "busy")  # -f does not override use
    assert res.returncode == 125
    box.ok("rm", cid)
    assert box.ok("volume", "rm", "busy") == "busy\n"
    assert volumes(box) == [] and volume_dirs(box) == []


def test_prune_removes_unused_anonymous_volumes_unless_all(box):
    box.ok("rm", box.create("-v", "/anon", IMAGE, "true"))
    anon = volumes(box)[0]
    box.ok("volume", "create", "named")
    used = box.create("-v", "inuse:/u", IMAGE, "true")
    res = box("volume", "prune")  # no terminal to ask on
    assert res.returncode == 125 and "-f" in res.stderr, describe(res)
    out = box.ok("volume", "prune", "-f")
    assert out.startswith(f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: "), out
    assert volumes(box) == ["inuse", "named"]
    out = box.ok("volume", "prune", "-f", "-a")
    assert "named" in out and "inuse" not in out, out
    assert volumes(box) == ["inuse"]
    box.ok("rm", used)


def test_volume_create_ls_inspect(box):
    res = box("volume", "create", "--opt", "type=nfs", "nfsvol")
    assert res.returncode == 125 and "--opt" in res.stderr and "nfsvol" not in box.ok("volume", "ls", "-q")
    assert box.ok("volume", "create", "--label", "team=db", "v1") == "v1\n"
    assert box.ok("volume", "create", "--name", "v2") == "v2\n"
    assert box.ok("volume", "create", "v1") == "v1\n"  # an existing name is fine, as in docker
    anon = box.ok("volume", "create").strip()
    assert HEX64.match(anon)
    info = json.loads(box.ok("volume", "inspect", "v1"))[0]
    assert info["Name"] == "v1" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"team": "db"} and not info["Options"]
    assert info["Mountpoint"].endswith("/volumes/v1/_data") and os.path.isdir(info["Mountpoint"])
    assert re.match(r"\d{4}-\d\d-\d\dT", info["CreatedAt"])
    assert box.ok("volume", "inspect", "--format", "{{.Name}} {{.Driver}}", "v1", "v2") == "v1 local\nv2 local\n"
    assert box.ok("volume", "inspect", "-f", "{{.Labels.team}}", "v1") == "db\n"
    res = box("volume", "inspect", "-f", "{{.Name", "v1")
    assert res.returncode == 125 and "template" in res.stderr, describe(res)
    table = box.ok("volume", "ls").splitlines()
    assert re.match(r"DRIVER\s+VOLUME NAME$", table[0]) and len(table) == 4, table
    assert box.ok("volume", "ls", "-q", "--filter", "label=team=db").split() == ["v1"]
    assert box.ok("volume", "ls", "-q", "-f", "name=v2").split() == ["v2"]
    box.create("-v", "v2:/x", IMAGE, "true")
    assert sorted(box.ok("volume", "ls", "-q", "-f", "dangling=true").split()) == sorted([anon, "v1"])
    rows = [json.loads(line) for line in box.ok("volume", "ls", "--format", "json").splitlines()]
    assert {r["Name"] for r in rows} == {"v1", "v2", anon}
    assert {"Name", "Driver", "Mountpoint", "Labels", "Scope", "CreatedAt"} <= set(rows[0])
    names = box.ok("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "-f", "label!=team").splitlines()
    assert sorted(names) == sorted(["v2 ", f"{anon} "]), names
    table = box.ok("volume", "ls", "--format", "table {{.Name}}\t{{.Links}}", "-f", "name=v").splitlines()
    assert re.match(r"VOLUME NAME\s+LINKS$", table[0]), table
    assert {tuple(line.split()) for line in table[1:]} == {("v1", "0"), ("v2", "1")}, table
    res = box("volume", "ls", "--format", "{{.Nope}}")
    assert res.returncode == 125 and "Nope" in res.stderr, res.stderr
    res = box("volume", "create", "--name", "a1", "b1")
    assert res.returncode == 125 and "conflicting options" in res.stderr
    assert box("volume", "rm", "-f", "nosuch").returncode == 0


@pytest.mark.parametrize("args, message", [
    (["run", "--rm", "-v", "good:/g", "--mount", "type=volume,src=v1,dst=/x,foo=bar", IMAGE, "true"],
     "unexpected key 'foo' in 'foo=bar'"),
    (["create", "--mount", "type=volume,source=v1", IMAGE, "true"], "target is required"),
    (["create", "--mount", "type=bind,source=/no/such/dir,target=/x", IMAGE, "true"], "does not exist"),
    (["create", "--mount", "type=tmpfs,target=/x,volume-nocopy", IMAGE, "true"], "type=volume only"),
    (["run", "--rm", "-v", "data/x:/x", IMAGE, "true"], "[a-zA-Z0-9][a-zA-Z0-9_.-]+"),
    (["volume", "create", "data/x"], "[a-zA-Z0-9][a-zA-Z0-9_.-]+"),
    (["volume", "rm", "missing"], "no such volume"),
    (["volume", "inspect", "missing"], "no such volume"),
    (["volume", "ls", "--filter", "color=red"], 'unknown filter "color"'),
])
def test_bad_input_is_refused_and_leaves_nothing(box, args, message):
    res = box(*args)
    assert res.returncode == 125, describe(res)
    assert res.stderr.startswith("isola: ") and message in res.stderr, describe(res)
    assert box.ids() == []
    assert volumes(box) == [] and volume_dirs(box) == []


def test_userns_auto_volume_is_owned_by_the_containers_root(userns_box):
    res = userns_box.run("--rm", "--userns=auto", "-v", "uvol:/u", IMAGE, "sh", "-c",
                         "touch /u/f && stat -c %u /u/f")
    assert res.returncode == 0 and res.stdout == "0\n", describe(res)
    mountpoint = json.loads(userns_box.ok("volume", "inspect", "uvol"))[0]["Mountpoint"]
    assert os.stat(mountpoint).st_uid >= 1 << 20  # the remapped root, not host root
