"""Known classes of container escape, each tried against isola as an
attacker inside a container would try it. docs/security.md lists every
class with the test that shows isola is not open to it (here or elsewhere)
and the isolation levels it applies to.

Each test asserts the safe outcome and, where a flag can switch the defence
off (--privileged, seccomp=unconfined, --network host, isola-runtime's
--no-new-keyring, a spec without a pid namespace), also runs that weakened
variant as a control: the control must show the escape, so the safe outcome
cannot come from a probe that never worked.

Busybox has no applet for some system calls (keyctl, bpf, open_by_handle_at,
ptrace, ...): escape_probe.c is compiled statically once per session and
bind-mounted into the containers that need it (`-v PROBE:/probe:ro`).

VM cases boot real VMs (TCG here, ~2 s each): there are few of them, and
each covers what its class needs in one VM.

A test that finds isola open to its class keeps asserting the safe
behaviour and fails; docs/security.md ("Open issues and limits") lists
those.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

import imagegen as g
from bundles import RUNTIME, make_bundle, oci  # noqa: F401  (fixture)
from checks import mountpoints, tree_state
from containers import IMAGE, box, describe, is_v2, load_derived_image, wait_for  # noqa: F401

VM = "--isolation=vm"
BOOT = 240  # seconds an isola command may take while a VM boots under TCG
HERE = Path(__file__).resolve().parent
UP = "../" * 16  # more `..` than any path here is deep

# The VM worker's capabilities (src/vm/jail.cc), held in its own user
# namespace: what 9p's passthrough model needs and nothing else.
WORKER_CAPS = sum(1 << c for c in (0, 1, 2, 3, 4))  # CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID

# Calls an escape needs and the default seccomp profile refuses
# (escape_probe.c: `probe sys`).
ESCAPE_SYSCALLS = ["keyctl", "add_key", "bpf", "mount", "unshare", "clone_newuts", "setns",
                   "open_by_handle_at", "finit_module"]


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="session")
def probe(tmp_path_factory):
    """A directory holding the static `probe` binary (escape_probe.c)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the escape probe")
    out = tmp_path_factory.mktemp("probe")
    out.chmod(0o755)
    res = subprocess.run([cc, "-static", "-O1", "-o", str(out / "probe"), str(HERE / "escape_probe.c")],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        pytest.fail(f"building the escape probe failed:\n{res.stderr}", pytrace=False)
    return out


def token():
    return uuid.uuid4().hex[:10]


def pairs(text):
    """`NAME VALUE` lines as a dict (a line without a value maps to "")."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts:
            out[parts[0]] = parts[1].strip() if len(parts) == 2 else ""
    return out


def probe_sys(box, probe, *flags, isolation=()):
    res = box.run("--rm", *isolation, *flags, "-v", f"{probe}:/probe:ro", IMAGE, "/probe/probe", "sys",
                  timeout=BOOT if isolation else 60)
    assert res.returncode == 0, describe(res)
    return pairs(res.stdout)


def host_status(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


def host_block_device():
    """(name, major, minor) of a host disk, or None."""
    for dev in sorted(Path("/sys/block").iterdir()):
        if dev.name.startswith(("loop", "ram", "zram")):
            continue
        if (dev / "dev").exists():
            major, minor = (dev / "dev").read_text().strip().split(":")
            return dev.name, major, minor
    return None


def upper_dir(box, cid):
    return Path(box.inspect(cid)["GraphDriver"]["Data"]["UpperDir"])


def host_mount_sources():
    """The source field of every mount in the host's (our) mount table."""
    with open("/proc/self/mountinfo") as f:
        return [line.split(" - ", 1)[1].split()[1] for line in f if " - " in line]


class SharedMount:
    """`path` bind-mounted onto itself and made shared: a mount namespace
    that kept it in its peer group would propagate its mounts here (the
    host's own mounts are private on these machines, which would make a
    propagation check vacuous)."""

    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        subprocess.run(["mount", "--bind", self.path, self.path], check=True, timeout=30)
        subprocess.run(["mount", "--make-shared", self.path], check=True, timeout=30)
        return self

    def __exit__(self, *exc):
        for point in sorted((m for m in mountpoints() if m == self.path or m.startswith(self.path + "/")),
                            key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)

    def assert_propagation_works(self, sub):
        """Control: a mount namespace that keeps the peer group (unshare
        --propagation unchanged) does make its mounts appear on the host."""
        res = subprocess.run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                              f"mount -t tmpfs isola-control {sub}"], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert str(sub) in mountpoints(), "the control mount did not propagate: the check would be vacuous"
        subprocess.run(["umount", str(sub)], check=True, timeout=30)


# ---------------------------------------------------------------------------
# Symlinks on mount targets and volume paths (CVE-2021-30465 class)


