// Guest assets for VM isolation: the guest kernel (an uncompressed vmlinux
// booted through PVH), the modules the agent loads, and the initramfs isola
// generates around its static agent; and the choice of accelerator.
#pragma once

#include <string>

#include "common/error.h"

namespace isola {

struct GuestAssets {
  std::string kernel;          // vmlinux
  std::string initramfs;       // generated cpio (newc)
  std::string kernel_version;  // uname -r of the guest
};

// The directory the set-up fills (scripts/guest-kernel):
// ${ISOLA_CACHE:-/var/cache/isola}/guest/current.
std::string guest_dir();

// Finds the kernel and builds (once, cached by content) the initramfs: the
// agent as /init plus the modules in modules/order. `agent` is the static
// isola-agent binary.
Result<GuestAssets> prepare_guest_assets(const std::string& agent);

// "kvm" where hardware virtualisation works, else "tcg". $ISOLA_VM_ACCEL
// overrides. A PVM /dev/kvm (the kvm_pvm module) cannot run a stock guest
// kernel and counts as unusable.
std::string detect_accelerator(std::string* why = nullptr);

// The static agent: beside the isola binary in a build tree, or in
// ../libexec/isola/ once installed.
Result<std::string> find_agent();
// The library the jailed QEMU is started with (vm/preload.c), by its real path.
Result<std::string> find_qemu_preload();

}  // namespace isola
