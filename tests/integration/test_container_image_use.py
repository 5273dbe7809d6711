"""An image that containers use stays while they exist (rmi semantics)."""

from containers import IMAGE, box  # noqa: F401  (fixture)


def test_rmi_refuses_an_image_a_container_uses(box):
    cid = box.ok("create", IMAGE, "true").strip()
    res = box("rmi", IMAGE)
    assert res.returncode == 125
    assert "in use by a container" in res.stderr
    assert "busybox " in box.ok("images")
    box.ok("rm", cid)
    assert "Deleted: sha256:" in box.ok("rmi", IMAGE)


def test_rmi_force_untags_but_the_container_keeps_its_image(box):
    cid = box.ok("create", "--name", "keeper", IMAGE, "echo", "still here").strip()
    image_id = box.inspect(cid)["Image"]
    out = box.ok("rmi", "-f", IMAGE)
    assert "Untagged: busybox:latest" in out and "Deleted" not in out
    assert "<none>" in box.ok("images")
    res = box("start", "-a", "keeper")
    assert res.returncode == 0 and "still here" in res.stdout
    box.ok("rm", "keeper")
    assert "Deleted: " + image_id in box.ok("rmi", image_id)
