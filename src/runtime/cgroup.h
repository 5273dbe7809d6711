// cgroups for process isolation, on pure cgroup v2 hosts and on v1/hybrid
// hosts (v1 controllers mounted under /sys/fs/cgroup/<controller>). One
// Cgroup owns one container's group in every hierarchy in use. Paths are
// relative to the root of each hierarchy (like docker's cgroupfs driver), so
// every process that opens "isola/<id>" finds the same group. Cgroup is a
// plain value: nothing is undone on destruction; call destroy().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "spec/spec.h"

namespace isola {

struct CgroupStats {
  uint64_t memory_usage = 0;   // bytes, without inactive page cache (as docker stats shows)
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
  // Creates the group `path` (relative, e.g. "isola/<id>"; no "..", "." or
  // empty components) in every hierarchy that matters and applies
  // `resources`. Memory and CPU values of 0 mean "not set", -1 "unlimited";
  // pids_limit <= 0 means unlimited; a memory limit without memory_swap also
  // caps swap. On failure nothing this call made is left behind.
  static Result<Cgroup> create(const std::string& path, const Resources& resources);
  // Makes the group in every hierarchy ahead of time, without limits or a
  // device program (create, later, finds it and applies them): a VM
  // template's guest makes its container's group at boot, so that clones
  // do not pay the kernel's group set-up under emulation.
  static Result<void> prepare(const std::string& path);
  // Opens an existing group (for stats, freeze, kill, destroy); an error
  // with err == ENOENT when it exists in no hierarchy.
  static Result<Cgroup> open(const std::string& path);

  const std::string& path() const { return path_; }
  Result<void> add_process(pid_t pid);
  Result<void> update(const Resources& resources);
  Result<void> freeze(bool frozen);
  // True when the group is frozen (or freezing).
  Result<bool> frozen() const;
  Result<CgroupStats> stats() const;
  // PIDs (as the host sees them) of every process in the group and its subgroups.
  Result<std::vector<pid_t>> pids() const;
  // True when the kernel's OOM killer killed a process of this group.
  Result<bool> oom_killed() const;
  // Sends `sig` to every process of the group and its subgroups; for SIGKILL
  // also waits until they are gone (cgroup.kill on v2, freeze-kill-thaw on v1).
  Result<void> kill_all(int sig);
  // Removes the group and its subgroups everywhere (kills what is left
  // first); the parents ("isola") stay. Idempotent.
  Result<void> destroy();

 private:
  std::string path_;
  std::vector<std::string> dirs_;  // absolute directories, one per hierarchy
};

}  // namespace isola