@pytest.mark.parametrize("isolation", ["process", "vm"])
def test_symlinked_mount_targets_stay_in_the_rootfs(box, busybox_layout, tmp_path, isolation):
    """The image (or a volume's content) decides what a mount target's path
    components are; symlinks among them must be resolved inside the rootfs.
    A runtime that resolved them on the host (plain mkdir -p + mount) would
    create host directories (host-missing/, /isola-escape-*, via-volume/)
    and mount outside the container's root, where the container would not
    see its volume through the link."""
    t = token()
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "marker").write_text("volume\n")
    host_missing = tmp_path / "host-missing" / "sub"
    host_existing = tmp_path / "host-existing"
    host_existing.mkdir()
    (host_existing / "keep").write_text("keep\n")
    existing_before = tree_state(host_existing)
    # A volume whose content links out of it with `..` (its owner, or another
    # container sharing it, put that there); a second volume goes beneath it.
    via_volume = tmp_path / "via-volume"
    outer = tmp_path / "outer"
    outer.mkdir()
    os.symlink(UP + str(via_volume)[1:], outer / "x")
    load_derived_image(box, busybox_layout, tmp_path / "img", f"evil-{t}:1", {}, extra_entries=[
        g.Symlink("evil", str(host_missing)),
        g.Symlink("evil2", str(host_existing)),
        g.Symlink("up", UP.rstrip("/")),
    ])
    flags = [VM] if isolation == "vm" else []
    res = box.run("--rm", *flags, "-v", f"{vol}:/evil", "-v", f"{vol}:/evil2", "-v", f"{vol}:/up/isola-escape-{t}",
                  "-v", f"{outer}:/w", "-v", f"{vol}:/w/x/sub", f"evil-{t}:1",
                  "cat", "/evil/marker", "/evil2/marker", f"/up/isola-escape-{t}/marker", "/w/x/sub/marker",
                  timeout=BOOT)
    # The container sees its volumes through the links ...
    assert res.returncode == 0, describe(res)
    assert res.stdout == "volume\n" * 4, describe(res)
    # ... because they were resolved in its root, not on the host.
    assert not (tmp_path / "host-missing").exists(), "a mount target was created on the host through a symlink"
    assert tree_state(host_existing) == existing_before
    assert not Path(f"/isola-escape-{t}").exists(), "`..` in a symlink left the rootfs"
    assert not via_volume.exists(), "a symlink inside a volume led a mount target onto the host"


def test_symlink_swapped_during_start_cannot_redirect_a_mount(box, tmp_path):
    """The race of CVE-2021-30465: container A shares a volume with B and
    keeps swapping a directory in it for a symlink pointing (with `..`) at a
    host directory, while B is started again and again with a mount beneath
    that directory. Resolving the target once, inside B's root
    (openat2(RESOLVE_IN_ROOT)) and mounting on the resulting descriptor
    leaves no window; a check-then-mount by path would now and then mount
    or create `sub` in the host directory."""
    shared = tmp_path / "shared"
    shared.mkdir()
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "marker").write_text("inner\n")
    target = tmp_path / "race-target"
    target.mkdir()
    link = UP + str(target)[1:]
    swapper = box.run_d("--cpus", "0.5", "-v", f"{shared}:/shared", IMAGE, "sh", "-c",
                        f"while :; do rm -rf /shared/x; mkdir /shared/x; rm -rf /shared/x; ln -s {link} /shared/x; "
                        "done")
    wait_for(lambda: os.path.lexists(shared / "x"), what="the swapper to start")
    outcomes = []
    for _ in range(12):
        res = box.run("--rm", "-v", f"{shared}:/v", "-v", f"{inner}:/v/x/sub", IMAGE, "cat", "/v/x/sub/marker")
        outcomes.append(res.returncode)
        assert list(target.iterdir()) == [], f"a mount target landed in the host directory: {list(target.iterdir())}"
        assert not any(m.startswith(str(target)) for m in mountpoints())
    # The race was live: the swapper ran all along, and B's set-up went
    # through (its command ran: 0, or 1 when the link moved under `cat`;
    # 125, a set-up that met a half-swapped path and gave up, is safe too).
    assert box.state(swapper)["Status"] == "running"
    assert any(rc != 125 for rc in outcomes), f"B never got past its set-up ({outcomes}): the race was never run"
    box.rm_f(swapper)
    assert list(target.iterdir()) == []


