// A pod's VM boots with one share more than a container's VM: "pod", an
// empty directory. The pod's further containers (created after the boot,
// when the microvm's devices are fixed) reach the guest through it: their
// root file systems and bind mounts are grafted below it, in the VM
// worker's mount namespace only. The host's namespace, and every other
// VM's, never see them; they go when the worker does.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"

namespace isola {

inline constexpr const char* kPodShareTag = "pod";
inline constexpr const char* kPodShareGuestPath = "/run/isola/pod";

struct PodGraft {
  std::string source;  // a host path: a directory or a file (a mount's root)
  std::string target;  // below the pod share's host directory; made here
  bool recursive = true;  // with the mounts below `source` (rbind), or only it (bind)
};

// Where the mount namespace of a VM worker is, seen from the host: the
// worker's PID is its monitor's view, in the pid namespace of the monitor's
// ancestor `keeper` (a host PID), so it is looked up in the keeper's /proc.
std::string worker_mount_ns_path(pid_t keeper, pid_t worker);

// Clones each source's mount (open_tree) in the caller's mount namespace
// and moves the clones to their targets in the VM worker's mount
// namespace at `mount_ns` (QEMU's, in its jail); never into the caller's
// own. All or nothing: on failure nothing that was grafted stays.
Result<void> graft_into_worker(const std::string& mount_ns, const std::vector<PodGraft>& grafts);

// Detaches whatever is mounted at `targets` in the worker's mount namespace
// (a worker that is gone has nothing left to detach). Best effort.
void ungraft_from_worker(const std::string& mount_ns, const std::vector<std::string>& targets);

}  // namespace isola
