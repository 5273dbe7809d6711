"""A small client of the Kubernetes CRI v1 API (runtime.v1), enough to drive
containerd's CRI plugin the way the kubelet does.

The messages are those of cri/cri_subset.proto (a subset of the upstream
api.proto, with its names and field numbers), compiled at run time with
Debian's protoc into a directory of the caller's; no generated code is kept
in the tree. Calls go through grpc's generic unary-unary stubs, so no gRPC
code generator is needed either:

    pb = compile_proto(tmpdir)
    cri = CRI("/path/to/containerd.sock", pb)
    sandbox = cri.RunPodSandbox(config=pod_config(pb, "web"), runtime_handler="runc").pod_sandbox_id

Every method of the two services is an attribute of CRI taking the request's
fields as keyword arguments (or a ready request as its only positional
argument) and returning the response message. A failed call raises CRIError
with the gRPC status code and containerd's message.
"""

import importlib.util
import subprocess
import uuid
from pathlib import Path

import grpc

PROTO = Path(__file__).resolve().parent / "cri" / "cri_subset.proto"
IMAGE_METHODS = {"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}
DEFAULT_TIMEOUT = 120


def compile_proto(outdir):
    """Compile cri_subset.proto with protoc into outdir and import it."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["protoc", f"-I{PROTO.parent}", f"--python_out={outdir}", str(PROTO)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"protoc failed (exit {res.returncode}): {res.stderr}")
    path = outdir / (PROTO.stem + "_pb2.py")
    spec = importlib.util.spec_from_file_location(f"cri_subset_pb2_{uuid.uuid4().hex[:8]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CRIError(Exception):
    def __init__(self, method, err):
        self.method = method
        self.code = err.code()
        self.details = err.details()
        super().__init__(f"{method}: {self.code.name}: {self.details}")


class CRI:
    """runtime.v1.RuntimeService and runtime.v1.ImageService on a unix socket."""

    def __init__(self, socket, pb, timeout=DEFAULT_TIMEOUT):
        self.pb = pb
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self._stubs = {}

    def close(self):
        self.channel.close()

    def _stub(self, method):
        if method not in self._stubs:
            service = "ImageService" if method in IMAGE_METHODS else "RuntimeService"
            request = getattr(self.pb, f"{method}Request")
            response = getattr(self.pb, f"{method}Response")
            self._stubs[method] = (request, self.channel.unary_unary(
                f"/runtime.v1.{service}/{method}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString))
        return self._stubs[method]

    def call(self, method, *args, rpc_timeout=None, **fields):
        """rpc_timeout: the call's deadline in seconds (`timeout` is a field
        of some requests)."""
        request_type, stub = self._stub(method)
        request = args[0] if args else request_type(**fields)
        try:
            return stub(request, timeout=rpc_timeout or self.timeout)
        except grpc.RpcError as e:
            raise CRIError(method, e) from None

    def __getattr__(self, method):
        if not method[:1].isupper():
            raise AttributeError(method)
        return lambda *args, **fields: self.call(method, *args, **fields)

    # -- the common questions, answered from the API

    def container_state(self, container_id):
        return self.ContainerStatus(container_id=container_id).status.state

    def sandbox_ip(self, sandbox_id):
        return self.PodSandboxStatus(pod_sandbox_id=sandbox_id).status.network.ip

    def remove_all(self):
        """Stop and remove every pod sandbox (and so every container)."""
        for item in self.ListPodSandbox().items:
            try:
                self.StopPodSandbox(pod_sandbox_id=item.id)
            finally:
                self.RemovePodSandbox(pod_sandbox_id=item.id)


# -- request builders, with what the kubelet would send for a plain pod


def pod_config(pb, name, *, log_directory="", cgroup_parent="", hostname=None, uid=None,
               namespace="default", attempt=0, labels=None, annotations=None):
    uid = uid or uuid.uuid4().hex
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        hostname=hostname if hostname is not None else name,
        log_directory=str(log_directory),
        labels=labels or {},
        annotations=annotations or {},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))))


def container_config(pb, name, image, command, *, args=(), attempt=0, log_path="", envs=None,
                     labels=None, annotations=None):
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=image),
        command=list(command),
        args=list(args),
        envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        labels=labels or {},
        annotations=annotations or {},
        log_path=log_path,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))))
