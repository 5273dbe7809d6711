// Capabilities (raw capget/capset/prctl, no libcap), rlimits, no_new_privs
// and seccomp (libseccomp) for the container's process, plus the defaults
// that match docker's.
#include "runtime/security.h"

#include <cstdlib>

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <optional>

#include "common/fs.h"
#include "common/log.h"

namespace isola {
namespace {

// Indexed by capability number (the kernel ABI; these never change).
constexpr const char* kCapNames[] = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",         "CAP_KILL",          "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",      "CAP_NET_RAW",       "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",   "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",          "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",   "CAP_MAC_ADMIN",     "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",    "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
constexpr int kKnownCaps = static_cast<int>(std::size(kCapNames));

constexpr const char* kDockerCaps[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",  "CAP_FOWNER",           "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",  "CAP_SETFCAP",          "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};

// What follows runs between clone and exec, possibly under a seccomp filter
// already: no allocation on success paths (raw reads into stack buffers).

// Reads a small /proc file into `buf`; returns the length or -1.
ssize_t read_small(const char* path, char* buf, size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, buf, size);
  ::close(fd);
  return n;
}

// The highest capability the running kernel knows, capped to the names we know.
int last_cap() {
  int last = -1;
  char buf[16];
  if (ssize_t n = read_small("/proc/sys/kernel/cap_last_cap", buf, sizeof buf); n > 0) {
    auto [end, ec] = std::from_chars(buf, buf + n, last);
    if (ec != std::errc()) last = -1;
  }
  if (last < 0) {  // no /proc: probe the bounding set
    last = 0;
    while (last + 1 < 64 && ::prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) ++last;
  }
  return std::min(last, kKnownCaps - 1);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

bool is_all(std::string_view name) { return iequals(name, "ALL"); }

// "CAP_NET_ADMIN", "net_admin", "Net_Admin" → 12; -1 when unknown.
int cap_number(std::string_view name) {
  if (name.size() > 4 && iequals(name.substr(0, 4), "CAP_")) name.remove_prefix(4);
  for (int i = 0; i < kKnownCaps; ++i)
    if (iequals(name, std::string_view(kCapNames[i]).substr(4))) return i;
  return -1;
}

Result<uint64_t> cap_mask(const std::vector<std::string>& names, const char* set) {
  uint64_t mask = 0;
  for (const auto& n : names) {
    int c = cap_number(n);
    if (c < 0) return fail(make_error("capabilities", n, std::string("unknown capability in the ") + set + " set"));
    mask |= uint64_t{1} << c;
  }
  return mask;
}

std::vector<std::string> cap_names(uint64_t mask) {
  std::vector<std::string> out;
  for (int i = 0; i < kKnownCaps; ++i)
    if (mask & (uint64_t{1} << i)) out.emplace_back(kCapNames[i]);
  return out;
}

struct CapMasks {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

Result<CapMasks> cap_masks(const Capabilities& c) {
  CapMasks m;
  m.bounding = TRY(cap_mask(c.bounding, "bounding"));
  m.effective = TRY(cap_mask(c.effective, "effective"));
  m.inheritable = TRY(cap_mask(c.inheritable, "inheritable"));
  m.permitted = TRY(cap_mask(c.permitted, "permitted"));
  m.ambient = TRY(cap_mask(c.ambient, "ambient"));
  return m;
}

Result<void> capset_masks(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(inheritable >> (32 * i));
  }
  if (::syscall(SYS_capset, &header, data) != 0) return fail(sys_error("capset", "effective/permitted/inheritable"));
  return {};
}

// In a user namespace whose setgroups is "deny" an empty list is moot.
bool setgroups_denied() {
  char buf[8];
  ssize_t n = read_small("/proc/self/setgroups", buf, sizeof buf);
  return n >= 4 && std::string_view(buf, 4) == "deny";
}

struct RlimitName {
  const char* name;
  int resource;
};
constexpr RlimitName kRlimits[] = {
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_FSIZE", RLIMIT_FSIZE},       {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

// ---- seccomp ---------------------------------------------------------------

#if defined(__x86_64__)
constexpr const char* kNativeArch = "SCMP_ARCH_X86_64";
constexpr const char* kNativeGoArch = "amd64";  // docker's name in includes/excludes.arches
#elif defined(__aarch64__)
constexpr const char* kNativeArch = "SCMP_ARCH_AARCH64";
constexpr const char* kNativeGoArch = "arm64";
#else
constexpr const char* kNativeArch = "";
constexpr const char* kNativeGoArch = "";
#endif

struct ActionName {
  const char* name;
  uint32_t action;  // ERRNO and TRACE get their return code added
};
constexpr ActionName kActions[] = {
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},         {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS}, {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},             {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
};

struct OpName {
  const char* name;
  scmp_compare op;
};
constexpr OpName kOps[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

Result<uint32_t> seccomp_action(const std::string& name, std::optional<uint32_t> ret, const std::string& where) {
  for (const auto& a : kActions) {
    if (name != a.name) continue;
    if (a.action == SCMP_ACT_ERRNO(0)) return SCMP_ACT_ERRNO(ret.value_or(EPERM));
    if (a.action == SCMP_ACT_TRACE(0)) return SCMP_ACT_TRACE(ret.value_or(EPERM));
    return a.action;
  }
  if (name == "SCMP_ACT_NOTIFY")
    return fail(make_error("seccomp", where, "SCMP_ACT_NOTIFY needs a listener, which isola does not support"));
  return fail(make_error("seccomp", where, "unknown action \"" + name + "\""));
}

Result<scmp_compare> seccomp_op(const std::string& name, const std::string& where) {
  for (const auto& o : kOps)
    if (name == o.name) return o.op;
  return fail(make_error("seccomp", where, "unknown operator \"" + name + "\""));
}

// "SCMP_ARCH_X86_64" → libseccomp's token; 0 when libseccomp does not know it.
uint32_t seccomp_arch(const std::string& name) {
  std::string n = name.starts_with("SCMP_ARCH_") ? name.substr(10) : name;
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(n.c_str());
}

// (major, minor) of the running kernel, or of a "4.8" string.
std::pair<int, int> kernel_version(const char* text) {
  int major = 0, minor = 0;
  std::sscanf(text, "%d.%d", &major, &minor);
  return {major, minor};
}
std::pair<int, int> running_kernel() {
  struct utsname u;
  if (::uname(&u) != 0) return {0, 0};
  return kernel_version(u.release);
}

// The syscalls an ordinary program needs, grouped loosely by purpose. Names
// libseccomp does not know on this architecture are skipped when loading.
constexpr const char* kAllowed[] = {
    // files and directories
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev", "pwritev2",
    "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "_llseek", "dup", "dup2", "dup3",
    "stat", "fstat", "lstat", "newfstatat", "statx", "stat64", "fstat64", "lstat64", "fstatat64",
    "statfs", "fstatfs", "statfs64", "fstatfs64", "access", "faccessat", "faccessat2",
    "getdents", "getdents64", "readdir", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2",
    "link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "chown32", "fchown32", "lchown32", "truncate", "ftruncate", "truncate64", "ftruncate64",
    "fallocate", "fadvise64", "fadvise64_64", "readahead", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "flock", "fcntl", "fcntl64", "ioctl", "umask", "chdir", "fchdir", "getcwd", "chroot",
    "mknod", "mknodat", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr",
    "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
    // memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "memfd_create", "memfd_secret",
    "membarrier", "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack",
    "cachestat",
    // processes, threads, signals
    "clone", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaction", "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "sigaltstack", "signalfd",
    "signalfd4", "pause", "restart_syscall", "pidfd_open", "pidfd_send_signal", "process_mrelease",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex", "futex_time64",
    "futex_waitv", "futex_wait", "futex_wake", "futex_requeue", "arch_prctl", "set_thread_area",
    "get_thread_area", "modify_ldt", "prctl", "seccomp", "getcpu", "sched_yield", "sched_getaffinity",
    "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // identity and limits
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    "getuid32", "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32", "getgroups32",
    "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setgroups32",
    "setfsuid32", "setfsgid32", "capget", "capset", "getrlimit", "setrlimit", "ugetrlimit", "prlimit64",
    "getrusage", "times", "uname", "sysinfo", "getrandom",
    // time
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "alarm", "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64",
    // waiting and events
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe", "pipe2",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
    // sockets ("socket" itself has a rule of its own)
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "shutdown", "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom",
    "recvmsg", "recvmmsg", "recvmmsg_time64", "socketcall",
    // System V and POSIX IPC (private to the container's IPC namespace)
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semtimedop_time64",
    "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
};

// Tracing was a seccomp bypass before Linux 4.8; from then on docker allows
// it (within the container's PID namespace and without CAP_SYS_PTRACE).
constexpr const char* kAllowedSince48[] = {"ptrace", "process_vm_readv", "process_vm_writev"};

// The namespace flags of clone(2): creating namespaces stays with the engine.
constexpr uint64_t kCloneNamespaceFlags = 0x7E020000;  // NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
constexpr uint64_t kAfVsock = 40;

// ---- profile JSON ----------------------------------------------------------

Error profile_error(const std::string& field, const std::string& want) {
  return make_error("parse seccomp profile", field, "must be " + want);
}

Result<std::string> profile_string(const Json& v, const std::string& field) {
  if (!v.is_string()) return fail(profile_error(field, "a string"));
  return v.get<std::string>();
}

Result<uint64_t> profile_u64(const Json& v, const std::string& field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return fail(profile_error(field, "a non-negative integer"));
}

Result<std::vector<std::string>> profile_strings(const Json& v, const std::string& field) {
  if (!v.is_array()) return fail(profile_error(field, "an array of strings"));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(TRY(profile_string(v[i], field + "[" + std::to_string(i) + "]")));
  return out;
}

Result<std::optional<uint32_t>> profile_errno(const Json& obj, const char* key, const std::string& field) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<uint32_t>();
  uint64_t v = TRY(profile_u64(*it, field));
  if (v > 4095) return fail(profile_error(field, "an errno value (0..4095)"));
  return std::optional<uint32_t>(static_cast<uint32_t>(v));
}

// Docker's conditional entries. The profile is rendered once, for a
// container with docker's default capabilities: includes.caps holds when
// every listed capability is a default one, excludes.caps when none is;
// includes/excludes.arches and minKernel are checked against this machine.
bool is_default_cap(const std::string& name) {
  int c = cap_number(name);
  for (const char* d : kDockerCaps)
    if (c >= 0 && c == cap_number(d)) return true;
  return false;
}

Result<bool> rule_applies(const Json& entry, const std::string& field) {
  for (const char* key : {"includes", "excludes"}) {
    auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) continue;
    std::string f = field + "." + key;
    if (!it->is_object()) return fail(profile_error(f, "an object"));
    bool include = std::strcmp(key, "includes") == 0;
    if (auto caps = it->find("caps"); caps != it->end() && !caps->is_null()) {
      auto names = TRY(profile_strings(*caps, f + ".caps"));
      if (include && !std::all_of(names.begin(), names.end(), is_default_cap)) return false;
      if (!include && std::any_of(names.begin(), names.end(), is_default_cap)) return false;
    }
    if (auto arches = it->find("arches"); arches != it->end() && !arches->is_null()) {
      auto names = TRY(profile_strings(*arches, f + ".arches"));
      bool listed = std::find(names.begin(), names.end(), kNativeGoArch) != names.end();
      if (!names.empty() && listed != include) return false;
    }
    if (auto min = it->find("minKernel"); min != it->end() && !min->is_null()) {
      std::string text = TRY(profile_string(*min, f + ".minKernel"));
      bool new_enough = running_kernel() >= kernel_version(text.c_str());
      if (!text.empty() && new_enough != include) return false;
    }
  }
  return true;
}

Result<SeccompRule> parse_rule(const Json& entry, const std::string& field) {
  if (!entry.is_object()) return fail(profile_error(field, "an object"));
  SeccompRule rule;
  if (auto names = entry.find("names"); names != entry.end() && !names->is_null()) {
    rule.names = TRY(profile_strings(*names, field + ".names"));
  } else if (auto name = entry.find("name"); name != entry.end()) {
    rule.names.push_back(TRY(profile_string(*name, field + ".name")));
  } else {
    return fail(profile_error(field + ".names", "present (an array of syscall names)"));
  }
  auto action = entry.find("action");
  if (action == entry.end()) return fail(profile_error(field + ".action", "present"));
  rule.action = TRY(profile_string(*action, field + ".action"));
  rule.errno_ret = TRY(profile_errno(entry, "errnoRet", field + ".errnoRet"));
  TRYV(seccomp_action(rule.action, rule.errno_ret, field + ".action"));
  if (auto args = entry.find("args"); args != entry.end() && !args->is_null()) {
    if (!args->is_array()) return fail(profile_error(field + ".args", "an array"));
    for (size_t i = 0; i < args->size(); ++i) {
      const Json& a = (*args)[i];
      std::string af = field + ".args[" + std::to_string(i) + "]";
      if (!a.is_object()) return fail(profile_error(af, "an object"));
      SeccompRule::Arg arg;
      auto index = a.find("index");
      if (index == a.end()) return fail(profile_error(af + ".index", "present"));
      uint64_t idx = TRY(profile_u64(*index, af + ".index"));
      if (idx > 5) return fail(profile_error(af + ".index", "an argument index 0..5"));
      arg.index = static_cast<uint32_t>(idx);
      auto value = a.find("value");
      if (value == a.end()) return fail(profile_error(af + ".value", "present"));
      arg.value = TRY(profile_u64(*value, af + ".value"));
      if (auto two = a.find("valueTwo"); two != a.end() && !two->is_null())
        arg.value_two = TRY(profile_u64(*two, af + ".valueTwo"));
      auto op = a.find("op");
      if (op == a.end()) return fail(profile_error(af + ".op", "present"));
      arg.op = TRY(profile_string(*op, af + ".op"));
      TRYV(seccomp_op(arg.op, af + ".op"));
      rule.args.push_back(std::move(arg));
    }
  }
  return rule;
}

// Releases a libseccomp filter context.
struct FilterOwner {
  scmp_filter_ctx ctx;
  ~FilterOwner() { seccomp_release(ctx); }
};

}  // namespace

Capabilities default_capabilities() {
  Capabilities c;
  for (const char* n : kDockerCaps) c.bounding.emplace_back(n);
  c.effective = c.bounding;
  c.permitted = c.bounding;
  return c;
}

// The capabilities this process may still hand out: its bounding set. A
// sandboxed host (or a nested engine) can lack some, and asking for them
// would make capset fail.
static uint64_t own_bounding_set() {
  uint64_t mask = ~uint64_t{0};
  auto status = read_file("/proc/self/status", 1u << 16);
  if (!status) return mask;
  size_t pos = status->find("CapBnd:");
  if (pos == std::string::npos) return mask;
  return std::strtoull(status->c_str() + pos + 7, nullptr, 16);
}

Capabilities all_capabilities() {
  Capabilities c;
  int last = last_cap();
  uint64_t allowed = own_bounding_set();
  for (int i = 0; i <= last; ++i)
    if (allowed & (uint64_t{1} << i)) c.bounding.emplace_back(kCapNames[i]);
  c.effective = c.bounding;
  c.permitted = c.bounding;
  return c;
}

// Docker's rules: --cap-add ALL gives every capability but the dropped ones;
// --cap-drop ALL keeps only the added ones; otherwise drop, then add. Adding
// grows bounding/effective/permitted; dropping also shrinks inheritable and
// ambient.
Result<Capabilities> adjust_capabilities(Capabilities caps, const std::vector<std::string>& add,
                                         const std::vector<std::string>& drop) {
  uint64_t add_mask = 0, drop_mask = 0;
  bool add_all = false, drop_all = false;
  for (const auto& n : add) {
    if (is_all(n)) add_all = true;
    else if (int c = cap_number(n); c >= 0) add_mask |= uint64_t{1} << c;
    else return fail(make_error("--cap-add", n, "unknown capability"));
  }
  for (const auto& n : drop) {
    if (is_all(n)) drop_all = true;
    else if (int c = cap_number(n); c >= 0) drop_mask |= uint64_t{1} << c;
    else return fail(make_error("--cap-drop", n, "unknown capability"));
  }
  // "ALL" is everything this process can still grant (see all_capabilities).
  const uint64_t every = ((uint64_t{2} << last_cap()) - 1) & own_bounding_set();  // last_cap() <= 40
  auto adjust = [&](std::vector<std::string>& set, bool grows) -> Result<void> {
    uint64_t mask = TRY(cap_mask(set, "given"));
    if (add_all && grows) mask = every & ~drop_mask;
    else if (drop_all) mask = grows ? add_mask : 0;
    else mask = (mask & ~drop_mask) | (grows ? add_mask : 0);
    set = cap_names(mask);
    return {};
  };
  TRYV(adjust(caps.bounding, true));
  TRYV(adjust(caps.effective, true));
  TRYV(adjust(caps.permitted, true));
  TRYV(adjust(caps.inheritable, false));
  TRYV(adjust(caps.ambient, false));
  return caps;
}

SeccompSpec default_seccomp_profile() {
  SeccompSpec s;
  s.default_action = "SCMP_ACT_ERRNO";
  s.default_errno_ret = EPERM;
#if defined(__x86_64__)
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  s.architectures = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#endif
  SeccompRule allow;
  allow.action = "SCMP_ACT_ALLOW";
  for (const char* n : kAllowed)
    if (std::strcmp(n, "clone") != 0) allow.names.emplace_back(n);
  if (running_kernel() >= std::pair{4, 8})
    for (const char* n : kAllowedSince48) allow.names.emplace_back(n);
  s.syscalls.push_back(std::move(allow));

  // clone only without namespace flags: (flags & mask) == 0.
  SeccompRule clone{{"clone"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, kCloneNamespaceFlags, 0, "SCMP_CMP_MASKED_EQ"}}};
  s.syscalls.push_back(std::move(clone));
  // clone3 passes its flags in memory a filter cannot read: make libc fall back to clone.
  s.syscalls.push_back(SeccompRule{{"clone3"}, "SCMP_ACT_ERRNO", ENOSYS, {}});
  // Every socket family but vsock (a channel to the host).
  s.syscalls.push_back(SeccompRule{{"socket"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, kAfVsock, 0, "SCMP_CMP_NE"}}});
  // personality(2) only for the harmless personas: Linux, Linux32, UNAME26 and the query.
  for (uint64_t persona : {0x0ull, 0x8ull, 0x20000ull, 0x20008ull, 0xffffffffull})
    s.syscalls.push_back(
        SeccompRule{{"personality"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, persona, 0, "SCMP_CMP_EQ"}}});
  return s;
}

