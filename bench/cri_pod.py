"""The `cri` case of bench/run: Kubernetes pods through containerd's CRI
plugin, the way the kubelet starts one (RunPodSandbox, then CreateContainer
and StartContainer for each container in turn), on the runtime handlers
runc, isola and isola-vm of docs/kubernetes.md: pods of two containers on
runc and isola, and of one on all three (under isola-vm a pod's network
goes to one application container's VM, and a second is refused until a
pod shares one VM: docs/pod-vm-design.md).

containerd is the private one of the CRI tests (tests/integration/engines.py,
CriContainerd): its own root and state in the work directory, in a network
namespace of its own with CNI's bridge, a pause image built here. The time
is from RunPodSandbox to the second StartContainer's return (both containers
running, checked with ListContainers); the pod is stopped and removed after
each sample, outside the time."""

import sys
import time
import uuid

from benchlib import REPO, ensure_packages, layout_tar

CRI_PACKAGES = ["containerd", "containernetworking-plugins", "python3-grpcio", "python3-protobuf",
                "protobuf-compiler"]
BUSYBOX = "docker.io/library/busybox:latest"
# Row → (handler, containers in the pod).
PODS = {"runc, 2 containers": ("runc", 2), "isola (process isolation), 2 containers": ("isola", 2),
        "runc, 1 container": ("runc", 1), "isola (process isolation), 1 container": ("isola", 1),
        "isola-vm (a VM per container), 1 container": ("isola-vm", 1)}
BASELINE = "isola (process isolation), 1 container"
TITLE = "Kubernetes CRI (containerd 1.6): a pod, RunPodSandbox to its containers running"


def pod_ms(engine, handler, containers, base, r):
    from cri_client import container_config, pod_config
    from engines import remove_cgroup_tree

    cri, pb = engine.cri, engine.pb
    uid = uuid.uuid4().hex
    parent = f"{engine.cgroup_root}/pod{uid}"
    config = pod_config(pb, f"bench-{r + 2}", uid=uid, log_directory=base / "logs" / uid, cgroup_parent=parent)
    t0 = time.monotonic_ns()
    sandbox = cri.RunPodSandbox(config=config, runtime_handler=handler).pod_sandbox_id
    try:
        for name in ("first", "second")[:containers]:
            c = container_config(pb, name, BUSYBOX, ["sleep", "1000000"], log_path=f"{name}.log")
            cid = cri.CreateContainer(pod_sandbox_id=sandbox, config=c, sandbox_config=config).container_id
            cri.StartContainer(container_id=cid)
        ms = (time.monotonic_ns() - t0) / 1e6
        listed = cri.ListContainers(filter=pb.ContainerFilter(pod_sandbox_id=sandbox)).containers
        states = sorted(pb.ContainerState.Name(c.state) for c in listed)
        if states != ["CONTAINER_RUNNING"] * containers:
            raise RuntimeError(f"the pod's containers are {states}")
        return ms
    finally:
        cri.StopPodSandbox(pod_sandbox_id=sandbox)
        cri.RemovePodSandbox(pod_sandbox_id=sandbox)
        remove_cgroup_tree(parent)  # the pod's own cgroup is the kubelet's to remove


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
    notes = ["Each container of an isola-vm pod is a VM of its own, the pause container included: two VMs "
             "per one-container pod here, started from templates (docs/kubernetes.md).",
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
    except failures as e:
        notes.insert(0, f"not measured: {e}")
    finally:
        try:
            engine.stop()
        except failures as e:
            notes.append(f"containerd's clean-up failed: {e}")
    return {"title": TITLE, "rows": rows, "notes": notes}
