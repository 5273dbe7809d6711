// The checks of resource flags that `run`/`create` and `update` share, so
// that both refuse the same values in the same words.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "common/error.h"

namespace isola {

// "0-2,4" → {0, 1, 2, 4}; empty when malformed.
std::set<long> cpu_list(const std::string& text);
// The host's online CPUs, as the kernel lists them ("0-1").
std::string online_cpus();
// --cpuset-cpus: a well-formed list of CPUs this host has. `field` names
// it in errors (linux.resources.cpu.cpus for isola-runtime).
Result<void> check_cpuset(const std::string& text, const std::string& field = "--cpuset-cpus");
// The same for memory nodes (linux.resources.cpu.mems).
Result<void> check_cpuset_mems(const std::string& text, const std::string& field);
// The memory limits as they will be (bytes; 0: none; swap -1: unlimited):
// swap needs a memory limit and is at least it, and the reservation is at
// most it. `changed` is the flag to blame for a reservation above the limit.
Result<void> check_memory_limits(int64_t memory, int64_t memory_swap, int64_t reservation, const char* changed);
// 64 MiB, 1.5 MiB: a size in a message.
std::string mib(int64_t bytes);

}  // namespace isola
