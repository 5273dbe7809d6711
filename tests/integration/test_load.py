"""Load: several concurrent "shells" cycle containers for a bounded time
(ISOLA_LOAD_SECONDS, default 60): `run --rm`, `run -d` + `exec` + `rm -f`,
`create` + `start -a` + `rm`, `run -d --rm` + `wait`, `run -d` + `stop` +
`start` + `exec` + `rm -f`; mostly process isolation (ISOLA_LOAD_SHELLS
shells, default 4), one shell with VM isolation; one more shell only reads (ps,
inspect, images, stats). Every command must succeed with the right output.
Afterwards the store and the host must be as before: no container, no
mount under the store, no cgroup, no process, no /run/isola entry, nothing
in tmp/, the image intact. The figures go to the terminal summary."""

import json
import os
import random
import re
import threading
import time
import traceback


from containers import IMAGE, HEX64, RUN_DIR, box, cgroup_dirs, describe  # noqa: F401
from faultkit import assert_clean, assert_image_usable, processes_of_store, vm_available

DURATION = float(os.environ.get("ISOLA_LOAD_SECONDS", "60"))
PROCESS_SHELLS = int(os.environ.get("ISOLA_LOAD_SHELLS", "4"))
VM = "--isolation=vm"
HOSTNAME = re.compile(r"^[0-9a-f]{12}$")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.cycled = {"process": 0, "vm": 0}
        self.execs = 0
        self.commands = 0
        self.ids = set()       # full IDs printed by run -d / create
        self.prefixes = set()  # 12-hex host names printed by --rm containers
        self.errors = []

    def add(self, isolation, ids=(), prefixes=(), execs=0, commands=0):
        with self.lock:
            self.cycled[isolation] += 1
            self.ids.update(ids)
            self.prefixes.update(prefixes)
            self.execs += execs
            self.commands += commands


class Shell:
    """One user typing commands in a loop."""

    def __init__(self, box, stats, name, isolation, stop_at, seed):
        self.box, self.stats, self.name = box, stats, name
        self.isolation = isolation
        self.extra = [VM] if isolation == "vm" else []
        self.timeout = 240 if isolation == "vm" else 60
        self.stop_at = stop_at
        self.rng = random.Random(seed)

    def sh(self, *args, expect=0):
        res = self.box(*args, timeout=self.timeout)
        if res.returncode != expect:
            raise AssertionError(f"[{self.name}] isola {' '.join(map(str, args))}: expected exit {expect}, "
                                 f"{describe(res)}")
        return res.stdout

    def run_rm(self):
        out = self.sh("run", "--rm", *self.extra, IMAGE, "cat", "/etc/hostname")
        host = out.strip()
        assert HOSTNAME.match(host), f"[{self.name}] run --rm printed {out!r}"
        self.stats.add(self.isolation, prefixes=[host], commands=1)

    def detached_exec_rm(self):
        cid = self.sh("run", "-d", *self.extra, IMAGE, "sleep", "1000").strip()
        assert HEX64.match(cid), cid
        self.stats.ids.add(cid)
        n = self.rng.randint(1, 3)
        for i in range(n):
            out = self.sh("exec", cid, "sh", "-c", f"echo {self.name}-{i}; hostname")
            assert out == f"{self.name}-{i}\n{cid[:12]}\n", f"[{self.name}] exec printed {out!r}"
        self.sh("rm", "-f", cid)
        self.stats.add(self.isolation, ids=[cid], execs=n, commands=2 + n)

    def create_start_rm(self):
        cid = self.sh("create", *self.extra, IMAGE, "sh", "-c", "echo hi; exit 4").strip()
        assert HEX64.match(cid), cid
        self.stats.ids.add(cid)
        out = self.sh("start", "-a", cid, expect=4)
        assert out == "hi\n", f"[{self.name}] start -a printed {out!r}"
        self.sh("rm", cid)
        self.stats.add(self.isolation, ids=[cid], commands=3)

    def stop_start_rm(self):
        cid = self.sh("run", "-d", *self.extra, IMAGE, "sh", "-c", "echo run >> /runs; exec sleep 1000").strip()
        assert HEX64.match(cid), cid
        self.stats.ids.add(cid)
        # `run -d` returns once the command runs, not once it has written:
        # wait for the first line before stopping, or it may never come.
        deadline = time.monotonic() + 60
        while self.box("exec", cid, "cat", "/runs", timeout=self.timeout).stdout != "run\n":
            assert time.monotonic() < deadline, f"[{self.name}] the first run never wrote /runs"
            time.sleep(0.05)
        self.sh("stop", "-t", "1", cid)
        self.sh("start", cid)
        out = self.sh("exec", cid, "cat", "/runs")
        assert out == "run\nrun\n", f"[{self.name}] after a restart /runs holds {out!r}"
        self.sh("rm", "-f", cid)
        self.stats.add(self.isolation, ids=[cid], execs=1, commands=5)

    def detached_rm_wait(self):
        cid = self.sh("run", "-d", "--rm", *self.extra, IMAGE, "sh", "-c", "exit 0").strip()
        assert HEX64.match(cid), cid
        self.stats.ids.add(cid)
        # --rm: the container may be gone before `wait` looks it up.
        res = self.box("wait", cid, timeout=self.timeout)
        assert (res.returncode == 0 and res.stdout == "0\n") or \
            (res.returncode == 125 and "no such container" in res.stderr), f"[{self.name}] wait: {describe(res)}"
        self.stats.add(self.isolation, ids=[cid], commands=2)

    def loop(self):
        if self.isolation == "vm":
            ops = [self.run_rm, self.detached_exec_rm, self.create_start_rm]
        else:
            ops = [self.run_rm, self.run_rm, self.detached_exec_rm, self.detached_exec_rm, self.create_start_rm,
                   self.detached_rm_wait, self.stop_start_rm]
        try:
            while time.monotonic() < self.stop_at and not self.stats.errors:
                self.rng.choice(ops)()
        except BaseException as e:  # pytest.fail from a timeout is a BaseException
            with self.stats.lock:
                self.stats.errors.append(f"{e}\n{traceback.format_exc(limit=3)}")


