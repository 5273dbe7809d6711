"""containerd (its runc v2 shim, driven with ctr) using isola-runtime in
both isolation levels, with the runtime handlers of docs/kubernetes.md:
the configuration is read from that document, containerd must accept it,
and the runs go through the binaries it names."""

import re
import tomllib
import uuid
from pathlib import Path

import pytest

from containers import PtySession
from engines import (Containerd, describe, host_kernel, host_processes, kubernetes_doc_config, layout_tar,  # noqa: F401
                     no_leaks, wait_for)

IMAGE = "busybox:latest"
doc_config = kubernetes_doc_config


def binaries():
    """Handler name → BinaryName, as the document configures them."""
    runtimes = tomllib.loads(doc_config())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    for r in runtimes.values():
        assert r["runtime_type"] == "io.containerd.runc.v2"
    return {name: r["options"]["BinaryName"] for name, r in runtimes.items() if name != "runc"}


# (isolation, how it is chosen): the handler's binary, or the annotation.
CASES = [("process", "isola"), ("vm", "isola-vm"), ("vm", "annotation")]


pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(scope="module")
def ctr(tmp_path_factory, busybox_layout):
    base = tmp_path_factory.mktemp("containerd")
    c = Containerd(base, doc_config())
    try:
        c("images", "import", layout_tar(busybox_layout, base / "busybox.tar"), check=True)
        yield c
    finally:
        c.stop()


def run_flags(case):
    isolation, how = case
    table = binaries()
    if how == "annotation":
        return ["--runc-binary", table["isola"], "--annotation", "io.isola.isolation=vm"]
    return ["--runc-binary", table[how]]


def test_containerd_accepts_the_documented_runtime_handlers(ctr):
    assert set(binaries()) == {"isola", "isola-vm"}
    plugins = ctr("plugins", "ls", check=True).stdout
    cri = [line for line in plugins.splitlines() if re.search(r"\bcri\b", line)]
    assert cri and all(line.split()[-1] == "ok" for line in cri), plugins


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_ctr_run_output_and_exit_code(ctr, case):
    name = f"t-{uuid.uuid4().hex[:10]}"
    res = ctr("run", "--rm", *run_flags(case), IMAGE, name, "sh", "-c", "echo out; uname -r; exit 3")
    assert res.returncode == 3, describe(res) + ctr.log_tail()
    out, kernel = res.stdout.split()
    assert out == "out"
    assert (kernel == host_kernel()) == (case[0] == "process"), res.stdout


@pytest.mark.parametrize("case", CASES[:2], ids=["-".join(c) for c in CASES[:2]])
def test_ctr_run_terminal(ctr, case):
    name = f"t-{uuid.uuid4().hex[:10]}"
    term = PtySession(ctr.cmd("run", "--rm", "-t", *run_flags(case), IMAGE, name, "sh"))
    try:
        term.expect(r"# ")
        term.send("echo $((6*7)); exit 4\r")
        term.expect(r"^42\r*$")
        assert term.wait() == 4, term.text()
    finally:
        term.kill()


@pytest.mark.parametrize("case", CASES[:2], ids=["-".join(c) for c in CASES[:2]])
def test_ctr_task_exec_ps_kill(ctr, case):
    name = f"t-{uuid.uuid4().hex[:10]}"
    marker = str(2000000 + uuid.uuid4().int % 1000000)
    ctr("run", "-d", *run_flags(case), IMAGE, name, "sleep", marker, check=True)
    try:
        res = ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c", "echo from exec; exit 7")
        assert res.returncode == 7 and res.stdout == "from exec\n", describe(res)

        # The task's host PIDs: the container's process itself, or (VM) the
        # keeper, isola's monitor and QEMU — never the guest's sleep.
        pids = [line.split()[0] for line in ctr("task", "ps", name, check=True).stdout.splitlines()[1:]]
        commands = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in pids]
        if case[0] == "process":
            assert commands == [f"sleep {marker} "], commands
        else:
            assert any("qemu-system" in c for c in commands), commands
            assert not any(f"sleep {marker}" in c for c in commands), commands
        visible = f"sleep {marker}" in host_processes()
        assert visible == (case[0] == "process")

        ctr("task", "kill", "-s", "SIGKILL", name, check=True)
        wait_for(lambda: re.search(rf"^{name}\s+\d+\s+STOPPED", ctr("task", "ls").stdout, re.M),
                 60, "the task to stop")
    finally:
        ctr("task", "delete", "-f", name)
        ctr("container", "delete", name)
    assert all(not Path(f"/proc/{p}").exists() for p in pids), "the task's processes outlived it"


def test_ctr_vm_tasks_are_clones_of_a_vm_template(ctr):
    """isola-runtime drives the same VM monitor as isola run: once a VM of
    this shape has booted (and left a template), the next ones are clones."""
    flags = run_flags(("vm", "isola-vm"))
    res = ctr("run", "--rm", *flags, IMAGE, f"t-{uuid.uuid4().hex[:10]}", "true")
    assert res.returncode == 0, describe(res) + ctr.log_tail()
    name = f"t-{uuid.uuid4().hex[:10]}"
    ctr("run", "-d", *flags, IMAGE, name, "sleep", "1000", check=True)
    try:
        pids = [line.split()[0] for line in ctr("task", "ps", name, check=True).stdout.splitlines()[1:]]
        commands = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") for p in pids]
        [qemu] = [c for c in commands if c and c[0].endswith(b"qemu-system-x86_64")]
        assert b"-incoming" in qemu and any(b"share=off" in a for a in qemu), qemu
        res = ctr("task", "exec", "--exec-id", "e1", name, "cat", "/proc/sys/kernel/random/boot_id")
        assert res.returncode == 0 and len(res.stdout.strip()) == 36, describe(res)
    finally:
        ctr("task", "kill", "-s", "SIGKILL", name)
        wait_for(lambda: re.search(rf"^{name}\s+\d+\s+STOPPED", ctr("task", "ls").stdout, re.M),
                 60, "the task to stop")
        ctr("task", "delete", "-f", name)
        ctr("container", "delete", name)
