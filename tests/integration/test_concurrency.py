"""Several isola processes on one store at once leave it consistent."""

import pytest

import imagegen as g
from checks import assert_file

BASE = g.Layer([g.Dir("etc"), g.File("etc/base", "shared base\n"),
                g.File("etc/bulk", b"b" * 300_000)])


def image(name):
    top = g.Layer([g.File("who", name + "\n"), g.File("data/" + name, name * 1000)])
    return g.Image([BASE, top], [f"{name}:1"])


def run_all(procs):
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.args, proc.returncode, out, err))
    return results


@pytest.mark.parametrize("round_", range(3))
def test_parallel_loads_and_removals(isola, tmp_path, round_):
    """6 loads of images sharing a base layer race 3 removals of others."""
    old = [image(f"old{i}") for i in range(3)]
    new = [image(f"new{i}") for i in range(6)]
    formats = ["oci-dir", "oci-tar", "docker-legacy", "docker-new"]
    for img in old:
        isola.load(g.save("oci-dir", img, tmp_path / img.tags[0]))
    paths = [g.save(formats[(i + round_) % len(formats)], img, tmp_path / f"new-{i}")
             for i, img in enumerate(new)]

    procs = []
    for i, path in enumerate(paths):
        procs.append(isola.popen("load", "-i", path))
        if i < len(old):
            procs.append(isola.popen("rmi", old[i].tags[0]))
    for args, code, out, err in run_all(procs):
        assert code == 0, f"{args} exited {code}\nstdout:\n{out}\nstderr:\n{err}"

    assert isola.tags() == {img.tags[0]: img.id for img in new}
    assert isola.layer_dirs() == {g.hex_of(BASE.diff_id)} | {
        g.hex_of(img.layers[1].diff_id) for img in new}
    isola.assert_consistent()
    for img in new:
        name = img.tags[0].split(":")[0]
        mnt = isola.mount(img.tags[0])
        assert_file(mnt, "who", name + "\n")
        assert_file(mnt, "etc/base", "shared base\n")
        isola.unmount(img.tags[0])


def test_parallel_loads_of_the_same_image(isola, tmp_path):
    img = image("same")
    paths = [g.save(fmt, img, tmp_path / f"same-{fmt}")
             for fmt in ("oci-dir", "oci-tar", "docker-legacy", "docker-new")]
    procs = [isola.popen("load", "-i", p) for p in paths + paths[:2]]
    for args, code, out, err in run_all(procs):
        assert code == 0, f"{args} exited {code}\nstderr:\n{err}"
        assert out.splitlines() == ["Loaded image: same:1"]
    assert isola.ids() == [img.short_id]
    assert len(isola.layer_dirs()) == 2
    isola.assert_consistent()


def test_removal_racing_a_load_of_the_shared_base(isola, tmp_path):
    """The last image using the base is removed while another image that
    needs the base is being loaded: the base must survive for the newcomer."""
    for round_ in range(4):
        gone = image(f"gone{round_}")
        comer = image(f"comer{round_}")
        isola.load(g.save("oci-dir", gone, tmp_path / f"gone{round_}"))
        path = g.save("oci-tar", comer, tmp_path / f"comer{round_}.tar")
        procs = [isola.popen("rmi", gone.tags[0]), isola.popen("load", "-i", path)]
        for args, code, out, err in run_all(procs):
            assert code == 0, f"{args} exited {code}\nstderr:\n{err}"
        assert_file(isola.mount(comer.tags[0]), "etc/base", "shared base\n")
        isola.unmount(comer.tags[0])
        isola("rmi", comer.tags[0])
        isola.assert_consistent()
        assert isola.layer_dirs() == set()
