"""VM templates: a VM container starts as a clone of a booted, saved guest
when a template of its shape exists, boots cold (and leaves a template
behind) when none does, and every clone is a machine of its own.

Every test runs real VMs under TCG here. The templates live in a tmpfs of
the test's own (ISOLA_TEMPLATE_DIR), so what a test sees is what it made."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from containers import IMAGE, box, describe, wait_for  # noqa: F401
from engines import host_processes, podman_with_busybox

VM = "--isolation=vm"
BOOT = 240
QUIET = ["--network", "none"]  # the shape most tests use: no NIC


def mount_tmpfs(path, size="1g"):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)


@pytest.fixture(scope="module")
def shared_templates(tmp_path_factory):
    """One template directory for the module: tests that need a template of
    the common shape share the one the first of them makes."""
    path = tmp_path_factory.mktemp("templates-shared") / "t"
    mount_tmpfs(path)
    old = os.environ.get("ISOLA_TEMPLATE_DIR")
    os.environ["ISOLA_TEMPLATE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ISOLA_TEMPLATE_DIR", None)
    else:
        os.environ["ISOLA_TEMPLATE_DIR"] = old
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def templates(shared_templates):
    return shared_templates


@pytest.fixture
def fresh_templates(tmp_path, monkeypatch, shared_templates):
    """An empty template directory of this test's own."""
    path = tmp_path / "templates"
    mount_tmpfs(path)
    monkeypatch.setenv("ISOLA_TEMPLATE_DIR", str(path))
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def sealed(path):
    return sorted(p.name for p in Path(path).iterdir() if not p.name.startswith("."))


def leftovers(path):
    """What a maker leaves only while it works (or when it died)."""
    return sorted(p.name for p in Path(path).iterdir() if p.name.startswith((".tmp-", ".rm-")))


