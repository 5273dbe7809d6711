// Device access on the unified cgroup hierarchy (cgroup v2), where there is
// no devices controller: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE
// attached to the container's cgroup decides every open and mknod of a
// device node. It enforces the same list as the v1 controller: the spec's
// rules, then the default nodes; the last rule that matches decides, and no
// match means no access.
#pragma once

#include <cstdint>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "spec/spec.h"

namespace isola {

struct BpfInsn {
  uint8_t code;
  uint8_t regs;  // dst in the low nibble, src in the high one
  int16_t off;
  int32_t imm;
};

// The program for `rules` followed by isola's default allow list.
std::vector<BpfInsn> device_filter_program(const std::vector<DeviceRule>& rules);

// Loads the program for `rules` and attaches it to the cgroup v2 directory
// `cgroup_dir` (replacing nothing: a new group has no program). A program
// loaded before in this process (preload_device_filter) is attached as it
// is, without loading it again.
Result<void> attach_device_filter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules);

// Loads the program for `rules` now and keeps it for this process: a VM
// template's guest agent loads the usual ones at boot, so that its clones
// attach them without running the kernel's verifier under emulation.
Result<void> preload_device_filter(const std::vector<DeviceRule>& rules);

}  // namespace isola
