// The docker flags of run and create that shape the container's process,
// its /etc files, resources, devices and lifecycle (--add-host, --dns*,
// --ulimit, --shm-size, --group-add, --sysctl, --cidfile, --stop-signal,
// --stop-timeout, --cpuset-cpus, --memory-swap, --memory-reservation,
// --oom-kill-disable, --device, -a, --sig-proxy): their registration and
// the checks that turn each value into RunOptions or a clear error.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/options.h"

namespace isola::cli {

// The flags' raw values, as typed.
struct ExtraRunArgs {
  std::vector<std::string> add_hosts, ulimits, sysctls, devices, attach;
  std::string shm_size, memory_swap, memory_reservation, stop_signal, stop_timeout;
  bool sig_proxy = true;
};

void add_extra_run_flags(CLI::App* cmd, ExtraRunArgs& a, RunOptions& o);

// Checks every value and fills `o`; errors read "--flag: what; fix". Needs
// --memory, --network, --isolation and -d already in `o`.
Result<void> finish_extra_run_flags(const ExtraRunArgs& a, RunOptions& o);

// --cidfile: refused when the file exists (before anything is created);
// written once the container is.
Result<void> check_cidfile(const std::string& path);
Result<void> write_cidfile(const std::string& path, const std::string& id);

}  // namespace isola::cli
