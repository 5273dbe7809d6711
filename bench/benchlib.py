"""Shared pieces of bench/run: running commands and timing them, the
private stores of isola and its peers, statistics, the report."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISOLA = os.environ.get("ISOLA_BIN", "/usr/local/bin/isola")
RUNTIME = os.environ.get("ISOLA_RUNTIME_BIN", "/usr/local/bin/isola-runtime")
# These build machines lack CAP_SYS_RESOURCE: podman's default rlimits fail.
PODMAN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
PEER_PACKAGES = ["runc", "crun", "podman", "conmon"]
CHART_PACKAGE = "python3-matplotlib"


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=300, env=None, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                         stdin=subprocess.DEVNULL, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {res.returncode}: {res.stderr.strip()[-500:]}")
    return res


def timed(cmd, env=None, cwd=None):
    """Wall milliseconds of one run of `cmd`, which must succeed."""
    t0 = time.monotonic_ns()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    ms = (time.monotonic_ns() - t0) / 1e6
    if res.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {res.returncode}: {res.stderr.strip()[-300:]}")
    return ms


def ensure_packages(packages):
    """Installs missing Debian packages; returns those still missing."""
    missing = [p for p in packages if run(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout
               != "install ok installed"]
    if missing and os.geteuid() == 0:
        say(f"installing {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        res = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=False, env=env,
                  timeout=900)
        if res.returncode != 0:
            run(["apt-get", "update", "-qq"], check=False, env=env, timeout=900)
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=False, env=env,
                timeout=900)
    return [p for p in packages if run(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout
            != "install ok installed"]


def summary(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def pss_kib(pid):
    """Proportional set size of a process (what it costs the host)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def private_tmpfs(path, size="2g"):
    """A tmpfs of the benchmark's own at `path` (Workdir.cleanup unmounts it)."""
    path.mkdir(mode=0o700)
    run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)])
    return path


def trace_phases(trace):
    """The phase names an ISOLA_TRACE file holds (lines: ns pid phase)."""
    return [line.split(" ", 2)[2] for line in Path(trace).read_text().splitlines() if line.count(" ") >= 2]


def boot_of_trace(trace):
    """How a traced VM start came up: "template" when a clone woke, "cold"
    when a booted guest's agent said hello (a clone that failed and fell
    back to a cold boot never reaches "clone awake"), None otherwise."""
    phases = trace_phases(trace)
    if "vm: clone awake" in phases:
        return "template"
    if "vm: agent said hello" in phases:
        return "cold"
    return None


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def cpu_percent(pids, seconds):
    """Mean CPU use of each process over the next `seconds`, in % of a core."""
    before = [cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    return 100 * sum(cpu_seconds(p) - b for p, b in zip(pids, before)) / len(pids) / seconds


def mappings_pss_kib(pid, under):
    """PSS of a process's mappings of files under `under`, and how much of
    it is anonymous (pages copied on write from a private file mapping):
    for a VM clone, its template's RAM file and its own copies of it."""
    pss = anon = 0
    inside = False
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's first line: range perms offset dev inode path
            inside = len(head) > 5 and head[5].startswith(str(under) + "/")
        elif inside and head[0] == "Pss:":
            pss += int(head[1])
        elif inside and head[0] == "Anonymous:":
            anon += int(head[1])
    return pss, anon


def children_named(comm):
    out = run(["pgrep", "-x", comm], check=False).stdout.split()
    return [int(p) for p in out]


class Workdir:
    """A private place for every store the benchmark makes (0711 so that a
    container's mapped root could reach its own files), removed at the end."""

    def __init__(self, keep=False):
        base = Path("/var/tmp")
        self.path = Path(subprocess.run(["mktemp", "-d", str(base / "isola-bench-XXXXXX")], capture_output=True,
                                        text=True, check=True).stdout.strip())
        self.path.chmod(0o711)
        self.keep = keep

    def __truediv__(self, name):
        return self.path / name

    def cleanup(self):
        if self.keep:
            say(f"kept {self.path}")
            return
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            target = line.split()[4]
            if target.startswith(str(self.path)):
                subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def busybox_layout(work):
    built = REPO / "build" / "images" / "busybox"
    if (built / "index.json").exists():
        return built
    out = work / "busybox-oci"
    run([sys.executable, str(REPO / "scripts" / "make-busybox-image"), str(out)])
    return out


def layout_tar(layout, dest):
    run(["tar", "-C", str(layout), "-cf", str(dest), "oci-layout", "index.json", "blobs"])
    return dest


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def fmt_ms(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
