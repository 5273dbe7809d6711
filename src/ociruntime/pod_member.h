// Kubernetes pods under VM isolation: one VM per pod. The pod's sandbox
// ("pause") container boots the VM, with the pod share (vm/pod_share.h);
// every further container of the pod, as containerd's CRI or CRI-O
// annotates it, runs inside that VM instead of one of its own. Its files
// are grafted into the pod share, its process is created in the guest by
// the sandbox's monitor, and a keeper stands in for it on the host
// (vm_keeper.h). docs/pod-vm-design.md has the design.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "spec/spec.h"
#include "vm/vm_spec.h"

namespace isola::oci {

// The container's type as containerd's CRI or CRI-O annotates it
// ("sandbox", "container"), "" outside Kubernetes.
std::string pod_container_type(const RuntimeSpec& spec);
// The pod sandbox's ID of a container annotated as a pod's further
// container, "" otherwise.
std::string pod_sandbox_id(const RuntimeSpec& spec);

// The pod share's directory on the host, for the sandbox VM whose monitor
// listens at `monitor_socket` (both live in the monitor's run directory).
std::string pod_share_dir(const std::string& monitor_socket);

// The pod's VM holds all the pod's containers: when the CRI gives the
// pod's limits (io.kubernetes.cri.sandbox-memory, -cpu-quota and
// -cpu-period), the VM is at least that large (memory plus the guest's
// reserve, one vCPU per whole or started CPU of the quota).
void size_pod_vm(const RuntimeSpec& sandbox, VmPlan& plan);

struct PodMember {
  Json guest_spec;                   // what the agent runs, guest paths
  std::vector<std::string> grafted;  // host paths of the grafts, in the worker's namespace
};

// The pod's VM: its sandbox's keeper (a host PID: the monitor and QEMU
// run in its pid namespace) and its monitor's socket.
struct PodVm {
  pid_t keeper = -1;
  std::string monitor_socket;
};

// Puts container `id`'s root file system and bind mounts into the pod's
// VM, and returns the spec the guest runs. Refuses what a pod member
// cannot have (namespaces joined by path other than the pod's, block
// devices).
Result<PodMember> add_pod_member(const std::string& id, const RuntimeSpec& spec, const PodVm& vm);

// Takes container `id`'s files out of the pod's VM (`vm.keeper` -1: the VM
// is gone, and they with it) and removes its directory in the pod share.
// Idempotent.
void remove_pod_member(const std::string& id, const PodVm& vm);

}  // namespace isola::oci
