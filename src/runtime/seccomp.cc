// seccomp: docker's default profile, profiles in docker's and the OCI
// spec's JSON, and filters compiled to BPF once and cached (compiling
// docker's profile with libseccomp takes about 10 ms, as long as the rest of
// a container's start; loading a compiled one takes microseconds).
#include "runtime/seccomp.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>

#include "common/fs.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "runtime/security.h"

namespace isola {
namespace {

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
  std::string want = name;
  for (char& ch : want) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (!want.starts_with("CAP_")) want = "CAP_" + want;
  const std::vector<std::string> defaults = default_capabilities().bounding;
  return std::find(defaults.begin(), defaults.end(), want) != defaults.end();
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
  ~FilterOwner() {
    if (ctx) seccomp_release(ctx);
  }
};

}  // namespace

SeccompSpec empty_allow_list(bool native_only) {
  SeccompSpec s;
  s.default_action = "SCMP_ACT_ERRNO";
  s.default_errno_ret = EPERM;
#if defined(__x86_64__)
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  s.architectures = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#endif
  if (native_only && !s.architectures.empty()) s.architectures.resize(1);
  return s;
}

SeccompSpec default_seccomp_profile() {
  SeccompSpec s = empty_allow_list(false);
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

namespace {

// The libseccomp filter for `seccomp`, every rule added.
Result<scmp_filter_ctx> build_filter(const SeccompSpec& seccomp) {
  if (seccomp.default_action.empty()) return fail(make_error("seccomp", "defaultAction", "missing"));
  uint32_t def = TRY(seccomp_action(seccomp.default_action, seccomp.default_errno_ret, "defaultAction"));
  scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx) return fail(make_error("seccomp_init", seccomp.default_action, "libseccomp refused the default action"));
  FilterOwner owner{ctx};
  auto give = [&owner]() {
    scmp_filter_ctx c = owner.ctx;
    owner.ctx = nullptr;
    return c;
  };
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

  return give();
}

// What a cached program was compiled from: the profile, libseccomp's
// version and the architecture. The cache file holds this text before the
// program and is used only when the text matches, so the file name's hash
// need not resist collisions.
std::string cache_source(const SeccompSpec& seccomp) {
  const scmp_version* v = seccomp_version();
  return seccomp_to_json(seccomp).dump() + "\nlibseccomp " + std::to_string(v->major) + "." +
         std::to_string(v->minor) + "." + std::to_string(v->micro) + "\narch " + kNativeArch + "\n";
}

std::string cache_name(const std::string& source) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : source) h = (h ^ ch) * 1099511628211ull;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx.bpf", static_cast<unsigned long long>(h));
  return buf;
}

Result<SeccompProgram> parse_program(std::string_view bytes, const std::string& what) {
  if (bytes.empty() || bytes.size() % sizeof(sock_filter) != 0 || bytes.size() > BPF_MAXINSNS * sizeof(sock_filter))
    return fail(make_error("read seccomp program", what, "not a whole number of BPF instructions within the limit"));
  SeccompProgram p;
  p.insns.resize(bytes.size() / sizeof(sock_filter));
  std::memcpy(p.insns.data(), bytes.data(), bytes.size());
  return p;
}

// A cached program if `path` holds one compiled from `source`.
std::optional<SeccompProgram> read_cached(const std::string& path, const std::string& source) {
  auto fd = open_path(path, O_RDONLY | O_NOFOLLOW);
  if (!fd) return std::nullopt;
  auto bytes = read_fd(fd->get(), path, source.size() + BPF_MAXINSNS * sizeof(sock_filter));
  if (!bytes || !bytes->starts_with(source)) return std::nullopt;
  auto p = parse_program(std::string_view(*bytes).substr(source.size()), path);
  return p ? std::optional(std::move(*p)) : std::nullopt;
}

}  // namespace

namespace {
std::string& cache_dir_setting() {
  static std::string dir = kSeccompCacheDir;
  return dir;
}
}  // namespace

const std::string& seccomp_cache_dir() { return cache_dir_setting(); }
void set_seccomp_cache_dir(std::string dir) { cache_dir_setting() = std::move(dir); }

namespace {
// Programs handed over to this process (remember_seccomp), by their source.
std::map<std::string, SeccompProgram>& remembered() {
  static std::map<std::string, SeccompProgram> programs;
  return programs;
}
}  // namespace

Result<void> remember_seccomp(const SeccompSpec& seccomp, SeccompProgram program) {
  if (auto r = parse_program(seccomp_program_bytes(program), "seccomp program"); !r) return fail(r.error());
  remembered()[cache_source(seccomp)] = std::move(program);
  return {};
}

std::string seccomp_program_bytes(const SeccompProgram& program) {
  return std::string(reinterpret_cast<const char*>(program.insns.data()), program.insns.size() * sizeof(sock_filter));
}

Result<SeccompProgram> seccomp_program_from_bytes(std::string_view bytes) {
  return parse_program(bytes, "seccomp program");
}

Result<SeccompProgram> compile_seccomp(const SeccompSpec& seccomp, const std::string& cache_dir) {
  std::string source = cache_source(seccomp), cached;
  if (auto it = remembered().find(source); it != remembered().end()) return it->second;
  if (!cache_dir.empty()) {
    cached = path_join(cache_dir, cache_name(source));
    if (auto p = read_cached(cached, source)) return std::move(*p);
  }
  scmp_filter_ctx ctx = TRY(build_filter(seccomp));
  FilterOwner owner{ctx};
  int mem = ::memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (mem < 0) return fail(sys_error("memfd_create", "seccomp program"));
  UniqueFd memfd(mem);
  if (int rc = seccomp_export_bpf(ctx, mem); rc != 0) return fail(sys_error(-rc, "seccomp_export_bpf", ""));
  if (::lseek(mem, 0, SEEK_SET) != 0) return fail(sys_error("lseek", "seccomp program"));
  std::string bytes = TRY(read_fd(mem, "seccomp program", 4u << 20));
  if (bytes.size() > BPF_MAXINSNS * sizeof(sock_filter))
    return fail(make_error("seccomp", "", "the profile compiles to more than " + std::to_string(BPF_MAXINSNS) +
                                              " BPF instructions, the kernel's limit"));
  SeccompProgram program = TRY(parse_program(bytes, "seccomp program"));
  if (!cached.empty() && mkdir_p(cache_dir, 0700)) (void)write_file_atomic(cached, source + bytes, 0600);
  return program;
}

Result<void> load_seccomp(const SeccompProgram& program) {
  sock_fprog prog{static_cast<unsigned short>(program.insns.size()), const_cast<sock_filter*>(program.insns.data())};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    Error e = sys_error("load the seccomp filter", "");
    if (errno == EACCES) e.detail = "without CAP_SYS_ADMIN the kernel needs no_new_privileges before a filter";
    return fail(std::move(e));
  }
  return {};
}
}  // namespace isola