def test_links_the_container_plants_are_not_followed_on_the_host(box, tmp_path):
    """Between runs the rootfs is the container's: it may turn the directory
    holding a mount target (here /data, holding the volume's /data/sub)
    into a symlink to a host directory, and leave links to host paths in
    its upper directory. Restarting the container mounts the volume again,
    and rm removes the upper directory with its links: neither may create,
    write or delete anything through them on the host. (/etc cannot serve:
    overlayfs refuses to rename an image directory, and the files mounted
    on /etc/hostname, /etc/hosts and /etc/resolv.conf cannot be removed.)"""
    sentinel = tmp_path / "sentinel"
    (sentinel / "dir").mkdir(parents=True)
    (sentinel / "dir" / "keep").write_text("keep\n")
    before = tree_state(sentinel)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "marker").write_text("volume\n")
    # (The command runs again at the restart: it plants the links once.)
    cid = box.run_d("-v", f"{vol}:/data/sub", IMAGE, "sh", "-c",
                    f"[ -e /tmp/planted ] || {{ mv /data /data.old && ln -s {sentinel} /data && "
                    f"ln -s {sentinel}/dir /tmp/hostdir && ln -s {UP}{str(sentinel)[1:]} /tmp/updir && "
                    "ln -s / /tmp/root && touch /tmp/planted; }; exec sleep 1000")
    wait_for(lambda: box.exec(cid, "test", "-e", "/tmp/planted").returncode == 0, what="the links")
    res = box("restart", "-t", "1", cid)
    assert res.returncode == 0, describe(res)
    box.wait_status(cid, "running")
    res = box.exec(cid, "sh", "-c", "readlink /data; cat /data/sub/marker")
    assert res.stdout == f"{sentinel}\nvolume\n", describe(res)
    assert tree_state(sentinel) == before, "the restart created or wrote something through a planted symlink"
    box.rm_f(cid)
    assert tree_state(sentinel) == before, "rm followed a symlink the container planted"