def processes_using(templates, name):
    """PIDs of processes called `name` whose environment names this template
    directory (the monitors and workers this test started)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if Path(f"/proc/{d}/comm").read_text().strip() != name:
                continue
            if f"ISOLA_TEMPLATE_DIR={templates}".encode() in Path(f"/proc/{d}/environ").read_bytes().split(b"\0"):
                found.append(int(d))
        except OSError:
            pass
    return found


def monitors_using(templates):
    """The monitors only: the worker a monitor has just cloned is called
    isola-monitor too, with its environment, until it execs QEMU (under ASan
    long enough for a test to see both)."""
    found = processes_using(templates, "isola-monitor")
    return [pid for pid in found if _parent(pid) not in found]


def _parent(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def workers_of(monitors):
    """The VM workers (QEMU, whose jail gives it an environment of its own)
    that are children of `monitors`."""
    found = []
    for d in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{d}/status").read_text() if d.isdigit() else ""
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name", "").startswith("isola-vm-") and int(fields.get("PPid", "0")) in monitors:
            found.append(int(d))
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False


def vm_info(box, cid):
    return box.inspect(cid)["VM"]


def run_vm(box, *args):
    """A detached VM container; returns (id, its VM section of inspect)."""
    cid = box.run_d(VM, *args, timeout=BOOT)
    return cid, vm_info(box, cid)


def guest(box, cid, script):
    res = box.exec(cid, "sh", "-c", script, timeout=60)
    assert res.returncode == 0, describe(res)
    return res.stdout


def template_list(box):
    return json.loads(box.ok("system", "template", "ls", "--format", "json"))


def test_first_start_boots_cold_and_leaves_a_template_the_next_is_a_clone(box, templates):
    cid, first = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    made = template_list(box)
    if first["Boot"] == "cold":
        assert "no template" in first["BootReason"], first
        assert first["Template"] and [t["Key"] for t in made] == [first["Template"]], made
        assert first["Phases"]["template_save"] >= 0 and first["Phases"]["template_copy"] >= 0, first
    assert len(made) == 1, made
    assert made[0]["MemoryMb"] == 256 and made[0]["Cpus"] == 1 and made[0]["Nic"] is False, made
    box.ok("rm", "-f", cid)

    res = box("run", "--rm", VM, *QUIET, IMAGE, "sh", "-c", "echo from a clone; exit 5", timeout=BOOT)
    assert res.returncode == 5 and res.stdout == "from a clone\n", describe(res)
    cid, second = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert second["Boot"] == "template" and second["Template"] == made[0]["Key"], second
    assert second["BootReason"] == "" and set(second["Phases"]) >= {"qemu_start", "load_state", "wake"}, second
    # The worker is a clone: QEMU took its state from the template.
    cmdline = Path(f"/proc/{second['WorkerPid']}/cmdline").read_bytes().split(b"\0")
    assert b"-incoming" in cmdline and any(b"share=off" in a for a in cmdline), cmdline
    assert guest(box, cid, "echo ok; hostname") == f"ok\n{cid[:12]}\n"

    info = json.loads(box.ok("info", "--format", "json"))["VM"]["Templates"]
    assert info["Enabled"] is True and [t["Key"] for t in info["Ready"]] == [made[0]["Key"]], info
    text = box.ok("info")
    assert "Templates:" in text and "1 ready" in text and "256 MiB" in text, text


def test_shapes_without_a_template_boot_cold(box, templates, monkeypatch):
    # A template of the common shape is there (made above, or now).
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    assert len(template_list(box)) >= 1

    cid, other_memory = run_vm(box, *QUIET, "-m", "96m", IMAGE, "sleep", "1000")
    assert other_memory["Boot"] == "cold" and "no template" in other_memory["BootReason"], other_memory
    # 96 MiB plus the guest's reserve, not the default 256 MiB.
    assert int(guest(box, cid, "grep MemTotal /proc/meminfo").split()[1]) < 200 * 1024
    box.ok("rm", "-f", cid)

    cid, asked = run_vm(box, *QUIET, "--vm-boot=cold", IMAGE, "sleep", "1000")
    assert asked["Boot"] == "cold" and "--vm-boot=cold" in asked["BootReason"], asked
    box.ok("rm", "-f", cid)

    monkeypatch.setenv("ISOLA_VM_TEMPLATES", "off")
    cid, host_off = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert host_off["Boot"] == "cold" and "ISOLA_VM_TEMPLATES" in host_off["BootReason"], host_off
    box.ok("rm", "-f", cid)
    monkeypatch.delenv("ISOLA_VM_TEMPLATES")

    res = box("run", "--rm", "--vm-boot=cold", IMAGE, "true", check=False)
    assert res.returncode == 125 and "--isolation=vm" in res.stderr, describe(res)
    res = box("run", "--rm", VM, "--vm-boot=fast", IMAGE, "true", check=False)
    assert res.returncode == 125 and "--vm-boot" in res.stderr and "cold" in res.stderr, describe(res)


def test_host_wide_switch(box, templates):
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    conf = Path("/etc/isola/vm-templates")
    saved = conf.read_text() if conf.exists() else None
    try:
        box.ok("system", "template", "disable")
        cid, off = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
        assert off["Boot"] == "cold" and "disable" in off["BootReason"], off
        assert "off" in json.dumps(json.loads(box.ok("info", "--format", "json"))["VM"]["Templates"]["Reason"])
        box.ok("rm", "-f", cid)
        box.ok("system", "template", "enable")
        cid, on = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
        assert on["Boot"] == "template", on
        box.ok("rm", "-f", cid)
    finally:
        if saved is None:
            conf.unlink(missing_ok=True)
        else:
            conf.write_text(saved)


def test_changed_kernel_command_line_or_assets_boot_cold(box, templates, tmp_path, monkeypatch):
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    monkeypatch.setenv("ISOLA_VM_KERNEL_ARGS", "isola.debug")
    cid, debug = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert debug["Boot"] == "cold", debug
    assert "isola.debug" in guest(box, cid, "cat /proc/cmdline")
    box.ok("rm", "-f", cid)
    monkeypatch.delenv("ISOLA_VM_KERNEL_ARGS")
    box.ok("system", "template", "rm", debug["Template"])  # the module's other tests share this directory

    # A guest cache of our own: the same files, then a kernel replaced in
    # place (what an upgrade does).
    source = Path(os.environ.get("ISOLA_CACHE", "/var/cache/isola")) / "guest" / "current"
    cache = tmp_path / "cache"
    shutil.copytree(source.resolve(), cache / "guest" / "current", symlinks=True)
    monkeypatch.setenv("ISOLA_CACHE", str(cache))
    cid, own = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert own["Boot"] == "cold", own  # other files: another key
    box.ok("rm", "-f", cid)
    cid, again = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert again["Boot"] == "template" and again["Template"] == own["Template"], again
    box.ok("rm", "-f", cid)
    kernel = cache / "guest" / "current" / "vmlinux"
    shutil.copy(kernel, kernel.with_suffix(".new"))
    os.replace(kernel.with_suffix(".new"), kernel)
    cid, upgraded = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert upgraded["Boot"] == "cold" and upgraded["Template"] != own["Template"], upgraded
    box.ok("rm", "-f", cid)
    # The template of the replaced kernel is gone: it can never be used again.
    keys = [t["Key"] for t in template_list(box)]
    assert own["Template"] not in keys and upgraded["Template"] in keys, keys
    # A new initramfs in the same guest directory (as a rebuilt agent makes;
    # here one more line in a module list) supersedes the old one's template.
    with open(cache / "guest" / "current" / "modules" / "net-order", "a") as f:
        f.write("virtio_net\n")
    cid, rebuilt = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert rebuilt["Boot"] == "cold" and rebuilt["Template"] not in (own["Template"], upgraded["Template"]), rebuilt
    box.ok("rm", "-f", cid)
    keys = [t["Key"] for t in template_list(box)]
    assert upgraded["Template"] not in keys and rebuilt["Template"] in keys, keys
    box.ok("system", "template", "rm", rebuilt["Template"])


def test_clones_are_distinct_machines_on_the_hosts_clock(box, templates):
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    script = ("cat /proc/sys/kernel/random/boot_id /proc/sys/kernel/random/uuid; "
              "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s")
    seen = []
    for _ in range(2):
        cid, info = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
        assert info["Boot"] == "template", info
        host_before = time.time()
        boot_id, uuid, noise, guest_time = guest(box, cid, script).split()
        assert abs(int(guest_time) - host_before) <= 2 + (time.time() - host_before), (guest_time, host_before)
        seen.append((boot_id, uuid, noise))
        box.ok("rm", "-f", cid)
    (b1, u1, n1), (b2, u2, n2) = seen
    assert b1 != b2, "two clones share a boot ID"
    assert u1 != u2, "two clones produce the same UUID"
    assert n1 != n2, "two clones read the same bytes from /dev/urandom"


def test_an_interrupted_template_is_never_used(box, fresh_templates):
    # kill -9 of the monitor while the guest boots: the template being made
    # is a dot-directory, and QEMU dies with its monitor.
    proc = subprocess.Popen(box.cmd("run", "--rm", VM, *QUIET, IMAGE, "true"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: any(n.startswith(".tmp-") for n in os.listdir(fresh_templates)), 60,
             what="a template being made")
    [monitor] = wait_for(lambda: monitors_using(fresh_templates), 10, what="the monitor making it")
    [worker] = wait_for(lambda: workers_of([monitor]), 10, what="its VM worker")
    os.kill(monitor, signal.SIGKILL)
    proc.wait(60)
    wait_for(lambda: not alive(worker), 10, what="QEMU to die with its monitor")
    assert sealed(fresh_templates) == [] and len(leftovers(fresh_templates)) == 1, os.listdir(fresh_templates)
    assert template_list(box) == []
    for cid in box.ids():
        box("rm", "-f", cid)

    # A sealed template whose RAM file is not the VM's size is refused too.
    cid, cold = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert cold["Boot"] == "cold" and "no template" in cold["BootReason"], cold
    box.ok("rm", "-f", cid)
    assert leftovers(fresh_templates) == [], "a dead maker's files were not swept"
    [key] = sealed(fresh_templates)
    mem = fresh_templates / key / "memory"
    # A sealed template's files are immutable (so that no clone's worker
    # can write them); the test lifts that to damage one.
    lsattr = subprocess.run(["lsattr", str(mem)], capture_output=True, text=True, check=True).stdout
    assert "i" in lsattr.split()[0], lsattr
    subprocess.run(["chattr", "-i", str(mem)], check=True)
    os.chmod(mem, 0o600)
    os.truncate(mem, 1 << 20)
    cid, again = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
    assert again["Boot"] == "cold", again
    assert guest(box, cid, "echo fine") == "fine\n"
    box.ok("rm", "-f", cid)


def test_a_full_tmpfs_leaves_no_template_and_the_container_runs(box, tmp_path, monkeypatch, shared_templates):
    small = tmp_path / "small"
    mount_tmpfs(small, size="16m")
    monkeypatch.setenv("ISOLA_TEMPLATE_DIR", str(small))
    try:
        res = box("run", "--rm", VM, *QUIET, IMAGE, "sh", "-c", "echo still runs", timeout=BOOT)
        assert res.returncode == 0 and res.stdout == "still runs\n", describe(res)
        assert [n for n in sealed(small)] == [] and leftovers(small) == [], os.listdir(small)
        cid, info = run_vm(box, *QUIET, IMAGE, "sleep", "1000")
        assert info["Boot"] == "cold" and "no template" in info["BootReason"], info
        box.ok("rm", "-f", cid)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_parallel_first_runs_leave_one_template(box, fresh_templates):
    results = [None] * 3

    def one(i):
        results[i] = box("run", "--rm", VM, *QUIET, IMAGE, "sh", "-c", f"echo run {i}", timeout=BOOT, check=False)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in enumerate(results):
        assert res.returncode == 0 and res.stdout == f"run {i}\n", describe(res)
    assert len(sealed(fresh_templates)) == 1, os.listdir(fresh_templates)
    assert len(template_list(box)) == 1
    assert leftovers(fresh_templates) == []


def test_a_clone_never_writes_the_template(box, templates):
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    [tpl] = [t for t in template_list(box) if not t["Nic"] and t["MemoryMb"] == 256]
    mem = Path(tpl["Path"]) / "memory"
    assert oct(mem.stat().st_mode & 0o777) == "0o400" and oct(Path(tpl["Path"]).parent.stat().st_mode & 0o777) == "0o700"

    def digest():
        h = hashlib.sha256()
        with open(mem, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    before = digest()
    res = box("run", "--rm", VM, *QUIET, IMAGE, "sh", "-c",
              "head -c 16777216 /dev/urandom > /dev/shm/noise && md5sum /dev/shm/noise | cut -c1-8", timeout=BOOT)
    assert res.returncode == 0 and len(res.stdout.strip()) == 8, describe(res)
    assert digest() == before, "a clone's writes reached the template's RAM file"


def test_clones_with_a_network_and_a_volume(box, templates, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in").write_text("from the host\n")
    args = ["-v", f"{vol}:/data", IMAGE]
    box("run", "--rm", VM, *args, "true", timeout=BOOT)  # the template of this shape
    cid, info = run_vm(box, *args, "sleep", "1000")
    assert info["Boot"] == "template", info
    settings = box.inspect(cid)["NetworkSettings"]
    ip = settings["IPAddress"]
    [endpoint] = settings["Networks"].values()
    mac = endpoint["MacAddress"]
    out = guest(box, cid, "cat /data/in; echo out > /data/back; ip -o link show eth0; ip -o -4 addr show eth0")
    assert "from the host" in out and mac.lower() in out.lower() and ip in out, out
    assert (vol / "back").read_text() == "out\n"
    # The clone reaches the host's side of its network, the gateway.
    res = box.exec(cid, "ping", "-c", "1", "-W", "5", endpoint["Gateway"], timeout=60)
    assert res.returncode == 0 and "1 packets received" in res.stdout, describe(res)
    box.ok("rm", "-f", cid)


@pytest.fixture(scope="module")
def podman(tmp_path_factory, busybox_layout):
    p = podman_with_busybox(tmp_path_factory.mktemp("pt"), busybox_layout)
    yield p
    p.cleanup()


def test_podman_vm_containers_are_clones(podman):
    # isola-runtime runs the same VM monitor: its VMs are cloned too (from
    # the host's template directory; podman's shape has no NIC).
    for _ in range(2):
        res = podman("run", "--rm", *podman.run_args("vm"), "busybox", "true")
        assert res.returncode == 0, describe(res)
    name = f"t-{os.getpid()}"
    res = podman("run", "-d", "--name", name, *podman.run_args("vm"), "busybox", "sleep", "1000")
    assert res.returncode == 0, describe(res)
    try:
        def worker():
            for line in host_processes().splitlines():
                if "qemu-system" in line and "-incoming" in line and "share=off" in line:
                    return line
            return None
        wait_for(worker, 60, what="a cloned VM worker for podman's container")
        res = podman("exec", name, "cat", "/proc/sys/kernel/random/boot_id")
        assert res.returncode == 0 and len(res.stdout.strip()) == 36, describe(res)
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_an_old_templates_clone_has_the_hosts_time(box, templates):
    """Last in the module: the shared template is minutes old by now."""
    box("run", "--rm", VM, *QUIET, IMAGE, "true", timeout=BOOT)
    [tpl] = [t for t in template_list(box) if not t["Nic"] and t["MemoryMb"] == 256]
    created = json.loads((Path(tpl["Path"]) / "template.json").read_text())["created_ns"] / 1e9
    age = time.time() - created
    if age < 180:  # three minutes: a clone without the wake's clock would be that far behind
        time.sleep(180 - age)
    res = box("run", "--rm", VM, *QUIET, IMAGE, "date", "+%s", timeout=BOOT)
    assert res.returncode == 0, describe(res)
    assert abs(int(res.stdout) - time.time()) <= 2, (res.stdout, time.time(), "template age", time.time() - created)
