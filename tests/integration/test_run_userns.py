"""--userns=auto: root in the container is an unprivileged id on the host."""

import os
import time

import pytest

from containers import IMAGE, TIMEOUT, userns_box  # noqa: F401


@pytest.fixture
def box(userns_box):
    return userns_box


def host_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_root_inside_is_not_root_outside(box):
    cid = box.run_d("--userns=auto", IMAGE, "sleep", "300")
    pid = box.state(cid)["Pid"]
    uid = host_uid(pid)
    assert uid >= 1 << 20, f"the container's root runs as host uid {uid}"
    res = box.exec(cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert res.returncode == 0, res.stderr
    inside, mapping = res.stdout.split("\n", 1)
    assert inside.strip() == "0"
    assert mapping.split() == ["0", str(uid), "65536"]


def test_image_files_belong_to_the_containers_root(box):
    res = box.run("--rm", "--userns=auto", IMAGE, "sh", "-c",
                  "stat -c '%u %g' /bin/busybox /etc/passwd; touch /root/new && stat -c '%u' /root/new")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "0", "0", "0", "0"]


def test_two_containers_get_different_ranges(box):
    a = box.run_d("--userns=auto", IMAGE, "sleep", "300")
    b = box.run_d("--userns=auto", IMAGE, "sleep", "300")
    assert host_uid(box.state(a)["Pid"]) != host_uid(box.state(b)["Pid"])


def test_host_files_stay_out_of_reach(box, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    os.chmod(secret, 0o600)
    res = box.run("--rm", "--userns=auto", "-v", f"{tmp_path}:/host", IMAGE, "cat", "/host/secret")
    assert res.returncode != 0
    assert "host only" not in res.stdout


def test_writes_land_in_the_upper_dir_owned_by_the_mapped_root(box):
    cid = box.run_d("--userns=auto", IMAGE, "sh", "-c", "echo data > /written; sleep 300")
    pid = box.state(cid)["Pid"]
    uid = host_uid(pid)
    upper = box.inspect(cid)["GraphDriver"]["Data"]["UpperDir"]
    for _ in range(50):
        if os.path.exists(os.path.join(upper, "written")):
            break
        time.sleep(0.1)
    st = os.stat(os.path.join(upper, "written"))
    assert st.st_uid == uid


def test_store_below_a_private_directory_is_refused_clearly(isola, busybox_layout):
    isola("load", "-i", busybox_layout, timeout=TIMEOUT)
    res = isola("run", "--rm", "--userns=auto", IMAGE, "true", check=False)
    assert res.returncode == 125
    assert "o+x" in res.stderr