@pytest.mark.parametrize("source", ["container", "image"])
def test_passwd_lookup_cannot_be_stalled_by_a_fifo(box, busybox_layout, tmp_path, source):
    """isola reads the container's /etc/passwd (and /etc/group) on the host:
    at create time for the image's user (always, even without -u), and for
    `isola exec -u NAME`. It reads them in the rootfs without following
    links out of it, but the file's type is the image's or the container's
    choice: as a FIFO nobody writes to, an open for reading blocks forever,
    and with it the administrator's command. Expected: isola answers (runs
    or refuses) within seconds. (A hang fails the test through the command's
    timeout.)"""
    if source == "container":
        cid = box.run_d(IMAGE, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd && exec sleep 1000")
        wait_for(lambda: box.exec(cid, "test", "-p", "/etc/passwd").returncode == 0, what="the FIFO")
        box("exec", "-u", "nobody", cid, "true", timeout=20)
    else:
        load_derived_image(box, busybox_layout, tmp_path / "img", "fifo-passwd:1", {},
                           extra_entries=[g.Dir("etc"), g.Fifo("etc/passwd")])
        box.run("--rm", "fifo-passwd:1", "true", timeout=20)


# ---------------------------------------------------------------------------
# Descriptors leaked into the container (CVE-2024-21626 class)


def test_workdir_through_a_leaked_descriptor_stays_inside(box, oci, tmp_path):
    """runc leaked a descriptor of a host directory into the container's
    process; `-w /proc/self/fd/N` then made the host directory its working
    directory, and `..` walked up to the host's root. Whatever descriptor N
    the process has while it changes directory, the working directory must
    lie in the container: walking up must reach the container's root, where
    neither the host's isola binary nor this test's store exists."""
    escape = (f"cd {UP}; for p in usr/local/bin/isola .{box.root}; do "
              "test -e $p && echo ESCAPED $p; done; true")
    cid = box.run_d(IMAGE, "sleep", "1000")
    for n in range(3, 16):
        res = box.run("--rm", "-w", f"/proc/self/fd/{n}", IMAGE, "sh", "-c", escape)
        assert "ESCAPED" not in res.stdout, f"run -w /proc/self/fd/{n}: {describe(res)}"
        res = box("exec", "-w", f"/proc/self/fd/{n}", cid, "sh", "-c", escape)
        assert "ESCAPED" not in res.stdout, f"exec -w /proc/self/fd/{n}: {describe(res)}"

    # A descriptor of a host directory handed in on purpose (isola-runtime
    # --preserve-fds 1) and made the working directory: the runtime checks,
    # as runc does since CVE-2024-21626, that the working directory lies in
    # the root, and refuses it before the command runs.
    b = make_bundle(tmp_path / "bundle", "sh", "-c", escape)
    b.process["cwd"] = "/proc/self/fd/3"
    b.save()
    out = tmp_path / "control.out"
    control_id = oci.new_id("cwd-fd")
    oci.created.append(control_id)
    with open(out, "w") as f:
        proc = subprocess.run(["sh", "-c", f'exec 3<"{tmp_path}" && exec "$@"', "sh", RUNTIME, "--root", str(oci.root),
                               "run", "--preserve-fds", "1", "--bundle", str(b.path), control_id],
                              stdout=f, stderr=subprocess.PIPE, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, f"a host working directory was accepted: {out.read_text()}"
    assert "outside the container's root" in proc.stderr, proc.stderr
    assert "ESCAPED" not in out.read_text()
    # The same descriptor as an ordinary working directory inside is fine.
    b.process["cwd"] = "/tmp"
    b.save()
    ok_id = oci.new_id("cwd-ok")
    oci.created.append(ok_id)
    proc = subprocess.run(["sh", "-c", f'exec 3<"{tmp_path}" && exec "$@"', "sh", RUNTIME, "--root", str(oci.root),
                           "run", "--preserve-fds", "1", "--bundle", str(b.path), ok_id],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "ESCAPED" not in proc.stdout, f"{proc.stdout} {proc.stderr}"


# ---------------------------------------------------------------------------
# /proc and /sys


def test_kernel_knobs_an_escape_writes_are_read_only(box):
    """core_pattern (a pipe handler runs as root on the host), modprobe (run
    by the kernel as root), sysrq-trigger, sysfs: all must refuse writes.
    The values written are the host's current ones, so nothing changes even
    if a write got through; the test reads the error instead."""
    knobs = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
             "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper"]
    knobs = [k for k in knobs if os.path.exists(k)]
    values = {}
    for k in knobs:
        v = Path(k).read_text().strip()
        m = re.search(r"\[(\w+)\]", v)  # "always [madvise] never"
        values[k] = m.group(1) if m else v
    script = "; ".join(f"(printf '%s\\n' '{values[k]}' > {k}) 2>&1 | sed 's|^|{k}: |'" for k in knobs)
    sysrq = os.path.exists("/proc/sysrq-trigger")  # not on kernels without CONFIG_MAGIC_SYSRQ
    if sysrq:
        script += "; (echo h > /proc/sysrq-trigger) 2>&1 | sed 's|^|sysrq: |'"
    script += "; mkdir -p /tmp/cg; mount -t cgroup -o memory cgroup /tmp/cg 2>&1 | sed 's|^|cgroup: |'"
    script += "; find /sys/fs/cgroup -name release_agent 2>/dev/null | sed 's|^|release_agent: |'"
    res = box.run("--rm", IMAGE, "sh", "-c", script)
    lines = res.stdout.splitlines()
    for k in knobs:
        assert any(l.startswith(k + ":") and "Read-only file system" in l for l in lines), \
            f"{k} was writable: {describe(res)}"
    if sysrq:
        assert any(l.startswith("sysrq:") and "Read-only file system" in l for l in lines), describe(res)
    assert any(l.startswith("cgroup:") for l in lines), f"a cgroup hierarchy could be mounted: {describe(res)}"
    assert not any(l.startswith("release_agent:") for l in lines), describe(res)


# ---------------------------------------------------------------------------
# Devices


def host_kernel_log():
    return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout


def test_device_nodes_outside_the_default_set_cannot_be_opened(box, tmp_path):
    """CAP_MKNOD is a default capability. The rootfs is mounted nodev, so a
    node made there proves nothing; /dev (a tmpfs) and a volume are not
    nodev, so only the devices cgroup (v1) or the device program (v2)
    stands between a node the container makes and the host's device. The node is /dev/kmsg (1:11), the host's
    kernel log, which anyone may open for writing: a line written there
    would show in the host's dmesg. Where the host can read its own disk,
    a node for it is tried too. Control: --privileged (every device
    allowed) writes its line into the host's log."""
    t = token()
    vol = tmp_path / "vol"
    vol.mkdir()
    script = (f"mknod /dev/km c 1 11 && (echo {t}-dev > /dev/km) 2>&1; "
              f"mknod /v/km c 1 11 && (echo {t}-vol > /v/km) 2>&1")
    disk = host_block_device()
    try:
        with open(f"/dev/{disk[0]}", "rb") as f:
            readable = len(f.read(512)) == 512
    except (OSError, TypeError):
        readable = False  # (this CI's hypervisor refuses even the host's root)
    if readable:
        script += f"; mknod /dev/hd b {disk[1]} {disk[2]} && echo disk $(head -c 512 /dev/hd | wc -c)"
    res = box.run("--rm", "-v", f"{vol}:/v", IMAGE, "sh", "-c", script)
    assert t not in host_kernel_log(), f"the container wrote to the host's kernel log: {describe(res)}"
    assert res.stdout.count("Operation not permitted") == 2, describe(res)
    if readable:
        assert "disk 0" in res.stdout, f"read the host's /dev/{disk[0]}: {describe(res)}"
    os.unlink(vol / "km")
    res = box.run("--rm", "--privileged", IMAGE, "sh", "-c", f"mknod /dev/km c 1 11 && echo {t}-control > /dev/km")
    assert res.returncode == 0, describe(res)
    assert f"{t}-control" in host_kernel_log(), f"control: --privileged did not reach the host's log: {describe(res)}"


# ---------------------------------------------------------------------------
# Keyrings


def test_the_callers_session_keyring_stays_out_of_reach(box, oci, probe, tmp_path):
    """The caller of isola (a shell, an engine) may hold keys in its session
    keyring; fork and exec pass it on. The container must start with a
    fresh one. seccomp already refuses keyctl (test below), so the filter is
    off here (seccomp=unconfined) to test the keyring itself. The key is
    readable only by its possessors, so finding it means holding the
    caller's keyring. Control: isola-runtime --no-new-keyring keeps the
    caller's keyring and the probe finds the key."""
    desc = f"isola-escape-{token()}"
    host_file = tmp_path / "host-keyring"
    res = subprocess.run([str(probe / "probe"), "with-key", desc, str(host_file),
                          *box.cmd("run", "--rm", "--security-opt", "seccomp=unconfined",
                                   "-v", f"{probe}:/probe:ro", IMAGE, "/probe/probe", "keyring", desc)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, describe(res)
    session, key = host_file.read_text().split()
    seen = pairs(res.stdout)
    assert seen["session"] != session, f"the container runs in the caller's session keyring: {describe(res)}"
    assert seen["search"] == "ENOKEY", f"the container reached the caller's key: {describe(res)}"

    # The OCI front end, with its default and with --no-new-keyring (control).
    bundle = make_bundle(tmp_path / "bundle", "/probe", "keyring", desc)
    shutil.copy2(probe / "probe", bundle.rootfs / "probe")
    bundle.config["linux"].pop("seccomp", None)
    bundle.save()
    results = {}
    for flags in ((), ("--no-new-keyring",)):
        cid = oci.new_id("keyring-new" if not flags else "keyring-kept")
        oci.created.append(cid)
        out = tmp_path / f"{cid}.out"
        with open(out, "w") as f:
            proc = subprocess.run([str(probe / "probe"), "with-key", desc, str(host_file),
                                   RUNTIME, "--root", str(oci.root), "run", *flags, "--bundle", str(bundle.path), cid],
                                  stdout=f, stderr=subprocess.PIPE, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        session, key = host_file.read_text().split()
        results[flags] = (pairs(out.read_text()), session, key)
    seen, session, key = results[()]
    assert seen["session"] != session and seen["search"] == "ENOKEY", f"isola-runtime: {seen}"
    seen, session, key = results[("--no-new-keyring",)]
    assert seen["search"] == key, f"control: the probe did not find the key in a kept keyring: {seen}"


def test_exec_does_not_bring_the_callers_keyring_in(box, probe, tmp_path):
    """The same for `isola exec`: the process it starts in a running
    container must not hold the caller's session keyring either (runc joins
    a fresh one for exec as for the init). Otherwise, wherever keyctl is
    allowed (seccomp=unconfined, a custom profile), the exec'd process, and
    any process of the container that ptraces it, reaches the caller's
    keys."""
    desc = f"isola-escape-{token()}"
    host_file = tmp_path / "host-keyring"
    cid = box.run_d("--security-opt", "seccomp=unconfined", "-v", f"{probe}:/probe:ro", IMAGE, "sleep", "1000")
    res = subprocess.run([str(probe / "probe"), "with-key", desc, str(host_file),
                          *box.cmd("exec", cid, "/probe/probe", "keyring", desc)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, describe(res)
    session, key = host_file.read_text().split()
    seen = pairs(res.stdout)
    assert seen["search"] != key, f"the exec'd process holds the caller's key {key}: {describe(res)}"
    assert seen["session"] != session, f"the exec'd process runs in the caller's session keyring: {describe(res)}"


# ---------------------------------------------------------------------------
# seccomp


def test_seccomp_refuses_the_calls_escapes_need(box, probe):
    """keyctl/add_key (the host's keys), bpf, mount, unshare and clone with
    namespace flags, setns, open_by_handle_at ("shocker"), finit_module.
    With --cap-add ALL no capability check stops them, so only the filter
    can. Control: the same container with seccomp=unconfined gets past
    every one of them to the kernel (an answer other than EPERM)."""
    confined = probe_sys(box, probe, "--cap-add", "ALL")
    assert {n: confined.get(n) for n in ESCAPE_SYSCALLS} == {n: "EPERM" for n in ESCAPE_SYSCALLS}, confined
    unconfined = probe_sys(box, probe, "--cap-add", "ALL", "--security-opt", "seccomp=unconfined")
    for n in ESCAPE_SYSCALLS:
        assert unconfined.get(n) not in (None, "EPERM"), f"control: {n} was refused without the filter: {unconfined}"


# ---------------------------------------------------------------------------
# Processes: the pid namespace


def test_host_processes_are_invisible_and_unreachable(box, oci, probe, tmp_path):
    """Inside, only the container's processes exist: its init's parent (the
    monitor) and every host process have no PID there, so they can be
    neither signalled nor ptrace'd. The probe can attach to the container's
    own init (same user, nothing more privileged), which shows its ptrace
    works. Control: an OCI container without a pid namespace sees the
    host's processes."""
    cid = box.run_d("-v", f"{probe}:/probe:ro", IMAGE, "sleep", "1000")
    init = box.state(cid)["Pid"]
    monitor = int(host_status(init, "PPid"))
    me = os.getpid()
    listing = ("for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\000' ' ' < $p/cmdline)\"; done")
    res = box.exec(cid, "sh", "-c", listing)
    assert res.returncode == 0, describe(res)
    inside = pairs(res.stdout)
    for pid, cmd in inside.items():
        assert not re.search(r"pytest|python|isola", cmd), f"host process {pid} visible inside: {cmd}"
    assert str(monitor) not in inside and str(me) not in inside, sorted(inside)
    res = box.exec(cid, "/probe/probe", "ptrace", str(monitor), str(me), "1")
    got = pairs(res.stdout)
    assert got[str(monitor)] == "ESRCH" and got[str(me)] == "ESRCH", describe(res)
    assert got["1"] == "ok", f"control: the probe could not ptrace the container's own init: {describe(res)}"
    assert host_status(init, "PPid") == str(monitor)  # the monitor lives on, untouched

    b = make_bundle(tmp_path / "hostpid", "sh", "-c", "for p in /proc/[0-9]*; do echo ${p#/proc/}; done")
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"] if n["type"] != "pid"]
    b.save()
    res = oci("run", "--bundle", b.path, oci.new_id("hostpid"))
    assert str(me) in res.stdout.split(), f"control: without a pid namespace the host was not visible: {res}"


# ---------------------------------------------------------------------------
# Mount propagation


def test_mounts_made_inside_do_not_propagate_to_the_host(box, tmp_path):
    """A privileged container (it may mount) mounts a tmpfs beneath a volume
    whose host directory is a shared mount. Had the container's copy of the
    volume stayed in the host mount's peer group, the tmpfs would appear on
    the host; the control shows that it would."""
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    t = token()
    with SharedMount(vol) as shared:
        shared.assert_propagation_works(vol / "sub")
        res = box.run("--rm", "--privileged", "-v", f"{vol}:/v", IMAGE, "sh", "-c",
                      f"mount -t tmpfs inner-{t} /v/sub && echo inside > /v/sub/file && "
                      f"mkdir -p /mnt/x && mount -t tmpfs other-{t} /mnt/x && grep -c {t} /proc/self/mountinfo")
        assert res.returncode == 0 and res.stdout.strip() == "2", describe(res)
        assert not any(t in s for s in host_mount_sources()), "a container's mount appeared on the host"
        assert str(vol / "sub") not in mountpoints()
        assert not (vol / "sub" / "file").exists()


# ---------------------------------------------------------------------------
# Network


class HostListeners:
    """A TCP listener on the host's 127.0.0.1 and an abstract Unix socket
    (both are per network namespace)."""

    def __init__(self):
        self.name = f"isola-escape-{token()}"

    def __enter__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.port = self.tcp.getsockname()[1]
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.name)
        self.unix.listen(1)
        # Accepts and closes at once, so that a client that did connect
        # (the control) sees the end of the stream and exits.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
                conn.close()
            except OSError:
                pass

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.tcp.close()
        self.unix.close()

    def script(self):
        return (f"nc -w 3 127.0.0.1 {self.port} </dev/null && echo CONNECTED; "
                f"grep -c {self.name} /proc/net/unix; ls /sys/class/net")


@pytest.mark.parametrize("network,links", [("none", ["lo"]), ("bridge", ["eth0", "lo"])])
def test_network_none_cannot_reach_the_hosts_network(box, network, links):
    """--network none and the default bridge: the host's loopback services
    and abstract Unix sockets are in another network namespace (and the
    bridge does not route to the host's 127.0.0.1). Control: --network host
    reaches both."""
    with HostListeners() as host:
        res = box.run("--rm", "--network", network, IMAGE, "sh", "-c", host.script())
        lines = res.stdout.split()
        assert "CONNECTED" not in lines, f"reached the host's 127.0.0.1:{host.port}: {describe(res)}"
        assert lines[0] == "0", f"the host's abstract socket is visible: {describe(res)}"
        assert lines[1:] == links, describe(res)
        res = box.run("--rm", "--network", "host", IMAGE, "sh", "-c", host.script())
        assert "CONNECTED" in res.stdout.split(), f"control: --network host did not connect: {describe(res)}"
        assert res.stdout.split()[1] == "1", f"control: {describe(res)}"


# ---------------------------------------------------------------------------
# VM isolation: the guest, its worker and the 9p shares


def test_vm_privileged_guest_sees_nothing_of_the_host(box, tmp_path):
    """A VM's container is assumed able to own its guest kernel; --privileged
    gives it that directly (every capability, no seccomp, /proc/sys
    writable). Even so it sees no host process, reaches no host loopback
    service (its NIC is on the bridge; the guest's 127.0.0.1 is its own), and a mount it makes on a
    volume stays in the guest, though the volume's host directory is a
    shared mount (the control shows that propagation would be visible)."""
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    t = token()
    with HostListeners() as host, SharedMount(vol) as shared:
        shared.assert_propagation_works(vol / "sub")
        cid = box.run_d(VM, "--privileged", "-v", f"{vol}:/v", IMAGE, "sleep", "1000", timeout=BOOT)
        res = box.exec(cid, "sh", "-c", host.script(), timeout=60)
        lines = res.stdout.split()
        assert "CONNECTED" not in lines, f"the guest reached the host's 127.0.0.1:{host.port}: {describe(res)}"
        assert lines[0] == "0" and lines[1:] == ["eth0", "lo"], describe(res)
        res = box.exec(cid, "sh", "-c", "for p in /proc/[0-9]*; do tr '\\000' ' ' < $p/cmdline; echo; done",
                       timeout=60)
        assert res.returncode == 0, describe(res)
        assert not re.search(r"pytest|python|isola-monitor|qemu", res.stdout), describe(res)
        res = box.exec(cid, "sh", "-c", f"mount -t tmpfs inner-{t} /v/sub && echo inside > /v/sub/file && "
                       f"grep -c {t} /proc/self/mountinfo", timeout=60)
        assert res.returncode == 0 and res.stdout.strip() == "1", describe(res)
        assert not any(t in s for s in host_mount_sources())
        assert not (vol / "sub" / "file").exists(), "a file written to the guest's tmpfs reached the host"
        box.rm_f(cid)


def test_vm_guest_applies_the_same_defaults_and_the_worker_is_confined(box, probe):
    """Inside the guest the container gets process isolation's defaults too
    (defence in depth before the guest kernel): seccomp refuses the same
    calls even with every capability, /proc/sys and sysrq-trigger are
    read-only, /proc/keys is masked. On the host, the VM's worker (QEMU)
    keeps only the capabilities 9p needs, in a user namespace of its own, has no_new_privs, and runs under
    a seccomp filter (-sandbox on)."""
    found = host_block_device()
    cid = box.run_d(VM, "--cap-add", "ALL", "-v", f"{probe}:/probe:ro", IMAGE, "sleep", "1000", timeout=BOOT)
    worker = box.inspect(cid)["VM"]["WorkerPid"]
    assert int(host_status(worker, "CapBnd"), 16) == WORKER_CAPS, host_status(worker, "CapBnd")
    assert int(host_status(worker, "CapEff"), 16) & ~WORKER_CAPS == 0, host_status(worker, "CapEff")
    assert host_status(worker, "NoNewPrivs") == "1"
    assert host_status(worker, "Seccomp") == "2", "QEMU runs without its -sandbox filter"
    assert host_status(worker, "Seccomp_filters") == "2", "isola's filter and QEMU's -sandbox"
    assert os.readlink(f"/proc/{worker}/ns/user") != os.readlink("/proc/self/ns/user"), "not in a user namespace"

    res = box.exec(cid, "/probe/probe", "sys", timeout=60)
    got = pairs(res.stdout)
    assert {n: got.get(n) for n in ESCAPE_SYSCALLS} == {n: "EPERM" for n in ESCAPE_SYSCALLS}, describe(res)
    script = ("grep Seccomp: /proc/self/status; (echo h > /proc/sysrq-trigger) 2>&1; "
              "(cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern) 2>&1; "
              "echo keys $(cat /proc/keys | wc -c)")
    if found:
        _, major, minor = found
        script += f"; mknod /dev/hd b {major} {minor} && echo disk $(head -c 512 /dev/hd 2>/dev/null | wc -c)"
    res = box.exec(cid, "sh", "-c", script, timeout=60)
    out = res.stdout
    assert re.search(r"Seccomp:\s+2", out), describe(res)
    assert out.count("Read-only file system") == 2, describe(res)
    assert "keys 0" in out, describe(res)
    if found:
        # The guest has no such device: the host's disk is not in the VM.
        assert "disk 0" in out, describe(res)
    box.rm_f(cid)


def test_vm_9p_symlinks_and_dotdot_stay_in_the_share(box, tmp_path):
    """The rootfs and volumes reach the guest over 9p, served by QEMU on the
    host. Links the guest makes (absolute, or with `..`), links a volume
    holds, and `..` past a share's root must all resolve in the guest's
    tree, never in the host's: the host's secret and /etc/shadow stay
    unread, files created through such links land inside the rootfs, and
    no device node is made on the host through a share. QEMU's local
    back end opens every path component under the export with O_NOFOLLOW;
    a server that followed links on the host would hand out the secret."""
    secret = tmp_path / "host-secret"
    secret.write_text("host secret do not read\n")
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink(str(secret), vol / "out-abs")
    os.symlink(UP + str(secret)[1:], vol / "out-rel")
    shadow = Path("/etc/shadow").read_text().splitlines()[0] if os.path.exists("/etc/shadow") else None
    s, h = str(secret), str(hostdir)
    cid = box.run_d(VM, "-v", f"{vol}:/v", IMAGE, "sleep", "1000", timeout=BOOT)
    script = (f"ln -s {s} /abs; ln -s {UP}{s[1:]} /rel; ln -s /etc/shadow /shadow; "
              f"for f in /abs /rel /shadow /v/out-abs /v/out-rel /v/{UP}{s[1:]} /../../..{s}; do "
              "cat $f 2>/dev/null; done; "
              f"mkdir -p {h}; ln -s {h}/created-abs /plant-abs; echo planted > /plant-abs; "
              f"ln -s {UP}{h[1:]}/created-rel /plant-rel; echo planted > /plant-rel; "
              f"echo planted > /v/{UP}{h[1:]}/created-dotdot; "
              "cd /v && cd ../../../.. && echo top $(pwd); "
              "mknod /tmp/node c 1 11; mknod /v/node c 1 11; true")
    res = box.exec(cid, "sh", "-c", script, timeout=60)
    assert "host secret" not in res.stdout, f"the guest read a host file through 9p: {describe(res)}"
    if shadow:
        assert shadow not in res.stdout, f"the guest read the host's /etc/shadow: {describe(res)}"
    assert "top /" in res.stdout, describe(res)
    assert list(hostdir.iterdir()) == [], f"a file created in the guest landed on the host: {list(hostdir.iterdir())}"
    # A node for the host's /dev/kmsg made through a share would be a real
    # node on the host (QEMU creates files as root): QEMU must refuse it.
    for node in (upper_dir(box, cid) / "tmp" / "node", vol / "node"):
        assert not (node.exists() and stat.S_ISCHR(os.lstat(node).st_mode)), f"device node {node} made on the host"
    landed = upper_dir(box, cid) / h[1:]
    for name in ("created-abs", "created-rel", "created-dotdot"):
        assert (landed / name).read_text() == "planted\n", f"{name} did not land inside the rootfs"
    box.rm_f(cid)


def test_vm_single_file_volume_shares_only_that_file(box, tmp_path):
    """A VM's container is assumed able to own its guest (here: --privileged
    and a core_pattern handler, which the guest kernel runs as root in the
    agent's namespaces, where the 9p shares are mounted). What it can then
    read is what the host shares. `-v DIR/app.conf:/app.conf:ro` asks for
    one file: DIR's other files must stay out of the guest. The handler
    copies every share but the rootfs into the container's /tmp; that the
    shared file arrives shows the handler ran."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.conf").write_text("the shared file\n")
    (conf / "secret").write_text("a sibling the guest must not read\n")
    handler = ("B=/run/isola/rootfs/bin/busybox\n"
               "$B mkdir -p /run/isola/rootfs/tmp/loot\n"
               "for d in /run/isola/*; do [ \"$d\" = /run/isola/rootfs ] || $B cp -r \"$d\" /run/isola/rootfs/tmp/loot/; done\n"
               "$B touch /run/isola/rootfs/tmp/loot/.ran\n")
    script = ("cat > /tmp/h.sh <<'EOF'\n" + handler + "EOF\n"
              "echo '|/run/isola/rootfs/bin/busybox sh /run/isola/rootfs/tmp/h.sh' > /proc/sys/kernel/core_pattern\n"
              "sh -c 'kill -SEGV $$'\n"
              "for i in $(seq 100); do [ -e /tmp/loot/.ran ] && break; sleep 0.1; done\n"
              "[ -e /tmp/loot/.ran ] && echo RAN\n"
              "cat /tmp/loot/*/* 2>/dev/null\n")
    res = box.run("--rm", VM, "--privileged", "-v", f"{conf}/app.conf:/app.conf:ro", IMAGE, "sh", "-c", script,
                  timeout=BOOT)
    assert "RAN" in res.stdout, f"the core_pattern handler did not run: the check proves nothing: {describe(res)}"
    assert "the shared file" in res.stdout, describe(res)
    assert "must not read" not in res.stdout, \
        f"the guest read a file beside the single-file volume (its whole directory is shared): {describe(res)}"
