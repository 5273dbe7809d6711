#include "vm/worker_seccomp.h"

#include <sched.h>
#include <sys/socket.h>

namespace isola {

namespace {

// Measured with strace -f over cold boots, template saves, clones, exec,
// 9p work (create, chown, chmod, links, renames, removal, large writes,
// xattrs), a NIC's traffic and stops, plus the loader's calls between
// exec and main and the ones those code paths make on errors and signals.
constexpr const char* kWorkerSyscalls[] = {
    // the loader and the C library
    "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "prlimit64",
    "getrlimit", "mmap", "munmap", "mprotect", "mremap", "madvise", "mlock", "munlock", "getrandom", "uname",
    "sysinfo", "exit", "exit_group", "restart_syscall",
    // threads, time, signals
    "futex", "membarrier", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "capget", "sched_getaffinity", "sched_yield", "set_mempolicy", "get_mempolicy", "mbind",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait",
    "sigaltstack", "signalfd4", "tgkill", "tkill", "kill", "prctl", "seccomp",
    // descriptors and the event loop
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "close", "close_range", "dup", "dup3", "fcntl", "ioctl", "pipe2", "eventfd2", "poll", "ppoll", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "lseek", "memfd_create", "ftruncate", "fallocate", "fsync",
    "fdatasync", "sync_file_range", "flock",
    // sockets handed over by the monitor
    "listen", "accept4", "recvmsg", "sendmsg", "recvfrom", "sendto", "shutdown", "getsockname", "getpeername", "getsockopt",
    "setsockopt",
    // files: QEMU's own and 9p's
    "openat", "open", "access", "faccessat", "faccessat2", "newfstatat", "fstat", "lstat", "stat", "statx",
    "statfs", "fstatfs", "getdents64", "readlink", "readlinkat", "getcwd", "chdir", "fchdir", "mkdirat",
    "unlinkat", "unlink", "renameat", "renameat2", "linkat", "symlinkat", "mknodat", "fchownat", "fchown",
    "chmod", "fchmod", "fchmodat", "utimensat", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr",
    "flistxattr", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
};

constexpr uint64_t kCloneNamespaces = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                      CLONE_NEWPID | CLONE_NEWNET;

}  // namespace

SeccompSpec worker_seccomp_profile() {
  // QEMU is a native program: other ABIs' system calls are refused whole.
  SeccompSpec s = empty_allow_list(true);
  SeccompRule allow;
  allow.action = "SCMP_ACT_ALLOW";
  for (const char* n : kWorkerSyscalls) allow.names.emplace_back(n);
  s.syscalls.push_back(std::move(allow));
  // Threads only: CLONE_THREAD set, no namespace flag. clone3 keeps its
  // flags where a filter cannot read them: libc falls back to clone.
  s.syscalls.push_back(SeccompRule{{"clone"}, "SCMP_ACT_ALLOW", std::nullopt,
                                   {{0, CLONE_THREAD | kCloneNamespaces, CLONE_THREAD, "SCMP_CMP_MASKED_EQ"}}});
  s.syscalls.push_back(SeccompRule{{"clone3"}, "SCMP_ACT_ERRNO", ENOSYS, {}});
  // Unix sockets only (QEMU's own socketpairs); the worker's network
  // namespace is empty anyway.
  for (const char* call : {"socket", "socketpair"})
    s.syscalls.push_back(SeccompRule{{call}, "SCMP_ACT_ALLOW", std::nullopt, {{0, AF_UNIX, 0, "SCMP_CMP_EQ"}}});
  return s;
}

Result<SeccompProgram> worker_seccomp_program() { return compile_seccomp(worker_seccomp_profile()); }

}  // namespace isola
