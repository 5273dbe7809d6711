// cgroups for process isolation, on pure cgroup v2 hosts and on v1/hybrid
// hosts (v1 controllers mounted under /sys/fs/cgroup/<controller>). One
// Cgroup owns one container's group in every hierarchy in use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "spec/spec.h"

namespace isola {

struct CgroupStats {
  uint64_t memory_usage = 0;   // bytes
  uint64_t memory_limit = 0;   // bytes; 0 when unlimited
  uint64_t cpu_usage_ns = 0;   // total CPU time
  uint64_t pids_current = 0;
  uint64_t pids_limit = 0;     // 0 when unlimited
};

enum class CgroupMode { v1, hybrid, v2 };
// Detects the host's layout from /proc/self/mountinfo (or statfs).
CgroupMode detect_cgroup_mode();

class Cgroup {
 public:
  // Creates the group `path` (relative, e.g. "isola/<id>") in every
  // hierarchy that matters and applies `resources`.
  static Result<Cgroup> create(const std::string& path, const Resources& resources);
  // Opens an existing group (for stats, freeze, kill, destroy).
  static Result<Cgroup> open(const std::string& path);

  const std::string& path() const { return path_; }
  Result<void> add_process(pid_t pid);
  Result<void> update(const Resources& resources);
  Result<void> freeze(bool frozen);
  Result<CgroupStats> stats() const;
  // PIDs (as the host sees them) of every process in the group.
  Result<std::vector<pid_t>> pids() const;
  // True when the kernel's OOM killer killed a process of this group.
  Result<bool> oom_killed() const;
  // Sends `sig` to every process of the group.
  Result<void> kill_all(int sig);
  // Removes the group everywhere (kills what is left first). Idempotent.
  Result<void> destroy();

 private:
  std::string path_;
  std::vector<std::string> dirs_;  // absolute directories, one per hierarchy
};

}  // namespace isola
