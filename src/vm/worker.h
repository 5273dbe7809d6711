// The VM worker: QEMU started as a child of the monitor, with the worker's
// confinement (a bounding set of the capabilities 9p needs, no_new_privs,
// death with its parent) and only the descriptors it must have.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "vm/qemu.h"

namespace isola {

// Starts `qemu_command(config)` with stdout and stderr to `output` (a file
// created for it), `tap_fd` (or -1) as descriptor config.tap_fd and
// `memory_fd` (or -1) as config.memory_fd.
Result<pid_t> spawn_worker(const VmConfig& config, int tap_fd, int memory_fd, const std::string& output);

}  // namespace isola
