// The VM worker's own seccomp filter, loaded before QEMU is executed (and
// so before QEMU's -sandbox adds its own): an allow-list of the system
// calls a running worker makes, measured (docs/security.md), everything
// else refused with EPERM.
#pragma once

#include "common/error.h"
#include "runtime/seccomp.h"

namespace isola {

SeccompSpec worker_seccomp_profile();
// The compiled filter (cached like containers' filters).
Result<SeccompProgram> worker_seccomp_program();

}  // namespace isola
