// The VM worker's jail in parts: what its root holds, QEMU's command line
// with descriptors instead of paths, the worker's seccomp allow-list loaded
// into this kernel, and the preload that hands QEMU its RAM descriptor.
// (tests/integration/test_vm_jail.py takes a running worker's jail whole.)
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "runtime/seccomp.h"
#include "vm/jail.h"
#include "vm/qemu.h"
#include "vm/worker.h"
#include "vm/worker_seccomp.h"

using namespace isola;

namespace {

VmConfig sample_config() {
  VmConfig c;
  c.id = "0123456789abcdef";
  c.assets.kernel = "/var/cache/isola/guest/6.1/vmlinux";
  c.assets.initramfs = "/var/cache/isola/guest/6.1/initramfs-x.cpio";
  c.accel = "tcg";
  c.shares = {{"rootfs", "/var/lib/isola/containers/c1/rootfs", "/run/isola/rootfs", false},
              {"etc", "/var/lib/isola/containers/c1/etc", "/run/isola/etc", true},
              {"v0", "/srv/data", "/run/isola/v0", false},
              {"v1", "/srv/data/inner", "/run/isola/v1", true}};
  c.agent_fd = kWorkerAgentFd;
  c.console_fd = kWorkerConsoleFd;
  c.qmp_fd = kWorkerQmpFd;
  return c;
}

const JailMount* find(const JailPlan& plan, const std::string& path) {
  auto it = std::find_if(plan.mounts.begin(), plan.mounts.end(), [&](const JailMount& m) { return m.path == path; });
  return it == plan.mounts.end() ? nullptr : &*it;
}

bool has(const std::vector<std::string>& args, const std::string& a) {
  return std::find(args.begin(), args.end(), a) != args.end();
}

}  // namespace

TEST(Jail, RootHoldsOnlyWhatTheVmNeeds) {
  JailPlan plan = jail_plan(sample_config(), "/run/isola/c1/jail", "/opt/isola/isola-qemu-preload.so");
  for (const char* path : {"/usr", "/dev/null", "/dev/urandom", "/var/cache/isola/guest/6.1/vmlinux",
                           "/var/cache/isola/guest/6.1/initramfs-x.cpio", "/var/lib/isola/containers/c1/rootfs",
                           "/opt/isola/isola-qemu-preload.so",
                           "/var/lib/isola/containers/c1/etc", "/srv/data", "/srv/data/inner"})
    EXPECT_NE(find(plan, path), nullptr) << path;
  // Read-only unless the VM writes there: the rootfs and rw volumes only.
  for (const JailMount& m : plan.mounts) {
    bool want = m.path == "/var/lib/isola/containers/c1/rootfs" || m.path == "/srv/data" || m.path == "/dev/null";
    EXPECT_EQ(m.writable, want) << m.path;
    EXPECT_EQ(m.device, m.path.starts_with("/dev/")) << m.path;
    // Only QEMU's own code can be mapped executable, the preload included
    // wherever it is installed.
    EXPECT_EQ(m.executable, m.path == "/usr" || m.path.ends_with(".so")) << m.path;
  }
  // Nothing of the host's state or configuration beyond the loader's cache.
  for (const char* path : {"/", "/etc", "/var/lib/isola", "/run", "/proc", "/sys", "/dev/kvm", "/home", "/root"})
    EXPECT_EQ(find(plan, path), nullptr) << path;
  // A parent before a mount inside it (the volume inside the volume).
  auto pos = [&](const std::string& p) { return find(plan, p) - plan.mounts.data(); };
  EXPECT_LT(pos("/srv/data"), pos("/srv/data/inner"));
  EXPECT_EQ(plan.hostname, "isola-vm-012345");

  VmConfig kvm = sample_config();
  kvm.accel = "kvm";
  JailPlan with_kvm = jail_plan(kvm, "/j", "");
  const JailMount* dev = find(with_kvm, "/dev/kvm");
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->writable && dev->device);
}

