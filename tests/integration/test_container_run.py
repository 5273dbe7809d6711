"""`isola run` as a docker user sees it: output and exit codes, the process
and host-name view inside, environment, working directory, user, entrypoint,
--rm, names, labels, create + start, stdin."""

import os
import re
import subprocess
import time

from containers import IMAGE, TIMEOUT, box, describe, load_derived_image  # noqa: F401


# -- output and exit codes


def test_stdout_and_stderr_are_separate(box):
    res = box.run(IMAGE, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "out\nout2\n"
    assert res.stderr == "err\n"


def test_exit_code_is_the_containers(box):
    res = box.run(IMAGE, "sh", "-c", "exit 3")
    assert res.returncode == 3, describe(res)
    res = box.run(IMAGE, "true")
    assert res.returncode == 0, describe(res)
    res = box.run(IMAGE, "false")
    assert res.returncode == 1, describe(res)


def test_command_not_found_is_127(box):
    res = box.run(IMAGE, "nonexistent")
    assert res.returncode == 127, describe(res)
    assert "nonexistent" in res.stderr, describe(res)


def test_command_not_executable_is_126(box):
    res = box.run(IMAGE, "/etc")
    assert res.returncode == 126, describe(res)
    res = box.run(IMAGE, "/etc/passwd")
    assert res.returncode == 126, describe(res)


def test_unknown_image_is_125(box):
    res = box.run("nosuchimage")
    assert res.returncode == 125, describe(res)
    assert "nosuchimage" in res.stderr, describe(res)
    assert box.ids() == [], "a failed run left a container"


def test_unknown_run_flag_is_125(box):
    res = box.run("--no-such-flag", IMAGE, "true")
    assert res.returncode == 125, describe(res)
    assert box.ids() == []


def test_container_exit_records_the_code(box):
    box.run("--name", "three", IMAGE, "sh", "-c", "exit 3")
    st = box.state("three")
    assert st["Status"] == "exited"
    assert st["ExitCode"] == 3
    assert st["Running"] is False
    assert st["Pid"] == 0


def test_killed_from_outside_exits_128_plus_signal(box):
    """An attached run whose container is killed (isola kill) exits 137."""
    proc = subprocess.Popen(box.cmd("run", "--name", "victim", IMAGE, "sleep", "1000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        box.wait_status("victim", "running")
        box.ok("kill", "victim")
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 137, f"exit {proc.returncode}\n{out}\n{err}"
    assert box.state("victim")["ExitCode"] == 137


def test_signal_killing_a_child_of_init_is_reported(box):
    """With --init the command is not PID 1, so `kill -9 $$` kills it:
    exit 128+9."""
    res = box.run("--init", IMAGE, "sh", "-c", "kill -9 $$")
    assert res.returncode == 137, describe(res)


def test_large_output_is_complete(box):
    res = box.run(IMAGE, "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end >&2")
    assert res.returncode == 0, describe(res)
    assert len(res.stdout) == 3000001
    assert set(res.stdout[:-1]) == {"x"}
    assert res.stderr == "end\n"


# -- the process view


def test_pid_1_is_the_command(box):
    res = box.run(IMAGE, "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
    assert res.returncode == 0, describe(res)
    assert res.stdout.splitlines() == ["1", "sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' ' "]


def test_host_processes_are_invisible(box):
    res = box.run(IMAGE, "ps", "-o", "pid,comm")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert [l.split() for l in lines[1:]] == [["1", "ps"]], res.stdout
    # /proc has the container's processes only: ls itself, as PID 1.
    res = box.run(IMAGE, "ls", "/proc")
    assert res.returncode == 0, describe(res)
    assert [n for n in res.stdout.split() if n.isdigit()] == ["1"], res.stdout
    res = box.run(IMAGE, "test", "-e", f"/proc/{os.getpid()}")
    assert res.returncode == 1, describe(res)
    # This test's own (host) PID is not reachable by signals from inside.
    res = box.run(IMAGE, "kill", "-0", str(os.getpid()))
    assert res.returncode != 0, describe(res)


# -- host name and /etc files


def test_default_hostname_is_the_short_id(box):
    res = box.run("--name", "h", IMAGE, "sh", "-c", "hostname; cat /etc/hostname")
    assert res.returncode == 0, describe(res)
    cid = box.inspect("h")["Id"]
    assert res.stdout.split() == [cid[:12], cid[:12]]
    assert box.inspect("h")["Config"]["Hostname"] == cid[:12]


def test_hostname_flag(box):
    res = box.run("-h", "myhost", IMAGE, "sh", "-c", "hostname; cat /etc/hostname; grep myhost /etc/hosts")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[:2] == ["myhost", "myhost"]
    assert len(lines) >= 3 and "myhost" in lines[2].split(), res.stdout
    res = box.run("--hostname", "other", IMAGE, "hostname")
    assert res.stdout == "other\n", describe(res)
    assert os.uname().nodename not in ("myhost", "other")


def test_etc_files_exist(box):
    res = box.run(IMAGE, "sh", "-c",
                  "test -f /etc/hostname && test -f /etc/hosts && test -f /etc/resolv.conf && cat /etc/hosts")
    assert res.returncode == 0, describe(res)
    assert re.search(r"^127\.0\.0\.1\s.*\blocalhost\b", res.stdout, re.M), res.stdout


# -- environment, working directory, user, entrypoint


def test_environment(box, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=file value\n\nBOTH=from-file\n")
    res = box.run("-e", "FOO=bar", "--env", "EMPTY=", "--env-file", env_file, "-e", "BOTH=from-flag",
                  IMAGE, "env")
    assert res.returncode == 0, describe(res)
    env = dict(l.split("=", 1) for l in res.stdout.splitlines() if "=" in l)
    assert env["FOO"] == "bar"
    assert env["EMPTY"] == ""
    assert env["FROM_FILE"] == "file value"
    assert env["BOTH"] == "from-flag"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert "# a comment" not in res.stdout


def test_environment_defaults(box):
    """docker sets HOME (from the user's passwd entry) and HOSTNAME."""
    res = box.run("--name", "e", IMAGE, "env")
    env = dict(l.split("=", 1) for l in res.stdout.splitlines() if "=" in l)
    assert env.get("HOME") == "/root", res.stdout
    assert env.get("HOSTNAME") == box.inspect("e")["Id"][:12], res.stdout
    res = box.run("-u", "nobody", IMAGE, "env")
    env = dict(l.split("=", 1) for l in res.stdout.splitlines() if "=" in l)
    assert env.get("HOME") == "/nonexistent", res.stdout


def test_env_passthrough_from_the_host(box):
    """`-e KEY` without a value takes KEY from isola's environment."""
    cmd = box.cmd("run", "-e", "ISOLA_TEST_PASS", IMAGE, "sh", "-c", 'echo "[$ISOLA_TEST_PASS]"')
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                         env=dict(os.environ, ISOLA_TEST_PASS="from host"))
    assert res.stdout == "[from host]\n", describe(res)


def test_workdir(box):
    res = box.run(IMAGE, "pwd")
    assert res.stdout == "/\n", describe(res)
    res = box.run("-w", "/tmp", IMAGE, "pwd")
    assert res.stdout == "/tmp\n", describe(res)
    # docker creates a missing working directory.
    res = box.run("-w", "/new/work/dir", IMAGE, "pwd")
    assert res.returncode == 0 and res.stdout == "/new/work/dir\n", describe(res)


def test_user(box):
    res = box.run(IMAGE, "id")
    assert res.returncode == 0, describe(res)
    assert res.stdout.startswith("uid=0(root) gid=0(root)"), res.stdout
    # Supplementary groups from the image's /etc/group (wheel:x:10:root).
    assert "10(wheel)" in res.stdout, res.stdout
    res = box.run("-u", "65534", IMAGE, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["65534", "65534"], describe(res)
    res = box.run("-u", "nobody", IMAGE, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["65534", "65534"], describe(res)
    res = box.run("-u", "1000:1001", IMAGE, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["1000", "1001"], describe(res)
    res = box.run("-u", "www-data:mail", IMAGE, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["33", "8"], describe(res)


def test_unknown_user_fails(box):
    res = box.run("-u", "nosuchuser", IMAGE, "true")
    assert res.returncode != 0, describe(res)
    assert "nosuchuser" in res.stderr, describe(res)


def test_entrypoint(box):
    res = box.run("--entrypoint", "echo", IMAGE, "hello", "world")
    assert res.stdout == "hello world\n", describe(res)
    res = box.run("--entrypoint", "/bin/sh", IMAGE, "-c", "echo $0")
    assert res.stdout == "/bin/sh\n", describe(res)


def test_default_command_is_the_images(box):
    """busybox's Cmd is sh: with no stdin it exits 0 at once."""
    res = box.run("--name", "dflt", IMAGE)
    assert res.returncode == 0, describe(res)
    info = box.inspect("dflt")
    assert info["Path"] == "sh" and info["Args"] == []


def test_image_config_entrypoint_env_workdir_user(box, busybox_layout, tmp_path):
    """An image's Entrypoint, Cmd, Env, WorkingDir and User apply, and run
    flags override them as in docker."""
    import imagegen
    load_derived_image(box, busybox_layout, tmp_path, "app:1", {
        "Entrypoint": ["/bin/sh", "-c", 'echo "ep:$0:$GREETING:$(pwd):$(id -u)"'],
        "Cmd": ["fromcmd"],
        "Env": list(imagegen.DEFAULT_ENV) + ["GREETING=hi"],
        "WorkingDir": "/srv",
        "User": "33",
    }, extra_entries=[imagegen.Dir("srv", mode=0o755)])
    res = box.run("app:1")
    assert res.stdout == "ep:fromcmd:hi:/srv:33\n", describe(res)
    res = box.run("-e", "GREETING=yo", "-w", "/tmp", "-u", "0", "app:1", "arg")
    assert res.stdout == "ep:arg:yo:/tmp:0\n", describe(res)
    res = box.run("--entrypoint", "echo", "app:1", "plain")
    assert res.stdout == "plain\n", describe(res)


# -- stdin


def test_interactive_streams_stdin(box):
    res = box.run("-i", IMAGE, "cat", input="hello\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "hello\n"


def test_interactive_stdin_large_and_eof(box):
    data = "".join(f"line {i}\n" for i in range(100000))
    res = box.run("-i", IMAGE, "sh", "-c", "wc -c; echo done", input=data)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == [str(len(data)), "done"]


def test_without_interactive_stdin_is_not_attached(box):
    res = box.run(IMAGE, "cat", input="should not appear\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == ""


# -- --rm, names, labels, isolation


def test_rm_removes_the_container_after_exit(box):
    res = box.run("--rm", "--name", "gone", IMAGE, "sh", "-c", "echo bye; exit 2")
    assert res.returncode == 2, describe(res)
    assert res.stdout == "bye\n"
    assert box.ids() == []
    assert box("inspect", "gone").returncode != 0
    cdir = box.root / "containers"
    assert not cdir.exists() or list(cdir.iterdir()) == []


def test_rm_detached_container_goes_when_it_exits(box):
    cid = box.run_d("--rm", IMAGE, "sh", "-c", "sleep 1")
    deadline = time.monotonic() + 30
    while cid in box.ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cid not in box.ids(), "a --rm container was still listed 30 s after it exited"
    box.assert_gone(cid)


def test_name_and_duplicate_name(box):
    cid = box.run_d("--name", "web", IMAGE, "sleep", "1000")
    info = box.inspect("web")
    assert info["Id"] == cid
    assert info["Name"] == "/web"
    res = box.run("-d", "--name", "web", IMAGE, "true")
    assert res.returncode == 125, describe(res)
    assert "web" in res.stderr
    assert box.ids() == [cid], "the refused run left a container"
    # The ID and any unique prefix resolve too.
    assert box.inspect(cid[:12])["Id"] == cid
    box.rm_f(cid)


def test_generated_names_are_unique(box):
    a = box.run_d(IMAGE, "true")
    b = box.run_d(IMAGE, "true")
    na, nb = box.inspect(a)["Name"], box.inspect(b)["Name"]
    assert na.startswith("/") and nb.startswith("/") and len(na) > 1
    assert na != nb


def test_labels(box):
    box.run("-l", "tier=web", "--label", "owner=me", "--name", "lab", IMAGE, "true")
    assert box.inspect("lab")["Config"]["Labels"] == {"tier": "web", "owner": "me"}
    [entry] = box.ps_json()
    assert entry["Labels"] == {"tier": "web", "owner": "me"}


def test_isolation_process(box):
    box.run("--isolation", "process", "--name", "iso", IMAGE, "true")
    assert box.inspect("iso")["Isolation"] == "process"
    [entry] = box.ps_json()
    assert entry["Isolation"] == "process"
    res = box.run("--isolation", "bogus", IMAGE, "true")
    assert res.returncode == 125, describe(res)


# -- create and start


def test_create_then_start(box):
    cid = box.create("--name", "later", IMAGE, "sh", "-c", "echo started; exit 4")
    st = box.state(cid)
    assert st["Status"] == "created"
    [entry] = box.ps_json()
    assert entry["State"] == "created" and entry["Status"] == "Created"
    assert box.ids(all=False) == []
    res = box("start", "-a", "later")
    assert res.returncode == 4, describe(res)
    assert res.stdout == "started\n"
    st = box.state(cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 4


def test_start_detached_prints_the_reference(box):
    cid = box.create(IMAGE, "sleep", "1000")
    res = box("start", cid)
    assert res.returncode == 0, describe(res)
    assert res.stdout.strip() == cid
    assert box.state(cid)["Status"] == "running"
    box.rm_f(cid)


def test_start_again_after_exit(box):
    box.run("--name", "again", IMAGE, "sh", "-c", "echo run")
    res = box("start", "-a", "again")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "run\n"
    logs = box("logs", "again")
    assert logs.stdout == "run\nrun\n", describe(logs)


def test_remove_created_container(box):
    cid = box.create(IMAGE, "true")
    box.ok("rm", cid)
    box.assert_gone(cid)
