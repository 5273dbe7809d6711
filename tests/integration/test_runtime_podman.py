"""podman (with conmon) using isola-runtime as its OCI runtime, in both
isolation levels: what a podman user sees — output, exit codes, -it,
exec, top, logs, stop — and that the host does not see a VM-isolated
container's processes."""

import re
import uuid

import pytest

from containers import PtySession
from engines import describe, host_kernel, host_processes, no_leaks, podman_with_busybox  # noqa: F401

LEVELS = ["process", "vm"]


pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(scope="module")
def podman(tmp_path_factory, busybox_layout):
    p = podman_with_busybox(tmp_path_factory.mktemp("podman"), busybox_layout)
    yield p
    p.cleanup()


@pytest.fixture
def named(podman):
    """A unique container name, removed after the test."""
    names = []

    def make():
        names.append(f"t-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    for n in names:
        podman("rm", "-f", "-t", "0", n)


@pytest.mark.parametrize("isolation", LEVELS)
def test_run_output_and_exit_code(podman, isolation):
    res = podman("run", "--rm", *podman.run_args(isolation), "busybox",
                 "sh", "-c", "echo out; echo err >&2; uname -r; exit 3")
    assert res.returncode == 3, describe(res)
    lines = res.stdout.split()
    assert lines[0] == "out" and "err" in res.stderr, describe(res)
    # The guest's own kernel with VM isolation, the host's without.
    assert (lines[1] == host_kernel()) == (isolation == "process"), describe(res)


@pytest.mark.parametrize("isolation", LEVELS)
def test_run_missing_command_fails_like_runc(podman, isolation):
    res = podman("run", "--rm", *podman.run_args(isolation), "busybox", "/no/such/program")
    assert res.returncode == 127, describe(res)
    assert "no/such/program" in res.stderr, describe(res)


@pytest.mark.parametrize("isolation", LEVELS)
def test_run_interactive_terminal(podman, isolation):
    term = PtySession(podman.cmd("run", "-it", "--rm", *podman.run_args(isolation), "busybox", "sh"),
                      rows=30, cols=100)
    try:
        term.expect(r"# ")
        term.send("tty; echo $((6*7)); exit 4\r")
        term.expect(r"^42\r?$")
        assert term.wait() == 4, term.text()
        assert re.search(r"^/dev/(pts/\d+|console)\r?$", term.text(), re.M), term.text()
    finally:
        term.kill()


@pytest.mark.parametrize("isolation", LEVELS)
def test_detached_exec_top_logs_stop(podman, named, isolation):
    name = named()
    marker = str(1000000 + uuid.uuid4().int % 1000000)
    podman("run", "-d", "--name", name, *podman.run_args(isolation), "busybox",
           "sh", "-c", f"echo logged line; exec sleep {marker}", check=True)

    res = podman("exec", name, "sh", "-c", "echo from exec; exit 6")
    assert res.returncode == 6 and res.stdout == "from exec\n", describe(res)

    # `top` with ps(1) options runs ps inside the container: the guest's
    # processes for a VM, the container's for process isolation.
    top = podman("top", name, "-eo", "pid,args", check=True).stdout
    assert re.search(rf"^\s*1\s+sleep {marker}$", top, re.M), top

    # The host: the process-isolated sleep is a host process; the
    # VM-isolated one is not (only the VM's worker is).
    visible = re.search(rf"sleep {marker}", host_processes()) is not None
    assert visible == (isolation == "process"), host_processes()

    assert "logged line" in podman("logs", name, check=True).stdout
    res = podman("stop", "-t", "2", name)
    assert res.returncode == 0, describe(res)
    state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, check=True).stdout.split()
    assert state == ["exited", "137"], state
    assert f"sleep {marker}" not in host_processes()


@pytest.mark.parametrize("isolation", LEVELS)
def test_exec_interactive_terminal(podman, named, isolation):
    name = named()
    podman("run", "-d", "--name", name, *podman.run_args(isolation), "busybox", "sleep", "1000", check=True)
    term = PtySession(podman.cmd("exec", "-it", name, "sh"), rows=30, cols=100)
    try:
        term.expect(r"# ")
        term.send("echo $((7*8)); exit 5\r")
        term.expect(r"^56\r?$")
        assert term.wait() == 5, term.text()
    finally:
        term.kill()


def test_vm_top_shows_only_the_vm_worker(podman, named):
    """Plain `podman top` reads /proc in the container's pid namespace as
    the host has it: for a VM that is the keeper and the VM worker."""
    name = named()
    podman("run", "-d", "--name", name, *podman.run_args("vm"), "busybox", "sleep", "1000", check=True)
    top = podman("top", name, check=True).stdout
    assert "qemu-system" in top and "sleep 1000" not in top, top
