// VM isolation behind the OCI runtime command line. An engine expects the
// container's process to be a host process it can wait for, signal and
// read the exit status of. With VM isolation that process lives in the
// guest, so a *keeper* stands in for it on the host: a child of `create`
// (the engine's shim reaps it) that boots the VM through an isola monitor
// (its own child, which dies with it, as QEMU dies with the monitor), holds
// the container's stdio or terminal, starts the guest process when `start`
// connects to start.sock, relays stdio, forwards signals, and exits with
// the guest process's exit status.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "spec/spec.h"

namespace isola::oci {

struct KeeperRequest {
  std::string id;
  std::string state_dir;     // the container's directory in the runtime root
  std::string start_socket;  // what `start` connects to
  std::string takeover_record;  // where the monitor records a network namespace it takes over
  std::string netns_pin;        // where a network namespace named by a /proc path is pinned
  std::string cgroup_path;   // the keeper joins it first; the monitor and QEMU follow
  RuntimeSpec spec;          // as the engine wrote it, host paths
  int console_socket = -1;   // with process.terminal: where the pty master goes
  int preserve_fds = 0;
  // A further container of a pod whose sandbox is a VM (pod_member.h): the
  // sandbox's monitor, and the spec the guest runs. The keeper then boots
  // nothing: it creates the container in the pod's VM at start.
  std::string pod_socket;
  Json member_spec;
};

struct Keeper {
  pid_t pid = -1;
  std::string monitor_socket;  // the isola monitor's control socket (exec, signals)
};

// Starts the keeper and returns once the guest is up and waits to be
// started, or with the error that stopped it (nothing left behind but
// netns_pin, which the caller's cleanup unmounts). What the spec's
// namespace paths lend the guest is taken first, in the caller's
// namespaces: a UTS namespace's host name, a network namespace's network.
Result<Keeper> launch_vm_keeper(KeeperRequest req);

// Runs `process` in the guest of a VM container, relaying `stdio` (or a new
// host terminal sent to `console_socket`). With `detach`, a relay process
// (a child of the caller, which the engine then reaps) carries the session
// and its PID is returned; otherwise the exit code.
struct VmExec {
  std::string monitor_socket;
  std::string pod_member;  // the container's ID when it is a further container of a pod's VM
  ProcessSpec process;
  int console_socket = -1;
  bool detach = false;
};
Result<int> exec_in_vm(const VmExec& req, pid_t* relay_pid);

}  // namespace isola::oci
