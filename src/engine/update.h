// isola update: what may change in an existing container (docker update's
// flags), checked against the container and its isolation level.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/options.h"

namespace isola {

// docker's smallest memory limit.
inline constexpr int64_t kMinMemoryLimit = int64_t{6} << 20;
// The kernel's PID_MAX_LIMIT on 64-bit hosts: pids.max takes nothing larger.
inline constexpr int64_t kMaxPidsLimit = int64_t{4} << 20;

// What `isola update` was asked to change; what is absent stays as it is.
struct UpdateOptions {
  std::optional<int64_t> memory;              // bytes
  std::optional<int64_t> memory_swap;         // bytes of memory plus swap; -1 unlimited
  std::optional<int64_t> memory_reservation;  // bytes (the soft limit)
  std::optional<double> cpus;
  std::optional<std::string> cpuset_cpus;     // process isolation only
  std::optional<int64_t> pids_limit;          // 0 or less: unlimited
  std::optional<RestartPolicy> restart;

  bool empty() const {
    return !memory && !memory_swap && !memory_reservation && !cpus && !cpuset_cpus && !pids_limit && !restart;
  }
};

}  // namespace isola