Result<SeccompSpec> parse_seccomp_profile(const Json& j) {
  if (!j.is_object()) return fail(make_error("parse seccomp profile", "", "not a JSON object"));
  SeccompSpec s;
  auto def = j.find("defaultAction");
  if (def == j.end()) return fail(profile_error("defaultAction", "present"));
  s.default_action = TRY(profile_string(*def, "defaultAction"));
  s.default_errno_ret = TRY(profile_errno(j, "defaultErrnoRet", "defaultErrnoRet"));
  TRYV(seccomp_action(s.default_action, s.default_errno_ret, "defaultAction"));

  if (auto arches = j.find("architectures"); arches != j.end() && !arches->is_null()) {
    s.architectures = TRY(profile_strings(*arches, "architectures"));
  } else if (auto map = j.find("archMap"); map != j.end() && !map->is_null()) {
    // Docker's form: pick this machine's entry and its sub-architectures.
    if (!map->is_array()) return fail(profile_error("archMap", "an array"));
    for (size_t i = 0; i < map->size(); ++i) {
      const Json& e = (*map)[i];
      std::string f = "archMap[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("architecture"))
        return fail(profile_error(f, "an object with \"architecture\""));
      std::string arch = TRY(profile_string(e["architecture"], f + ".architecture"));
      std::vector<std::string> subs;
      if (auto sub = e.find("subArchitectures"); sub != e.end() && !sub->is_null())
        subs = TRY(profile_strings(*sub, f + ".subArchitectures"));
      if (arch != kNativeArch) continue;
      s.architectures.push_back(arch);
      s.architectures.insert(s.architectures.end(), subs.begin(), subs.end());
    }
  }

  if (auto calls = j.find("syscalls"); calls != j.end() && !calls->is_null()) {
    if (!calls->is_array()) return fail(profile_error("syscalls", "an array"));
    for (size_t i = 0; i < calls->size(); ++i) {
      std::string f = "syscalls[" + std::to_string(i) + "]";
      SeccompRule rule = TRY(parse_rule((*calls)[i], f));
      if (TRY(rule_applies((*calls)[i], f))) s.syscalls.push_back(std::move(rule));
    }
  }
  return s;
}

