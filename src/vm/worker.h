// The VM worker: QEMU started as a child of the monitor, in its jail
// (vm/jail.h), in a cgroup of its own with the VM's memory plus QEMU's and
// a pids limit, dying with its monitor, holding only the descriptors it
// must have.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "vm/jail.h"
#include "vm/qemu.h"

namespace isola {

// The descriptors a worker inherits, by their numbers in QEMU's process
// (VmConfig names them so on QEMU's command line).
inline constexpr int kWorkerTapFd = 3;      // the NIC's tap
inline constexpr int kWorkerRamFd = 4;      // guest RAM: a template maker's memfd, a clone's template (read-only)
inline constexpr int kWorkerAgentFd = 5;    // the agent channel's listening socket
inline constexpr int kWorkerQmpFd = 6;      // QMP's listening socket
inline constexpr int kWorkerConsoleFd = 7;  // the guest's console log

// The monitor's descriptors for those (-1: none).
struct WorkerFds {
  int tap = -1, ram = -1, agent = -1, qmp = -1, console = -1;
};

// The cgroup made for a worker ("isola/<id>", where a process-isolated
// container's group would be).
std::string worker_cgroup(const std::string& id);

// Starts `qemu_command(config)` jailed, with stdout and stderr to `output`
// (a file created for it). A failure to set the jail up is reported here,
// with what failed, and leaves no process and no cgroup.
Result<pid_t> spawn_worker(const VmConfig& config, const WorkerFds& fds, const std::string& output);

// Removes the cgroup made for the worker once it is gone (not one it
// joined). Idempotent.
void remove_worker_cgroup(const VmConfig& config);

}  // namespace isola
