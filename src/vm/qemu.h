// The QEMU command line of a VM-isolated container: a microvm with the
// guest kernel and isola's initramfs, the container's rootfs and volumes as
// virtio-9p shares, the agent channel as a virtio-serial port on a Unix
// socket, a virtio-net NIC on a tap descriptor the monitor opened (when the
// container has a network), hardened with -sandbox.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vm/guest.h"
#include "vm/vm_network.h"

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
  std::string agent_socket;   // the agent channel's socket (QEMU gets it listening, as agent_fd)
  std::string console_log;    // the guest's serial console (QEMU gets it open, as console_fd)
  int agent_fd = -1;          // descriptor numbers in QEMU's process (vm/worker.h)
  int console_fd = -1;
  int qmp_fd = -1;
  std::string jail_root;      // an empty directory the worker's jail is built on
  // The worker's cgroup: "isola/<id>", made for it; or, under
  // isola-runtime, the container's own, which it joins (join_cgroup).
  std::string worker_cgroup;
  bool join_cgroup = false;
  uint64_t tsc_khz = 0;       // the host's TSC rate, told to a TCG guest
  std::optional<VmNetwork> network;  // a NIC on `tap_fd`
  int tap_fd = -1;            // the tap's descriptor number in QEMU's process
  std::string kernel_args;    // appended to the guest's command line ($ISOLA_VM_KERNEL_ARGS)
  // Templates (vm/template.h): guest RAM in a file instead of anonymous
  // memory, shared (a template being made) or private (a clone), a QMP
  // socket, and -incoming defer for a clone.
  int memory_fd = -1;          // the RAM is this descriptor in QEMU's process
  bool memory_shared = false;
  std::string qmp_socket;      // QEMU gets it listening, as qmp_fd
  bool incoming = false;
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
// The most a container may use in a VM of `vm_memory_mb` (bytes): the VM
// less that reserve (isola update cannot give it more than its VM has).
int64_t vm_container_memory_max(uint64_t vm_memory_mb);

}  // namespace isola
