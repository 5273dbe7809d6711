"""bench/run as a smoke test: one round of every case on this machine. The
numbers are not judged here (timing belongs to the benchmark, not to CI);
what is checked is that every case runs against its real peers and that
the table, the JSON and the chart come out."""

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_run_quick_produces_table_json_and_chart(tmp_path):
    out_json, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    res = subprocess.run([str(REPO / "bench" / "run"), "--quick", "--json", str(out_json), "--chart", str(chart)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    table = res.stdout
    for title in ("Engine level", "Runtime level", "VM isolation", "Networks", "Density", "Steady state",
                  "Where isola", "Pull of", "The VM worker's jail"):
        assert f"### {title}" in table, table
    assert "| isola run --rm |" in table and "| podman run --rm (runc) |" in table, table
    assert "| runc run |" in table and "| isola-runtime run |" in table, table

    data = json.loads(out_json.read_text())
    results = data["results"]
    for case in ("engine", "runtime", "vm", "network", "steady", "pull"):
        rows = {r["name"]: r for r in results[case]["rows"]}
        isola_rows = [r for name, r in rows.items() if "isola" in name or case in ("steady", "network")]
        assert isola_rows and all(r["samples"] and not r.get("error") for r in isola_rows), results[case]
    assert results["engine"]["rows"][1]["samples"], "podman + runc did not run"
    assert all(r["samples"] for r in results["pull"]["rows"]), results["pull"]
    vm = {r["name"]: r for r in results["vm"]["rows"]}
    assert vm["isola run --rm --isolation=vm, from a template"].get("boot") == "template", vm
    assert vm["isola run --rm --isolation=vm --vm-boot=cold"].get("boot") == "cold", vm
    assert results["vm"]["clone_check"]["Boot"] == "template", results["vm"]
    assert vm["bare QEMU + kernel + init"]["samples"], vm
    jail = results["jail"]["rows"]
    assert len(jail) == 2 and all(r["samples"] and r.get("per_container_kib", 0) > 0 and not r.get("error")
                                  for r in jail), jail
    density = {r["name"]: r for r in results["density"]["density"]}
    assert len(density) == 6, density
    assert all(r.get("per_container_kib", 0) > 0 and not r.get("error") for r in density.values()), density
    assert density["isola, 2 VM containers from a template"]["boots"] == {"template": 2}, density
    assert density["isola, 1 VM container booted cold"]["boots"] == {"cold": 1}, density
    assert "isola, 2 VM containers from a template, after work" in density, density
    phases = [p["phase"] for p in results["breakdown"]["breakdown"]["process"]]
    assert any("monitor: container exec'd" in p for p in phases), phases
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