Result<void> apply_rlimits(const std::vector<Rlimit>& rlimits) {
  auto resource_of = [](const std::string& type) -> int {
    for (const auto& n : kRlimits)
      if (type == n.name) return n.resource;
    return -1;
  };
  // All or nothing: check every entry before changing any limit.
  for (const auto& r : rlimits) {
    if (resource_of(r.type) < 0) return fail(make_error("rlimit", r.type, "unknown resource limit"));
    if (r.soft > r.hard)
      return fail(make_error("rlimit", r.type, "soft limit " + std::to_string(r.soft) + " exceeds hard limit " +
                                                   std::to_string(r.hard)));
  }
  for (const auto& r : rlimits) {
    struct rlimit rl{static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
    if (::setrlimit(static_cast<__rlimit_resource_t>(resource_of(r.type)), &rl) != 0)
      return fail(sys_error("setrlimit", r.type));
  }
  return {};
}

Result<void> switch_user_and_capabilities(const ProcessSpec& process) {
  std::optional<CapMasks> caps;
  if (process.capabilities) caps = TRY(cap_masks(*process.capabilities));
  const int last = last_cap();
  const uint64_t known = (uint64_t{2} << last) - 1;

  if (caps) {
    // The bounding set can only shrink, and needs CAP_SETPCAP to: do it while still root.
    for (int c = 0; c <= last; ++c) {
      if ((caps->bounding & (uint64_t{1} << c)) || ::prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;
      if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
        return fail(sys_error("drop from the bounding set", kCapNames[c]));
    }
    // Keep the permitted set across setresuid; capset below decides what stays.
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_KEEPCAPS"));
  }

  const auto& gids = process.additional_gids;
  if (::setgroups(gids.size(), gids.data()) != 0 && !(errno == EPERM && gids.empty() && setgroups_denied()))
    return fail(sys_error("setgroups", "additional gids of uid " + std::to_string(process.uid)));
  if (::setresgid(process.gid, process.gid, process.gid) != 0)
    return fail(sys_error("setresgid", std::to_string(process.gid)));
  if (::setresuid(process.uid, process.uid, process.uid) != 0)
    return fail(sys_error("setresuid", std::to_string(process.uid)));

  if (!caps) return {};  // root keeps everything; the kernel cleared a non-root user's sets
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_KEEPCAPS"));
  uint64_t effective = caps->effective & known, permitted = caps->permitted & known;
  uint64_t inheritable = caps->inheritable & known;
  // Like docker: a non-root user runs without capabilities unless the spec
  // gives ambient ones (which also need permitted and inheritable).
  if (process.uid != 0 && (caps->ambient & known) == 0) effective = permitted = inheritable = 0;
  TRYV(capset_masks(effective, permitted, inheritable));
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return fail(sys_error("prctl", "PR_CAP_AMBIENT_CLEAR_ALL"));
  for (int c = 0; c <= last; ++c) {
    if (!(caps->ambient & (uint64_t{1} << c))) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) {
      Error e = sys_error("raise ambient capability", kCapNames[c]);
      e.detail = "an ambient capability must also be permitted and inheritable";
      return fail(std::move(e));
    }
  }
  return {};
}

Result<void> set_no_new_privileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_NO_NEW_PRIVS"));
  return {};
}

