// The security defaults of process isolation and the calls that apply them
// in the container's process between clone and exec (no exceptions there, no
// allocation after seccomp is loaded).
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
// Adds or drops names ("NET_ADMIN", "CAP_NET_ADMIN" or "ALL") as --cap-add / --cap-drop do.
Result<Capabilities> adjust_capabilities(Capabilities caps, const std::vector<std::string>& add,
                                         const std::vector<std::string>& drop);

// An allow-list profile with docker's default semantics: default action
// ERRNO(EPERM), the common syscalls allowed, dangerous ones (mount, kexec,
// bpf, ptrace of others, keyctl, add_key, unshare, setns, reboot, swapon,
// init_module, ...) left to the default; clone with namespace flags denied.
SeccompSpec default_seccomp_profile();

// Parses a seccomp profile in docker's JSON format or the OCI spec's format.
Result<SeccompSpec> parse_seccomp_profile(const Json& j);

Result<void> apply_rlimits(const std::vector<Rlimit>& rlimits);
// setgroups/setresgid/setresuid to the process user, then the capability
// sets (bounding dropped before the switch, ambient raised after).
Result<void> switch_user_and_capabilities(const ProcessSpec& process);
Result<void> set_no_new_privileges();
// Loads the filter; call last before exec.
Result<void> apply_seccomp(const SeccompSpec& seccomp);

}  // namespace isola
