// The cgroup v2 device program, run by the kernel for real: a child process
// in a fresh group of the unified hierarchy with the program attached makes
// device nodes and opens them. Needs root and a cgroup2 mount (the set-up's
// machines have both; a hybrid host's is /sys/fs/cgroup/unified).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "runtime/device_filter.h"

namespace isola {
namespace {

std::string cgroup2_mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest))
    if (type == "cgroup2") return dir;
  return "";
}

// What the child saw, one letter per probe: 'y' opened, 'n' EPERM, '?' else.
std::string probe_in_group(const std::string& group, const std::string& dir,
                           const std::vector<std::pair<dev_t, int>>& probes) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string me = std::to_string(::getpid());
    int procs = ::open((group + "/cgroup.procs").c_str(), O_WRONLY);
    if (procs < 0 || ::write(procs, me.data(), me.size()) < 0) ::_exit(2);
    ::close(procs);
    std::string out;
    for (size_t i = 0; i < probes.size(); ++i) {
      std::string node = dir + "/n" + std::to_string(i);
      if (::mknod(node.c_str(), S_IFCHR | 0666, probes[i].first) != 0) {
        out += errno == EPERM ? 'N' : '?';  // N: mknod refused
        continue;
      }
      int fd = ::open(node.c_str(), probes[i].second | O_CLOEXEC);
      out += fd >= 0 ? 'y' : (errno == EPERM ? 'n' : '?');
      if (fd >= 0) ::close(fd);
    }
    if (::write(fds[1], out.data(), out.size()) < 0) ::_exit(3);
    ::_exit(0);
  }
  ::close(fds[1]);
  char buf[64] = {0};
  ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "child exit " + std::to_string(WEXITSTATUS(status));
}

class DeviceFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the device program test needs root (scripts/test runs as root)";
    std::string mount = cgroup2_mount();
    ASSERT_FALSE(mount.empty()) << "no cgroup2 mount in /proc/self/mounts";
    group_ = mount + "/isola-devfilter-test-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(group_.c_str(), 0755), 0) << group_;
    auto d = make_temp_dir("/var/tmp", "isola-devfilter-");
    ASSERT_TRUE(d);
    dir_ = *d;
    struct statvfs sv;
    ASSERT_EQ(::statvfs(dir_.c_str(), &sv), 0);
    ASSERT_FALSE(sv.f_flag & ST_NODEV) << dir_ << " is on a nodev mount";
  }
  void TearDown() override {
    (void)remove_tree(dir_);
    ::rmdir(group_.c_str());
  }
  std::string group_, dir_;
};

TEST_F(DeviceFilterTest, DefaultsAllowTheContainerNodesOnly) {
  ASSERT_TRUE(attach_device_filter(group_, {}));
  std::string seen = probe_in_group(group_, dir_,
                                    {{makedev(1, 3), O_RDWR},     // null
                                     {makedev(1, 9), O_RDONLY},   // urandom
                                     {makedev(136, 4), O_RDWR},   // a pty (none there: ENXIO is not EPERM)
                                     {makedev(1, 11), O_RDONLY},  // kmsg
                                     {makedev(10, 200), O_RDWR}}); // tun
  EXPECT_EQ(seen.substr(0, 2), "yy");
  EXPECT_NE(seen[2], 'n') << seen;
  EXPECT_EQ(seen.substr(3), "nn");
}

TEST_F(DeviceFilterTest, SpecRulesComeFirstAndAccessIsChecked) {
  std::vector<DeviceRule> rules = {{true, 'c', 1, 11, "r"}};  // kmsg, read only
  auto attached = attach_device_filter(group_, rules);
  ASSERT_TRUE(attached) << attached.error().message();
  std::string seen = probe_in_group(group_, dir_, {{makedev(1, 11), O_RDONLY}, {makedev(1, 11), O_WRONLY}});
  EXPECT_EQ(seen, "yn");
}

TEST_F(DeviceFilterTest, AllowAllIsPrivileged) {
  auto attached = attach_device_filter(group_, {{true, 'a', std::nullopt, std::nullopt, "rwm"}});
  ASSERT_TRUE(attached) << attached.error().message();
  std::string seen = probe_in_group(group_, dir_, {{makedev(1, 11), O_RDONLY}});
  EXPECT_EQ(seen, "y");
}

TEST(DeviceFilterProgram, EndsDenyingAndJumpsStayInside) {
  std::vector<BpfInsn> p = device_filter_program({{true, 'c', 1, 1, "r"}, {false, 'b', std::nullopt, 2, "w"}});
  ASSERT_GE(p.size(), 9u);
  EXPECT_EQ(p.back().code, 0x95);           // exit
  EXPECT_EQ(p[p.size() - 2].imm, 0);         // r0 = 0: no match, no access
  for (size_t i = 0; i < p.size(); ++i)
    if ((p[i].code & 0x07) == 0x05 && p[i].code != 0x95) {
      EXPECT_LT(i + 1 + p[i].off, p.size()) << i;
    }
}

}  // namespace
}  // namespace isola