Result<void> apply_seccomp(const SeccompSpec& seccomp) {
  if (seccomp.default_action.empty()) return fail(make_error("seccomp", "defaultAction", "missing"));
  uint32_t def = TRY(seccomp_action(seccomp.default_action, seccomp.default_errno_ret, "defaultAction"));
  scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx) return fail(make_error("seccomp_init", seccomp.default_action, "libseccomp refused the default action"));
  FilterOwner owner{ctx};
  // no_new_privs is the caller's choice (set_no_new_privileges), not a side effect.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); rc != 0)
    return fail(sys_error(-rc, "seccomp_attr_set", "SCMP_FLTATR_CTL_NNP"));
  (void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);  // kernel errnos from seccomp_load

  for (const auto& arch : seccomp.architectures) {
    uint32_t token = seccomp_arch(arch);
    if (token == 0) {
      log_debug("seccomp: architecture {} unknown to libseccomp; skipped", arch);
      continue;
    }
    if (int rc = seccomp_arch_add(ctx, token); rc != 0 && rc != -EEXIST)
      return fail(sys_error(-rc, "seccomp_arch_add", arch));
  }

  for (size_t i = 0; i < seccomp.syscalls.size(); ++i) {
    const SeccompRule& rule = seccomp.syscalls[i];
    std::string where = "syscalls[" + std::to_string(i) + "]";
    uint32_t action = TRY(seccomp_action(rule.action, rule.errno_ret, where));
    if (action == def) continue;  // libseccomp refuses rules that repeat the default
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& a : rule.args) {
      if (a.index > 5) return fail(make_error("seccomp", where, "argument index " + std::to_string(a.index) + " > 5"));
      cmps.push_back(scmp_arg_cmp{a.index, TRY(seccomp_op(a.op, where)), a.value, a.value_two});
    }
    // Two conditions on one argument mean "either" (runc's reading): one rule each.
    bool repeated = false;
    for (size_t x = 0; x < cmps.size(); ++x)
      for (size_t y = x + 1; y < cmps.size(); ++y) repeated |= cmps[x].arg == cmps[y].arg;
    std::vector<std::vector<scmp_arg_cmp>> sets;
    if (repeated) {
      for (const auto& c : cmps) sets.push_back({c});
    } else {
      sets.push_back(std::move(cmps));
    }
    for (const auto& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) {
        log_debug("seccomp: syscall {} unknown to libseccomp; skipped", name);
        continue;
      }
      for (const auto& set : sets) {
        int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(set.size()), set.data());
        if (rc == 0) continue;
        if (nr < 0) break;  // a pseudo-syscall that none of the filter's architectures has
        return fail(sys_error(-rc, "seccomp rule", name));
      }
    }
  }

  if (int rc = seccomp_load(ctx); rc != 0) {
    Error e = sys_error(-rc, "seccomp_load", "");
    if (-rc == EACCES) e.detail = "without CAP_SYS_ADMIN the kernel needs no_new_privileges before a filter";
    return fail(std::move(e));
  }
  return {};
}

}  // namespace isola