def reader(box, stats, stop_at):
    """Reads concurrently, as a user watching: every command must work."""
    try:
        while time.monotonic() < stop_at and not stats.errors:
            for args in (("ps", "-a"), ("ps", "--format", "json"), ("images",), ("stats", "--no-stream")):
                res = box(*args)
                # A container can vanish between listing and reading it.
                assert res.returncode == 0 or "no such container" in res.stderr, \
                    f"[reader] isola {' '.join(args)}: {describe(res)}"
            time.sleep(0.2)
    except BaseException as e:
        with stats.lock:
            stats.errors.append(f"{e}\n{traceback.format_exc(limit=3)}")


def test_concurrent_shells_cycle_containers(box, request):
    stats = Stats()
    with_vm = vm_available()
    start = time.monotonic()
    stop_at = start + DURATION
    shells = [Shell(box, stats, f"p{i}", "process", stop_at, i) for i in range(PROCESS_SHELLS)]
    if with_vm:
        shells.append(Shell(box, stats, "vm", "vm", stop_at, 99))
    threads = [threading.Thread(target=s.loop) for s in shells]
    threads.append(threading.Thread(target=reader, args=(box, stats, stop_at)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION + 600)
    elapsed = time.monotonic() - start
    assert not any(t.is_alive() for t in threads), "a shell is stuck"
    assert not stats.errors, f"{len(stats.errors)} shells failed:\n" + "\n".join(stats.errors[:3])

    # Afterwards: nothing of any of them is left.
    box.created.update(stats.ids)
    ids = set(stats.ids)
    assert_clean(box, ids)
    for prefix in stats.prefixes:
        run_dirs = [n for n in (os.listdir(RUN_DIR) if RUN_DIR.exists() else []) if n.startswith(prefix)]
        assert not run_dirs, f"/run/isola entries left: {run_dirs}"
        cgroups = cgroup_dirs(prefix + "*")  # a glob
        assert not cgroups, f"cgroups left: {cgroups}"
    assert not processes_of_store(box.root), processes_of_store(box.root)
    box.isola.assert_consistent()
    assert_image_usable(box)

    total = sum(stats.cycled.values())
    summary = (f"load: {total} containers cycled in {elapsed:.1f} s by {len(shells)} shells "
               f"({stats.cycled['process']} process-isolated, {stats.cycled['vm']} VM-isolated; "
               f"{stats.execs} execs, {stats.commands} commands)")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(summary)
    if os.environ.get("ISOLA_LOAD_REPORT"):
        with open(os.environ["ISOLA_LOAD_REPORT"], "w") as f:
            json.dump({"containers": total, "seconds": round(elapsed, 1), "shells": len(shells),
                       "process": stats.cycled["process"], "vm": stats.cycled["vm"], "execs": stats.execs,
                       "commands": stats.commands}, f)
    assert stats.cycled["process"] >= 10, summary
    if with_vm:
        assert stats.cycled["vm"] >= 1, summary
