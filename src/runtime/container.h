// Process isolation: creating a container's process on the host kernel from
// a RuntimeSpec — namespaces, cgroup, mounts, pivot_root, devices, masked
// paths, hostname, user, rlimits, capabilities, no_new_privs, seccomp, exec —
// and running further processes inside it (exec).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "spec/spec.h"

namespace isola {

// Descriptors in the caller that become 0, 1 and 2 of the container process.
// -1 means /dev/null. With a terminal, `console` (a pty slave) becomes the
// controlling terminal and fds 0-2; the others are ignored.
struct StdioFds {
  int in = -1, out = -1, err = -1;
  int console = -1;
  // With a terminal and no `console`: the process makes its pty inside the
  // container (its own /dev/ptmx, so `tty` names /dev/pts/N there) and sends
  // the master over this Unix socket with SCM_RIGHTS, as runc's
  // --console-socket does.
  int console_socket = -1;
  // Descriptors 3 .. 3+preserve_fds-1 of the caller stay open, as the same
  // numbers, in the process (runc's --preserve-fds, e.g. for socket activation).
  int preserve_fds = 0;
};

struct SpawnOptions {
  std::string id;  // container ID, for messages
  // When true, the container process stops right before exec until start()
  // is called (the OCI create/start split).
  bool wait_for_start = false;
  // With wait_for_start: instead of waiting on the caller (start_container),
  // the process accepts one connection on this listening SOCK_SEQPACKET
  // socket, so that another process can start it after the caller is gone
  // (see start_created). The caller keeps its own copy of the socket.
  int start_listener = -1;
  // The process is killed when the caller dies (a monitor owns it). An OCI
  // runtime's caller exits right after create, so it turns this off.
  bool die_with_parent = true;
  // A fresh anonymous session keyring, so the container cannot reach the
  // caller's keys (runc's default; --no-new-keyring turns it off).
  bool new_keyring = true;
  // Called with the child's pid once its namespaces exist and before it
  // goes on (its network namespace can be given interfaces here: made by
  // the clone, it belongs to the container's user namespace, if any).
  std::function<Result<void>(pid_t)> on_namespaces;
};

struct Spawned {
  pid_t pid = -1;       // the container's init, as the host sees it; the caller reaps it
  UniqueFd start_fd;    // with wait_for_start: write one byte to let it exec
};

// Creates the container and starts (or readies) its process. The caller must
// be single-threaded. On failure nothing is left: no process, no cgroup, no
// mount. Errors during the child's set-up (e.g. the command is not found)
// come back as an Error whose `err` is the child's errno and whose message
// names the step; exec failures use op "exec" (and set exit_code: 127 for
// ENOENT, 126 otherwise) so callers can answer like docker.
// The spec must ask for a mount namespace; a hostname needs a uts namespace
// other than the caller's; a new user namespace needs uid and gid mappings.
Result<Spawned> spawn_container(const RuntimeSpec& spec, const SpawnOptions& opts, const StdioFds& stdio);

// Lets a container created with wait_for_start exec its process, and waits
// until it has (or has failed to: the exec error, as from spawn_container).
// On failure the process is killed; the caller still reaps it.
Result<void> start_container(Spawned& spawned);

// Starts a process that waits on a start listener (SpawnOptions): connects
// to `socket_path`, lets it exec and reports how that went, as
// start_container. `what` names the container in errors.
Result<void> start_created(const std::string& socket_path, const std::string& what);

// The other end of start_created for a process that stands in for a
// container (isola-runtime's VM keeper): waits for a starter to connect to
// `listener` and send its byte, calls `run`, and reports its error to the
// starter (success closes the connection, as an exec does). Returns run's
// result; an error also when nobody could connect.
Result<void> serve_start(int listener, const std::function<Result<void>()>& run);

// Runs `process` inside the running container whose init is `init_pid`:
// joins its namespaces and cgroups and applies the same security settings
// as the container: `process` gives the user, and `spec` the seccomp filter,
// the capabilities and rlimits when `process` has none, and no_new_privs
// when either asks for it. Returns once the command is exec'd; the PID is
// the host's PID of the process running the command, a direct child of the
// caller, which reaps it. The caller must be single-threaded (it enters the
// container's pid namespace for children for the length of one fork).
Result<pid_t> exec_in_container(pid_t init_pid, const RuntimeSpec& spec, const ProcessSpec& process,
                                const StdioFds& stdio);

}  // namespace isola
