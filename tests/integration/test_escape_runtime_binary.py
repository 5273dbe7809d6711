"""The class of escape where a container overwrites the host runtime through
/proc/PID/exe or an inherited descriptor of a runtime process (runc's
CVE-2019-5736). isola's own code is visible inside a container only while
`isola exec` joins it; it is non-dumpable then, so a container process can
neither read its /proc/PID/exe link nor open it."""

import subprocess
import time

from containers import IMAGE, box  # noqa: F401  (fixture)

# Inside the container: watch every process for as long as it runs and
# record any executable link that resolves, and any that can be opened.
WATCHER = r"""
end=$(( $(date +%s) + 8 ))
while [ $(date +%s) -lt $end ]; do
  for d in /proc/[0-9]*; do
    l=$(readlink $d/exe 2>/dev/null) || continue
    case "$l" in /bin/busybox) ;; *) echo "LINK $d $l" >> /tmp/seen ;; esac
    if [ "$l" != /bin/busybox ] && (exec 3<$d/exe) 2>/dev/null; then echo "OPENED $d $l" >> /tmp/seen; fi
  done
done
touch /tmp/seen; echo done > /tmp/finished
"""


def test_exec_never_exposes_the_runtime_binary(box):
    cid = box.run_d(IMAGE, "sh", "-c", WATCHER + "sleep 100")
    # Many joins while the watcher scans /proc inside.
    deadline = time.time() + 6
    joins = 0
    while time.time() < deadline:
        res = box.exec(cid, "true")
        assert res.returncode == 0, res.stderr
        joins += 1
    assert joins >= 10
    for _ in range(100):
        if box.exec(cid, "cat", "/tmp/finished").stdout.strip() == "done":
            break
        time.sleep(0.1)
    seen = box.exec(cid, "cat", "/tmp/seen").stdout
    assert "isola" not in seen, f"the runtime binary was visible inside:\n{seen}"
    assert "OPENED" not in seen, f"a foreign executable could be opened:\n{seen}"


def test_runtime_binary_on_host_is_unchanged_after_exec(box):
    """Belt and braces: a container that tries to write every /proc/*/exe it
    can reach during exec leaves the host's isola binary as it was."""
    binary = box.bin if hasattr(box, "bin") else None
    import os
    path = binary or os.environ.get("ISOLA_BIN", "/usr/local/bin/isola")
    before = open(path, "rb").read()
    writer = r"""
end=$(( $(date +%s) + 5 ))
while [ $(date +%s) -lt $end ]; do
  for d in /proc/[0-9]*; do echo pwned 2>/dev/null >> $d/exe; done
done
"""
    cid = box.run_d(IMAGE, "sh", "-c", writer + "sleep 100")
    deadline = time.time() + 4
    while time.time() < deadline:
        box.exec(cid, "true")
    time.sleep(1.5)
    assert open(path, "rb").read() == before