TEST(Jail, QemuGetsDescriptorsNotPaths) {
  VmConfig c = sample_config();
  c.agent_socket = "/run/isola/c1/agent.sock";
  c.console_log = "/var/lib/isola/containers/c1/vm-console.log";
  c.memory_fd = kWorkerRamFd;
  c.qmp_socket = "/run/isola/c1/qmp.sock";
  std::vector<std::string> args = qemu_command(c);
  EXPECT_TRUE(has(args, "socket,id=agent,fd=5,server=on,wait=off"));
  EXPECT_TRUE(has(args, "socket,id=qmp,fd=6,server=on,wait=off"));
  EXPECT_TRUE(has(args, "fd=7,set=1"));
  EXPECT_TRUE(has(args, "file:/dev/fdset/1"));
  EXPECT_TRUE(has(args, "tcg,tb-size=128"));
  for (const std::string& a : args) {
    EXPECT_EQ(a.find(c.agent_socket), std::string::npos) << a;
    EXPECT_EQ(a.find(c.console_log), std::string::npos) << a;
    EXPECT_EQ(a.find(c.qmp_socket), std::string::npos) << a;
  }
  bool ram = std::any_of(args.begin(), args.end(),
                         [](const std::string& a) { return a.find("mem-path=/proc/self/fd/4,") != std::string::npos; });
  EXPECT_TRUE(ram);
}

TEST(Jail, WorkerMemoryLimitIsTheGuestsPlusQemus) {
  EXPECT_EQ(worker_memory_limit_mb(256), 256u + 320u);
  EXPECT_GT(kWorkerPidsLimit, 64);  // 9p's thread pool alone may reach 64
}

TEST(Jail, WorkerSeccompRefusesWhatAnEscapeNeeds) {
  auto program = compile_seccomp(worker_seccomp_profile(), "");
  ASSERT_TRUE(program) << program.error().message();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (!load_seccomp(*program)) ::_exit(10);
    int code = 0;
    auto refused = [&](long rc, int bit) {
      if (rc >= 0 || errno != EPERM) code |= 1 << bit;
    };
    refused(::socket(AF_INET, SOCK_STREAM, 0), 0);
    refused(::socket(AF_NETLINK, SOCK_RAW, 0), 1);
    refused(::mount("none", "/tmp", "tmpfs", 0, nullptr), 2);
    refused(::unshare(CLONE_NEWUSER), 3);
    refused(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0), 4);  // a process, not a thread
    refused(::syscall(SYS_keyctl, 0, -4, 0), 5);
    refused(::syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0), 6);
    refused(::syscall(SYS_io_uring_setup, 1, nullptr), 7);
    // What QEMU does: Unix sockets, files, its own process.
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) code |= 1 << 8;
    if (::getpid() <= 0) code |= 1 << 9;
    if (::open("/proc/self/status", O_RDONLY) < 0) code |= 1 << 10;
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed checks (bits): " << WEXITSTATUS(status);
}

TEST(Jail, PreloadTurnsQemusRamOpenIntoTheDescriptor) {
  // An immutable file cannot be opened read-write, not even by root (as a
  // sealed template's RAM): through the preload, QEMU's O_RDWR open of
  // /proc/self/fd/4 is a copy of the read-only descriptor 4.
  char path[] = "/tmp/isola-jail-test-XXXXXX";
  int made = ::mkstemp(path);
  ASSERT_GE(made, 0);
  ASSERT_EQ(::write(made, "Linux", 5), 5);
  int flags = FS_IMMUTABLE_FL;
  ASSERT_EQ(::ioctl(made, FS_IOC_SETFLAGS, &flags), 0) << std::strerror(errno);
  ::close(made);
  int fd = ::open(path, O_RDONLY);
  ASSERT_GE(fd, 0);
  auto run = [&](bool preload) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(fd, 4);
      std::string env_preload = std::string("LD_PRELOAD=") + ISOLA_PRELOAD_PATH;
      char* envp[] = {preload ? env_preload.data() : nullptr, preload ? const_cast<char*>("ISOLA_RAM_FD=4") : nullptr,
                      nullptr};
      const char* script = "import os; f = os.open('/proc/self/fd/4', os.O_RDWR); "
                           "exit(0 if os.read(f, 5) == b'Linux' else 3)";
      ::execle("/usr/bin/python3", "python3", "-c", script, nullptr, envp);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run(true), 0);
  EXPECT_NE(run(false), 0);  // without it, the kernel refuses
  flags = 0;
  ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  ::close(fd);
  ::unlink(path);
}
