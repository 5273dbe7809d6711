"""`-it` through a real pseudo-terminal: a shell that works, exit codes,
window size at start and on resize, Ctrl-C reaching the container, exec -it,
and -t alone."""

import re

from containers import IMAGE, box, describe, pty_session, wait_for  # noqa: F401

PROMPT = r"/ # "  # busybox sh's root prompt (line editing may add escapes after it)


def test_interactive_shell(box, pty_session):
    s = pty_session(box.cmd("run", "-it", "--name", "tty", IMAGE, "sh"))
    s.expect(PROMPT)
    s.send("tty; echo $((6*7)); exit 3\n")
    code = s.wait()
    out = s.text()
    # The pty is made in the container's own devpts, as docker's and podman's.
    assert re.search(r"/dev/pts/\d+", out), out
    assert "42" in out
    assert code == 3, out
    st = box.state("tty")
    assert st["ExitCode"] == 3 and st["Status"] == "exited"
    assert box.inspect("tty")["Config"]["Tty"] is True


def test_input_that_ends_before_the_session_leaves_no_stray_bytes(box, pty_session):
    """An end of input typed before isola went raw (what `script` sends
    when its own input ends) reaches the container as the end-of-file
    character it was, not as a NUL the container's terminal echoes as ^@."""
    s = pty_session(box.cmd("run", "-it", "--rm", IMAGE, "sh", "-c", "sleep 1; tty"))
    s.send("\x04")
    assert s.wait() == 0, s.text()
    assert re.search(r"/dev/pts/\d+", s.text()), s.text()
    assert "^@" not in s.text() and "\x00" not in s.text(), repr(s.text())


def test_local_terminal_is_raw(box, pty_session):
    """isola puts the user's terminal in raw mode, as docker does: what is
    typed is echoed once (by the container's terminal), and output is not
    translated twice (no \\r\\r\\n)."""
    s = pty_session(box.cmd("run", "-it", IMAGE, "sh"))
    s.expect(PROMPT)
    s.send("echo marker-$((40+2))\n")
    s.expect(r"marker-42")
    s.send("exit\n")
    assert s.wait() == 0, s.text()
    assert s.text().count("echo marker-$((40+2))") == 1, s.text()
    assert "\r\r\n" not in s.text(), s.text()


def test_terminal_is_a_tty_inside(box, pty_session):
    s = pty_session(box.cmd("run", "-it", IMAGE, "sh", "-c",
                            "test -t 0 && test -t 1 && test -t 2 && echo all-ttys; stty -a | head -1"))
    code = s.wait()
    assert code == 0, s.text()
    assert "all-ttys" in s.text()


def test_window_size_at_start(box, pty_session):
    s = pty_session(box.cmd("run", "-it", IMAGE, "stty", "size"), rows=33, cols=101)
    code = s.wait()
    assert code == 0, s.text()
    assert "33 101" in s.text(), s.text()


def test_window_size_follows_resize(box, pty_session):
    s = pty_session(box.cmd("run", "-it", IMAGE, "sh"), rows=24, cols=80)
    s.expect(PROMPT)
    s.send("stty size\n")
    s.expect(r"24 80")
    s.resize(50, 132)
    # The resize travels isola -> monitor -> container pty; poll for it.
    for _ in range(40):
        s.send("stty size\n")
        if s.poll_for(r"^50 132", timeout=0.5):
            break
    assert re.search(r"^50 132", s.text(), re.M), s.text()
    s.send("exit\n")
    assert s.wait() == 0


def test_ctrl_c_reaches_the_container(box, pty_session):
    s = pty_session(box.cmd("run", "-it", "--name", "cc", IMAGE, "sh"))
    s.expect(PROMPT)
    s.send("sleep 1000\n")
    wait_for(lambda: "sleep 1000" in box("top", "cc").stdout, what="sleep to run")
    s.send("\x03")
    wait_for(lambda: "sleep 1000" not in box("top", "cc").stdout, timeout=15,
             what="Ctrl-C to end sleep in the container")
    # The shell survived (SIGINT went to the foreground job) and saw it.
    s.send("echo status=$?\n")
    s.expect(r"status=130")
    s.send("exit 0\n")
    assert s.wait() == 0, s.text()


def test_eof_ends_an_interactive_shell(box, pty_session):
    s = pty_session(box.cmd("run", "-it", IMAGE, "sh"))
    s.expect(PROMPT)
    s.send("\x04")
    assert s.wait() == 0, s.text()


def test_exec_it(box, pty_session):
    cid = box.run_d(IMAGE, "sleep", "1000")
    s = pty_session(box.cmd("exec", "-it", cid, "sh"), rows=20, cols=70)
    s.expect(PROMPT)
    s.send("tty; stty size; exit 4\n")
    code = s.wait()
    assert code == 4, s.text()
    assert re.search(r"/dev/pts/\d+", s.text()), s.text()
    assert "20 70" in s.text()
    assert box.state(cid)["Status"] == "running"
    box.rm_f(cid)


def test_tty_without_interactive(box):
    res = box.run("-t", IMAGE, "sh", "-c", "test -t 1 && echo is-a-tty; exit 6")
    assert res.returncode == 6, describe(res)
    # A terminal turns \n into \r\n.
    assert res.stdout.replace("\r\n", "\n") == "is-a-tty\n", describe(res)


def test_tty_without_interactive_at_a_terminal_translates_once(box, pty_session):
    """-t alone at a terminal: the container's pty makes each line end in
    \r\n, and the user's terminal passes that through (no \r\r\n); its
    settings are as they were afterwards."""
    s = pty_session(box.cmd("run", "-t", "--rm", IMAGE, "sh", "-c", "echo one; echo two"))
    assert s.wait() == 0, s.text()
    assert "one\r\ntwo\r\n" in s.text(), repr(s.text())
    assert "\r\r\n" not in s.text(), repr(s.text())
    import termios
    assert termios.tcgetattr(s.master)[1] & termios.OPOST, "the terminal's output processing was not restored"


def test_detached_tty_container_logs(box):
    cid = box.run_d("-t", IMAGE, "sh", "-c", "test -t 1 && echo tty-logged")
    assert box.ok("wait", cid).strip() == "0"
    assert box("logs", cid).stdout.replace("\r\n", "\n") == "tty-logged\n"


def test_detach_with_ctrl_p_ctrl_q_and_attach_again(box, pty_session):
    s = pty_session(box.cmd("run", "-it", "--name", "det", IMAGE, "sh"))
    s.expect(PROMPT)
    s.send("echo before-$((1+1))\n")
    s.expect(r"before-2")
    s.send("\x10\x11")
    code = s.wait()
    assert code == 0, s.text()
    assert box.state("det")["Status"] == "running", "Ctrl-P Ctrl-Q stopped the container"
    a = pty_session(box.cmd("attach", "det"))
    a.send("echo after-$((2+2))\n")
    a.expect(r"after-4")
    a.send("exit 5\n")
    assert a.wait() == 5, a.text()
    assert box.state("det")["ExitCode"] == 5
