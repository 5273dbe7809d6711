// The QEMU command line of a VM-isolated container: a microvm with the
// guest kernel and isola's initramfs, the container's rootfs and volumes as
// virtio-9p shares, the agent channel as a virtio-serial port on a Unix
// socket, hardened with -sandbox.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vm/guest.h"

namespace isola {

struct VmShare {
  std::string tag;        // 9p mount tag ("rootfs", "etc", "v0", ...)
  std::string host_path;  // shared directory on the host
  std::string guest_path; // where the agent mounts it
  bool readonly = false;
};

struct VmConfig {
  std::string id;             // container ID
  GuestAssets assets;
  std::string accel;          // "kvm" or "tcg"
  uint64_t memory_mb = 256;
  unsigned cpus = 1;
  std::vector<VmShare> shares;
  std::string agent_socket;   // QEMU listens here for the agent channel
  std::string console_log;    // the guest's serial console
  uint64_t tsc_khz = 0;       // the host's TSC rate, told to a TCG guest
};

// The host's TSC frequency in kHz (measured once, cached in /run/isola).
uint64_t host_tsc_khz();

// The worker process's name as the host's `ps` shows it (comm is at most 15
// characters: "isola-vm-" and the first 6 of the ID).
std::string vm_process_name(const std::string& id);

std::vector<std::string> qemu_command(const VmConfig& config);

// Memory given to the guest for a container limit (bytes; 0: none): the
// limit plus a reserve for the guest kernel and agent.
uint64_t vm_memory_mb(int64_t container_limit);

}  // namespace isola
