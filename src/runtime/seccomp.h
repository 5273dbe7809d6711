// seccomp filters: docker's default profile, profiles read from JSON, and
// their compiled BPF form. Compiling (libseccomp) happens before the
// container's process is made, and its result is cached; the process only
// loads the program.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "spec/spec.h"

namespace isola {

// An allow-list profile with docker's default semantics: default action
// ERRNO(EPERM), the common syscalls allowed, dangerous ones (mount, kexec,
// bpf, keyctl, add_key, unshare, setns, reboot, swapon, init_module, ...)
// left to the default; clone with namespace flags denied, clone3 ENOSYS (so
// libc falls back to clone), ptrace allowed from Linux 4.8 on (as docker).
// Fixed for docker's default capabilities: unlike docker it does not open
// mount etc. when --cap-add SYS_ADMIN is given.
SeccompSpec default_seccomp_profile();

// An allow-list with no entries yet: default action ERRNO(EPERM), for this
// machine's native architecture and (unless native_only) its compatible
// ones (x86 and x32 beside x86_64).
SeccompSpec empty_allow_list(bool native_only);

// Parses a seccomp profile in docker's JSON format or the OCI spec's format
// (architectures or docker's archMap; names or name; errnoRet; args). Docker's
// includes/excludes are judged once, for docker's default capabilities and
// this machine's architecture and kernel. A mistyped field is an error naming
// it ("syscalls[3].args[0].op"); syscall names libseccomp does not know are
// skipped when the filter is loaded.
Result<SeccompSpec> parse_seccomp_profile(const Json& j);

// A filter compiled to classic BPF, ready to load.
struct SeccompProgram {
  std::vector<sock_filter> insns;
};

// Where compiled filters are kept, by the hash of their profile (and of
// libseccomp's version and this architecture): root's alone.
inline constexpr const char* kSeccompCacheDir = "/run/isola/seccomp";

// The cache compile_seccomp uses for containers (kSeccompCacheDir unless
// set; "" for none: a VM's guest starts afresh each time, and its agent
// turns the cache off).
const std::string& seccomp_cache_dir();
void set_seccomp_cache_dir(std::string dir);

// Compiles `seccomp` (checking every action, operator and syscall name as
// loading would). With a `cache_dir`, a program compiled before for the
// same profile is read from there, and a new one is stored.
Result<SeccompProgram> compile_seccomp(const SeccompSpec& seccomp, const std::string& cache_dir = kSeccompCacheDir);

// Makes compile_seccomp return `program` for `seccomp` in this process
// without compiling: a VM's host compiles the container's filter (fast,
// and cached on the host) and its guest agent, where compiling under
// emulation costs tens of milliseconds, takes the result. The program
// must be a whole number of instructions within the kernel's limit.
Result<void> remember_seccomp(const SeccompSpec& seccomp, SeccompProgram program);
// The program's bytes as the kernel reads them, and back.
std::string seccomp_program_bytes(const SeccompProgram& program);
Result<SeccompProgram> seccomp_program_from_bytes(std::string_view bytes);

// Loads a compiled program into the calling process; allocates nothing.
// Does not set no_new_privs: without it and without CAP_SYS_ADMIN the kernel
// refuses (EACCES) and the error says so.
Result<void> load_seccomp(const SeccompProgram& program);

}  // namespace isola
