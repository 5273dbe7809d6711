// The security defaults of process isolation and the calls that apply them
// in the container's process between clone and exec (no exceptions there, no
// allocation after seccomp is loaded: apply_rlimits, set_no_new_privileges
// and switch_user_and_capabilities do not allocate unless they fail).
//
// Order in the child, as runc does it: the kernel accepts a seccomp filter
// from a process without CAP_SYS_ADMIN only once no_new_privs is set, so
//   no_new_privileges:  apply_rlimits, switch_user_and_capabilities,
//                       set_no_new_privileges, apply_seccomp, exec
//   otherwise:          apply_rlimits, apply_seccomp (still privileged),
//                       switch_user_and_capabilities, exec
// The default profile allows every call the later steps make.
#pragma once

#include <vector>

#include "common/error.h"
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

// An allow-list profile with docker's default semantics: default action
// ERRNO(EPERM), the common syscalls allowed, dangerous ones (mount, kexec,
// bpf, keyctl, add_key, unshare, setns, reboot, swapon, init_module, ...)
// left to the default; clone with namespace flags denied, clone3 ENOSYS (so
// libc falls back to clone), ptrace allowed from Linux 4.8 on (as docker).
// Fixed for docker's default capabilities: unlike docker it does not open
// mount etc. when --cap-add SYS_ADMIN is given.
SeccompSpec default_seccomp_profile();

// Parses a seccomp profile in docker's JSON format or the OCI spec's format
// (architectures or docker's archMap; names or name; errnoRet; args). Docker's
// includes/excludes are judged once, for docker's default capabilities and
// this machine's architecture and kernel. A mistyped field is an error naming
// it ("syscalls[3].args[0].op"); syscall names libseccomp does not know are
// skipped when the filter is loaded.
Result<SeccompSpec> parse_seccomp_profile(const Json& j);

Result<void> apply_rlimits(const std::vector<Rlimit>& rlimits);
// setgroups/setresgid/setresuid to the process user, then the capability
// sets (bounding dropped before the switch, ambient raised after). Without
// process.capabilities the sets stay as they are (the kernel clears them for
// a non-root uid). Like docker, a non-root uid ends with empty effective,
// permitted and inheritable sets unless the spec gives ambient capabilities.
Result<void> switch_user_and_capabilities(const ProcessSpec& process);
Result<void> set_no_new_privileges();
// Loads the filter (see the order above). Does not set no_new_privs by
// itself; without it and without CAP_SYS_ADMIN the kernel refuses (EACCES)
// and the error says so.
Result<void> apply_seccomp(const SeccompSpec& seccomp);

}  // namespace isola
