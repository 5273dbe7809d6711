// Containers on disk: one directory per container under <root>/containers,
// with its static record (container.json), its state (state.json, replaced
// atomically by whoever changes it, under the container's lock), its runtime
// spec (config.json), its overlay upper/work directories, its rootfs mount
// point and its log. Runtime files (the monitor's control socket) live in
// /run/isola/<id>. Names are unique within a root.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"
#include "engine/options.h"

namespace isola {

struct ContainerRecord {
  std::string id;        // 64 hex
  std::string name;
  std::string image;     // as the user gave it
  std::string image_id;  // 64 hex
  std::vector<std::string> command;  // the process args
  int64_t created_ns = 0;
  Isolation isolation = Isolation::process;
  bool tty = false, interactive = false, auto_remove = false;
  // The monitor writes the output to container.log (off when the caller,
  // e.g. an engine behind isola-runtime, keeps its own log).
  bool keep_log = true;
  std::string stop_signal = "SIGTERM";
  // With --userns=auto: container ids 0..65535 are host ids base..base+65535.
  uint32_t userns_base = 0;
  std::map<std::string, std::string> labels;
  Json options;  // the RunOptions, for restart and inspect

  Json to_json() const;
  static Result<ContainerRecord> from_json(const Json& j);
};

struct ContainerState {
  std::string status = "created";  // created, running, paused, restarting, exited
  pid_t pid = 0;                   // container init, host PID
  uint64_t pid_start = 0;          // its start time (clock ticks), against PID reuse
  pid_t monitor_pid = 0;
  uint64_t monitor_start = 0;
  int exit_code = 0;
  bool oom_killed = false;
  int restart_count = 0;  // restarts by the restart policy since the last start by a user
  int64_t restart_delay_ms = 0;  // the back-off before the last of them
  int64_t started_ns = 0, finished_ns = 0;
  std::string error;
  // VM isolation: `pid` is the VM worker (QEMU); these describe the guest.
  std::string accelerator, guest_kernel;
  int64_t boot_ms = 0;  // QEMU start to the agent's hello (kernel, modules, agent)
  int64_t exec_ms = 0;  // the create request to the container's process running
  // How the VM started: "template" (a clone) or "cold"; why cold; the
  // template's key; each phase of the start in milliseconds.
  std::string boot, boot_reason, template_key;
  Json boot_phases = Json::object();

  Json to_json() const;
  static ContainerState from_json(const Json& j);
};

// The start time of a process (field 22 of /proc/PID/stat), 0 if it is gone.
uint64_t process_start_time(pid_t pid);
// True when `pid` is alive and is the process that started at `start`.
bool process_matches(pid_t pid, uint64_t start);
// Nanoseconds since the epoch, and as RFC 3339 with nanoseconds.
int64_t now_ns();
std::string format_time_ns(int64_t ns);

// Host id ranges for --userns=auto: 65536 ids each, from 2^20 up.
inline constexpr uint32_t kUsernsFirstBase = 1u << 20;
inline constexpr uint32_t kUsernsSize = 65536;

class ContainerStore {
 public:
  static Result<ContainerStore> open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string dir(const std::string& id) const;
  std::string rootfs_dir(const std::string& id) const { return path_join(dir(id), "rootfs"); }
  std::string upper_dir(const std::string& id) const { return path_join(dir(id), "upper"); }
  std::string work_dir(const std::string& id) const { return path_join(dir(id), "work"); }
  std::string etc_dir(const std::string& id) const { return path_join(dir(id), "etc"); }
  // With a user namespace: the image's layers, copied with shifted owners.
  std::string shifted_dir(const std::string& id) const { return path_join(dir(id), "lower"); }
  std::string log_path(const std::string& id) const { return path_join(dir(id), "container.log"); }
  std::string spec_path(const std::string& id) const { return path_join(dir(id), "config.json"); }
  std::string vm_path(const std::string& id) const { return path_join(dir(id), "vm.json"); }
  std::string console_path(const std::string& id) const { return path_join(dir(id), "vm-console.log"); }
  // State.Health, written by the health prober (engine/health.h).
  std::string health_path(const std::string& id) const { return path_join(dir(id), "health.json"); }
  // Present while a user's stop or kill holds: the restart policy does not
  // apply (docker's HasBeenManuallyStopped). A start removes it.
  std::string manual_stop_path(const std::string& id) const { return path_join(dir(id), "stopped-by-user"); }
  static std::string run_dir(const std::string& id);
  static std::string socket_path(const std::string& id);
  static std::string agent_socket_path(const std::string& id) { return run_dir(id) + "/agent.sock"; }

  // Allocates an ID (and a name if none is given, and a host id range if
  // `allocate_userns`), creates the directory and writes the record. Fails
  // if the name is taken.
  Result<ContainerRecord> create(ContainerRecord record, bool allocate_userns = false);
  // Unmounts the container's rootfs.
  Result<void> unmount_rootfs(const std::string& id) const;
  Result<std::vector<ContainerRecord>> list() const;
  // A full ID, a unique ID prefix, or a name.
  Result<ContainerRecord> resolve(const std::string& ref) const;
  Result<void> rename(const std::string& ref, const std::string& new_name);
  // Replaces container.json atomically (isola update); the caller holds
  // the container's lock.
  Result<void> write_record(const ContainerRecord& rec) const;
  Result<void> remove(const std::string& id);
  // Removes what a create or remove that crashed left: a half-written
  // `<id>.creating` directory, a half-deleted `tmp/container-<id>`.
  Result<void> remove_stale();

  // The state as recorded, corrected for a monitor or container that died
  // without recording it: then the container shows as exited.
  ContainerState state(const std::string& id) const;
  ContainerState recorded_state(const std::string& id) const;
  Result<void> write_state(const std::string& id, const ContainerState& state) const;
  // Serialises state changes of one container.
  Result<FileLock> lock(const std::string& id) const;

 private:
  explicit ContainerStore(std::string root) : root_(std::move(root)) {}
  Result<FileLock> lock_names() const;
  // remove_stale() for a caller holding lock_names().
  void remove_stale_locked() const;
  std::string root_;
};

}  // namespace isola
