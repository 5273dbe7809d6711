// The security defaults of process isolation and the calls that apply them
// in the container's process between clone and exec (no exceptions there, no
// allocation after seccomp is loaded: apply_rlimits, set_no_new_privileges
// and switch_user_and_capabilities do not allocate unless they fail).
//
// Order in the child, as runc does it: the kernel accepts a seccomp filter
// from a process without CAP_SYS_ADMIN only once no_new_privs is set, so
//   no_new_privileges:  apply_rlimits, switch_user_and_capabilities,
//                       set_no_new_privileges, load_seccomp, exec
//   otherwise:          apply_rlimits, load_seccomp (still privileged),
//                       switch_user_and_capabilities, exec
// The default profile allows every call the later steps make.
#pragma once

#include <vector>

#include "common/error.h"
#include "runtime/seccomp.h"
#include "spec/spec.h"

namespace isola {

// Docker's default capability set (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID,
// CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW, CAP_SETGID, CAP_SETUID, CAP_SETFCAP,
// CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE).
Capabilities default_capabilities();
// Every capability the running kernel knows (for --privileged).
Capabilities all_capabilities();
// Adds or drops names ("NET_ADMIN", "CAP_NET_ADMIN", any case, or "ALL") as
// --cap-add / --cap-drop do: add ALL = every capability but the dropped ones;
// drop ALL = only the added ones; otherwise drop, then add. Adding grows
// bounding/effective/permitted; dropping shrinks every set. An unknown name
// is an error that names it.
Result<Capabilities> adjust_capabilities(Capabilities caps, const std::vector<std::string>& add,
                                         const std::vector<std::string>& drop);

// Every type known and soft <= hard.
Result<void> check_rlimits(const std::vector<Rlimit>& rlimits);
Result<void> apply_rlimits(const std::vector<Rlimit>& rlimits);
// setgroups/setresgid/setresuid to the process user, then the capability
// sets (bounding dropped before the switch, ambient raised after). Without
// process.capabilities the sets stay as they are (the kernel clears them for
// a non-root uid). Like docker, a non-root uid ends with empty effective,
// permitted and inheritable sets unless the spec gives ambient capabilities
// (that are also permitted and inheritable: the others are left out).
Result<void> switch_user_and_capabilities(const ProcessSpec& process);
Result<void> set_no_new_privileges();
// The ambient capabilities of `caps` the kernel would not raise, since they
// are not also permitted and inheritable (`runc spec` of runc 1.1 writes
// such a set). switch_user_and_capabilities leaves them out, as runc does;
// the caller warns.
std::vector<std::string> unraisable_ambient(const Capabilities& caps);
// The names of the capabilities in `mask` ("CAP_CHOWN", ...).
std::vector<std::string> cap_names(uint64_t mask);
// Sets the calling thread's effective, permitted and inheritable sets.
Result<void> capset_masks(uint64_t effective, uint64_t permitted, uint64_t inheritable);
}  // namespace isola
