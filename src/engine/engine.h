// The container lifecycle over the image and container stores: create
// (record, rootfs, spec), start (monitor), signals, stop with timeout, wait,
// pause, remove and prune. The CLI is a thin layer over this.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "engine/container_store.h"
#include "engine/options.h"
#include "engine/update.h"
#include "image/store.h"
#include "net/network.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"

namespace isola {

struct ContainerPrune {
  std::vector<ContainerRecord> removed;
  std::vector<Error> errors;  // removals that failed; the others went on
};

class Engine {
 public:
  static Result<Engine> open(const std::string& root);

  ImageStore& images() { return images_; }
  ContainerStore& containers() { return containers_; }
  NetworkStore& networks() { return networks_; }

  Result<ContainerRecord> create(const RunOptions& opts);
  // Starts a created or exited container; returns the container's host PID.
  // A user's start resets the restart count and lifts a user's stop; the
  // restart policy's start (by the monitor) counts one restart, and gives
  // way to a user's stop.
  enum class StartedBy { user, restart_policy };
  Result<pid_t> start(const ContainerRecord& rec, bool wait_for_attach, StartedBy by = StartedBy::user);
  Result<void> kill(const ContainerRecord& rec, int signal);
  // The stop signal, then SIGKILL after `timeout` seconds.
  Result<void> stop(const ContainerRecord& rec, int timeout);
  // Blocks until the container has exited; returns its exit code.
  Result<int> wait(const ContainerRecord& rec);
  Result<void> pause(const ContainerRecord& rec, bool paused);
  // Removes a container; a running one only with `force` (it is killed).
  Result<void> remove(const ContainerRecord& rec, bool force);
  Result<std::vector<pid_t>> pids(const ContainerRecord& rec);
  // New limits and restart policy (engine/update.cc): checked, applied to
  // a running container's cgroup (a VM's: the container's group in the
  // guest) and then kept in the record and the spec for later starts.
  // On an error nothing has changed.
  Result<void> update(const ContainerRecord& rec, const UpdateOptions& opts);
  // What the container uses as the host sees it: its cgroup's counters, or
  // a VM's worker's (CPU time and resident memory against the VM's size).
  CgroupStats usage(const ContainerRecord& rec);
  // Starts `process` in a running process-isolated container (joining its
  // namespaces and cgroups); the caller waits for the returned PID. A
  // VM-isolated container's exec goes through its monitor instead.
  Result<pid_t> exec_process(const ContainerRecord& rec, const RuntimeSpec& spec, const ProcessSpec& process,
                             const StdioFds& stdio);
  // Removes every container that is not running or paused, what crashed
  // creates and removals left, and the leases of containers that are gone.
  ContainerPrune prune_containers();

  Result<void> mount_rootfs(const ContainerRecord& rec);

  // A new image: the container's image plus its changes (its overlay upper
  // directory) as one more layer. A running container is not paused: what
  // it writes meanwhile may or may not be in the layer.
  Result<LoadReport> commit(const ContainerRecord& rec, const NewImage& spec);

 private:
  Engine(ImageStore images, ContainerStore containers, NetworkStore networks)
      : images_(std::move(images)), containers_(std::move(containers)), networks_(std::move(networks)) {}
  Result<void> cleanup(const ContainerRecord& rec);
  // A user's stop, kill or rm: no restart by the policy, and a monitor
  // waiting out its back-off gives up (the state is then re-read).
  void stopped_by_user(const ContainerRecord& rec, ContainerState& st);
  ImageStore images_;
  ContainerStore containers_;
  NetworkStore networks_;
};

// "SIGTERM", "TERM", "15" → 15.
Result<int> parse_signal(const std::string& text);
Json run_options_to_json(const RunOptions& o);
// The container's --stop-timeout in seconds (docker's 10 when not given).
int stop_timeout_of(const ContainerRecord& rec);

}  // namespace isola
