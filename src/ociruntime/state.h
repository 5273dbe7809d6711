// isola-runtime's record of the containers it created: one directory per
// container under the --root directory (default /run/isola-runtime), with
// state.json (what `state` reports), config.json (the spec as parsed at
// create, for exec, update and the poststop hooks) and, while the container
// is created but not started, start.sock (what `start` connects to).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/unique_fd.h"

namespace isola::oci {

enum class Backend { process, vm };

struct ContainerInfo {
  std::string id;
  std::string bundle;  // absolute
  std::string rootfs;  // absolute
  Backend backend = Backend::process;
  pid_t pid = 0;             // the container's process as the host sees it (VM: the keeper)
  uint64_t pid_start = 0;    // its start time, against PID reuse
  std::string cgroup_path;   // relative to the cgroup roots; empty: none
  int64_t created_ns = 0;
  std::map<std::string, std::string> annotations;
  // VM isolation: the keeper's control socket (for a pod's further
  // container, the pod VM's: its sandbox's).
  std::string keeper_socket;
  std::string pod_sandbox;  // a pod's further container in its sandbox's VM: the sandbox's ID

  Json to_json() const;
  static Result<ContainerInfo> from_json(const Json& j);
};

// "created", "running", "paused" or "stopped", as the runtime spec names them.
std::string status_of(const ContainerInfo& info, const std::string& start_socket);

// The state document of the OCI runtime spec.
Json oci_state(const ContainerInfo& info, const std::string& status);

class StateRoot {
 public:
  static Result<StateRoot> open(const std::string& root);

  std::string dir(const std::string& id) const { return path_join(root_, id); }
  std::string state_path(const std::string& id) const { return path_join(dir(id), "state.json"); }
  std::string spec_path(const std::string& id) const { return path_join(dir(id), "config.json"); }
  std::string start_socket(const std::string& id) const { return path_join(dir(id), "start.sock"); }
  // A VM container's record of the network namespace it took over (net/netns_takeover.h).
  std::string takeover_path(const std::string& id) const { return path_join(dir(id), "netns-takeover.json"); }
  std::string netns_pin(const std::string& id) const { return path_join(dir(id), "netns"); }

  // Serialises commands on one container (start/delete/pause/update): an
  // exclusive flock on its directory, held while the result lives. A
  // container that does not exist is an error ("... does not exist").
  Result<UniqueFd> lock(const std::string& id) const;
  // Makes the directory of a new container; fails if the ID is in use.
  Result<void> add(const std::string& id) const;
  Result<ContainerInfo> load(const std::string& id) const;
  Result<void> save(const ContainerInfo& info) const;
  Result<void> remove(const std::string& id) const;
  Result<std::vector<std::string>> list() const;

 private:
  explicit StateRoot(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// Container IDs: letters, digits and _ + - . (not starting with '.'), at
// most 1024 bytes, so an ID is always a plain file name.
Result<void> check_id(const std::string& id);

}  // namespace isola::oci
