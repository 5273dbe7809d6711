"""The `cri` case of bench/run: Kubernetes pods through containerd's CRI
plugin, the way the kubelet starts one (RunPodSandbox, then CreateContainer
and StartContainer for each container in turn), on the runtime handlers
runc, isola and isola-vm of docs/kubernetes.md: pods of two containers and
of one on all three (under isola-vm a pod is one VM, docs/pod-vm-design.md).
It also measures the memory of an isola-vm pod's VM: one pod of two
containers (one VM) against two pods of one container (two VMs).

containerd is the private one of the CRI tests (tests/integration/engines.py,
CriContainerd): its own root and state in the work directory, in a network
namespace of its own with CNI's bridge, a pause image built here. The time
is from RunPodSandbox to the second StartContainer's return (both containers
running, checked with ListContainers); the pod is stopped and removed after
each sample, outside the time."""

import os
import sys
import time
import uuid
from pathlib import Path

from benchlib import REPO, ensure_packages, layout_tar, pss_kib

CRI_PACKAGES = ["containerd", "containernetworking-plugins", "python3-grpcio", "python3-protobuf",
                "protobuf-compiler"]
BUSYBOX = "docker.io/library/busybox:latest"
# Row → (handler, containers in the pod).
PODS = {"runc, 2 containers": ("runc", 2), "isola (process isolation), 2 containers": ("isola", 2),
        "isola-vm (the pod in one VM), 2 containers": ("isola-vm", 2),
        "runc, 1 container": ("runc", 1), "isola (process isolation), 1 container": ("isola", 1),
        "isola-vm (the pod in one VM), 1 container": ("isola-vm", 1)}
BASELINE = "runc, 2 containers"
TITLE = "Kubernetes CRI (containerd 1.6): a pod, RunPodSandbox to its containers running"


def start_pod(engine, handler, containers, base, r):
    """RunPodSandbox, then each container created and started; returns the
    sandbox's ID and the pod's cgroup parent."""
    from cri_client import container_config, pod_config

    cri, pb = engine.cri, engine.pb
    uid = uuid.uuid4().hex
    parent = f"{engine.cgroup_root}/pod{uid}"
    config = pod_config(pb, f"bench-{r + 2}", uid=uid, log_directory=base / "logs" / uid, cgroup_parent=parent)
    sandbox = cri.RunPodSandbox(config=config, runtime_handler=handler).pod_sandbox_id
    try:
        for name in ("first", "second")[:containers]:
            c = container_config(pb, name, BUSYBOX, ["sleep", "1000000"], log_path=f"{name}.log")
            cid = cri.CreateContainer(pod_sandbox_id=sandbox, config=c, sandbox_config=config).container_id
            cri.StartContainer(container_id=cid)
        listed = cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=sandbox)).containers
        states = sorted(pb.ContainerState.Name(c.state) for c in listed)
        if states != ["CONTAINER_RUNNING"] * containers:
            raise RuntimeError(f"the pod's containers are {states}")
    except BaseException:
        remove_pod(engine, sandbox, parent)
        raise
    return sandbox, parent


def remove_pod(engine, sandbox, parent):
    from engines import remove_cgroup_tree

    engine.cri.StopPodSandbox(pod_sandbox_id=sandbox)
    engine.cri.RemovePodSandbox(pod_sandbox_id=sandbox)
    remove_cgroup_tree(parent)  # the pod's own cgroup is the kubelet's to remove


def pod_ms(engine, handler, containers, base, r):
    t0 = time.monotonic_ns()
    sandbox, parent = start_pod(engine, handler, containers, base, r)
    ms = (time.monotonic_ns() - t0) / 1e6
    remove_pod(engine, sandbox, parent)
    return ms


def pod_processes(parent):
    """Every process in the pod's cgroup and below it: under isola-vm the
    sandbox's keeper, monitor and VM worker, and each container's keeper."""
    from engines import cgroup_mounts

    pids = set()
    for mount in cgroup_mounts():
        top = Path(mount) / parent.lstrip("/")
        for d, _, files in os.walk(top):
            if "cgroup.procs" in files:
                pids |= {int(p) for p in (Path(d) / "cgroup.procs").read_text().split()}
        if pids:
            return pids
    return pids


def vm_pod_memory_note(engine, base):
    """The PSS of what isola runs for isola-vm pods (VM workers, monitors,
    keepers: every process in the pods' cgroups), idle for a few seconds:
    one pod of two containers against two pods of one container."""
    def pods_pss(layout):
        pods = []
        try:
            for i, containers in enumerate(layout):
                pods.append(start_pod(engine, "isola-vm", containers, base, 100 + i))
            time.sleep(3)
            pids = set().union(*(pod_processes(parent) for _, parent in pods))
            workers = sum(1 for p in pids if Path(f"/proc/{p}/comm").exists()
                          and Path(f"/proc/{p}/comm").read_text().startswith("isola-vm-"))
            return workers, len(pids), sum(pss_kib(p) for p in pids)
        finally:
            for sandbox, parent in pods:
                remove_pod(engine, sandbox, parent)

    one = pods_pss([2])
    two = pods_pss([1, 1])
    return (f"Memory of isola-vm pods, idle (PSS of every process in the pods' cgroups: VM workers, monitors, "
            f"keepers): one pod of two containers, {one[0]} VM, {one[1]} processes, {one[2] / 1024:.0f} MiB; "
            f"two pods of one container, {two[0]} VMs, {two[1]} processes, {two[2] / 1024:.0f} MiB "
            f"({one[2] / two[2]:.2f}x).")


def case_cri(setup, rounds):
    from cases import alternate_ms, rows_with_ratio

    missing = ensure_packages(CRI_PACKAGES)
    if missing:
        return {"title": TITLE, "rows": [], "notes": [f"not measured: {' '.join(missing)} missing"]}
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import pytest  # engines reports its failures as pytest's
    from cri_client import compile_proto
    from engines import CriContainerd

    failures = (Exception, pytest.fail.Exception)
    base = setup.work / "cri"
    try:
        engine = CriContainerd(base, compile_proto(base / "proto"))
    except failures as e:
        return {"title": TITLE, "rows": [], "notes": [f"not measured: containerd did not start: {e}"]}
    notes = ["An isola-vm pod is one VM, booted (from a template) by its pause container; the pod's containers "
             "run inside it (docs/kubernetes.md).",
             "containerd starts the runtime through its runc v2 shim (one shim per pod) in every row."]
    rows = []

    def measure(handler, containers):
        def one(r):
            try:
                return pod_ms(engine, handler, containers, base, r)
            except failures as e:
                raise RuntimeError(str(e)) from None
        return one

    try:
        engine.import_image(layout_tar(setup.layout, base / "busybox.tar"), BUSYBOX)
        samples, errors = alternate_ms({name: measure(*pod) for name, pod in PODS.items()}, rounds)
        rows = rows_with_ratio(samples, errors, BASELINE)
        for row in rows:
            if "ratio_to_isola" in row:
                row["ratio_to_runc"] = row.pop("ratio_to_isola")
        notes.append(vm_pod_memory_note(engine, base))
    except failures as e:
        notes.insert(0, f"not measured: {e}")
    finally:
        try:
            engine.stop()
        except failures as e:
            notes.append(f"containerd's clean-up failed: {e}")
    return {"title": TITLE, "rows": rows, "notes": notes}
