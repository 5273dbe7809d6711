// Cgroups on the real host (run as root): limits land in the kernel's files,
// processes are counted, limited, frozen, OOM-killed and killed, and nothing
// is left behind. Each test uses its own group below "isola-test".
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "runtime/cgroup.h"

using namespace isola;

namespace {

constexpr int64_t kMiB = 1024 * 1024;

std::string unique_path() { return "isola-test/" + random_hex(12); }

// Removes the shared "isola-test" parent everywhere unless a test running in
// parallel still uses it (rmdir of a non-empty group fails harmlessly).
void remove_test_parent() {
  ::rmdir("/sys/fs/cgroup/isola-test");
  if (auto entries = list_dir("/sys/fs/cgroup"))
    for (const auto& e : *entries) ::rmdir(("/sys/fs/cgroup/" + e + "/isola-test").c_str());
}

struct GroupGuard {
  std::string path;
  ~GroupGuard() {
    if (auto cg = Cgroup::open(path)) (void)cg->destroy();
    remove_test_parent();
  }
};

// The group's directory for `controller` on the usual layouts (v1 controllers
// under /sys/fs/cgroup/<controller>, or one v2 tree).
std::string controller_dir(const std::string& controller, const std::string& path) {
  if (detect_cgroup_mode() == CgroupMode::v2) return "/sys/fs/cgroup/" + path;
  return "/sys/fs/cgroup/" + controller + "/" + path;
}

std::string read_trimmed(const std::string& file) {
  auto text = read_file(file);
  if (!text) return "<" + text.error().message() + ">";
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A forked child that blocks until released, then runs `body` and exits
// with its result. Killed and reaped on destruction if still there.
class Child {
 public:
  explicit Child(std::function<int()> body) {
    int go[2], ready[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(go[1]);
      ::close(ready[0]);
      char c;
      if (::read(go[0], &c, 1) != 1) ::_exit(100);
      (void)!::write(ready[1], "r", 1);  // running inside the group now
      ::_exit(body());
    }
    ::close(go[0]);
    ::close(ready[1]);
    go_ = go[1];
    ready_ = ready[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (go_ >= 0) ::close(go_);
    ::close(ready_);
  }
  pid_t pid() const { return pid_; }
  // Lets the body run and waits until it has started.
  void release() {
    (void)!::write(go_, "g", 1);
    ::close(go_);
    go_ = -1;
    char c;
    (void)!::read(ready_, &c, 1);
  }
  int wait() {
    int status = -1;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1, ready_ = -1;
};

int sleep_forever() {
  for (;;) ::pause();
}

// The group's process count once it reaches `n` (children fork on their own time).
size_t wait_for_pids(const Cgroup& cg, size_t n) {
  size_t count = 0;
  for (int i = 0; i < 500; ++i) {
    count = cg.pids() ? cg.pids()->size() : 0;
    if (count >= n) break;
    ::usleep(10000);
  }
  return count;
}

}  // namespace

TEST(Cgroup, DetectsTheHostLayout) {
  auto mountinfo = read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mountinfo);
  bool v1 = mountinfo->find(" - cgroup cgroup ") != std::string::npos;
  bool v2 = mountinfo->find(" - cgroup2 ") != std::string::npos;
  CgroupMode mode = detect_cgroup_mode();
  if (v1) {
    EXPECT_EQ(mode, v2 ? CgroupMode::hybrid : CgroupMode::v1);
  } else {
    EXPECT_EQ(mode, CgroupMode::v2);
  }
}

TEST(Cgroup, CreateWritesLimitsToTheKernel) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.memory_limit = 64 * kMiB;
  r.pids_limit = 20;
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.cpu_shares = 512;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();
  EXPECT_EQ(cg->path(), path);

  if (detect_cgroup_mode() == CgroupMode::v2) {
    std::string dir = controller_dir("", path);
    EXPECT_EQ(read_trimmed(dir + "/memory.max"), "67108864");
    if (path_exists(dir + "/memory.swap.max")) {
      EXPECT_EQ(read_trimmed(dir + "/memory.swap.max"), "0");
    }
    EXPECT_EQ(read_trimmed(dir + "/pids.max"), "20");
    EXPECT_EQ(read_trimmed(dir + "/cpu.max"), "50000 100000");
    EXPECT_EQ(read_trimmed(dir + "/cpu.weight"), "20");  // 1 + (510 * 9999) / 262142
  } else {
    std::string mem = controller_dir("memory", path);
    EXPECT_EQ(read_trimmed(mem + "/memory.limit_in_bytes"), "67108864");
    if (path_exists(mem + "/memory.memsw.limit_in_bytes")) {
      EXPECT_EQ(read_trimmed(mem + "/memory.memsw.limit_in_bytes"), "67108864");  // no swap beyond --memory
    }
    EXPECT_EQ(read_trimmed(controller_dir("pids", path) + "/pids.max"), "20");
    EXPECT_EQ(read_trimmed(controller_dir("cpu", path) + "/cpu.cfs_quota_us"), "50000");
    EXPECT_EQ(read_trimmed(controller_dir("cpu", path) + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(read_trimmed(controller_dir("cpu", path) + "/cpu.shares"), "512");
    EXPECT_TRUE(is_directory(controller_dir("freezer", path)));
    // cpuset groups start empty and refuse tasks unless cpus/mems are inherited.
    EXPECT_EQ(read_trimmed(controller_dir("cpuset", path) + "/cpuset.cpus"),
              read_trimmed("/sys/fs/cgroup/cpuset/cpuset.cpus"));
    EXPECT_EQ(read_trimmed(controller_dir("cpuset", "isola-test") + "/cpuset.mems"),
              read_trimmed("/sys/fs/cgroup/cpuset/cpuset.mems"));
  }
}

TEST(Cgroup, UpdateChangesLimits) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.pids_limit = 20;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();
  Resources more;
  more.pids_limit = 0;  // unlimited
  more.memory_limit = 32 * kMiB;
  ASSERT_TRUE(cg->update(more));
  auto st = cg->stats();
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->pids_limit, 0u);
  EXPECT_EQ(st->memory_limit, uint64_t(32 * kMiB));
  more = {};
  more.memory_limit = 128 * kMiB;  // raising needs memsw raised first on v1
  ASSERT_TRUE(cg->update(more)) << cg->update(more).error().message();
  EXPECT_EQ(cg->stats()->memory_limit, uint64_t(128 * kMiB));
  more.memory_limit = -1;
  ASSERT_TRUE(cg->update(more));
  EXPECT_EQ(cg->stats()->memory_limit, 0u);
}

TEST(Cgroup, ProcessesShowUpInPidsAndStats) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.memory_limit = 64 * kMiB;
  r.pids_limit = 20;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();

  Child child([] {
    std::vector<char> touched(4 * kMiB, 1);  // memory charged to the group
    volatile uint64_t x = touched[kMiB];
    for (int i = 0; i < 20000000; ++i) x = x + i;  // and some CPU time
    return sleep_forever();
  });
  ASSERT_TRUE(cg->add_process(child.pid()));
  child.release();

  auto pids = cg->pids();
  ASSERT_TRUE(pids) << pids.error().message();
  EXPECT_NE(std::find(pids->begin(), pids->end(), child.pid()), pids->end());
  auto own = read_file("/proc/" + std::to_string(child.pid()) + "/cgroup");
  ASSERT_TRUE(own);
  EXPECT_NE(own->find("/" + path + "\n"), std::string::npos) << *own;

  ::usleep(100000);
  auto st = cg->stats();
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_GE(st->pids_current, 1u);
  EXPECT_EQ(st->pids_limit, 20u);
  EXPECT_EQ(st->memory_limit, uint64_t(64 * kMiB));
  EXPECT_GT(st->memory_usage, 0u);
  EXPECT_GT(st->cpu_usage_ns, 0u);

  // Another process (the opener) sees the same group.
  auto again = Cgroup::open(path);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*again->pids(), *pids);
}

TEST(Cgroup, MemoryLimitOomKills) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.memory_limit = 32 * kMiB;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();
  EXPECT_EQ(cg->oom_killed(), false);

  Child child([] {
    const size_t size = 200 * kMiB;
    char* p = static_cast<char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return 2;
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    return 0;  // survived: the limit did not hold
  });
  ASSERT_TRUE(cg->add_process(child.pid()));
  child.release();
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto oom = cg->oom_killed();
  ASSERT_TRUE(oom) << oom.error().message();
  EXPECT_TRUE(*oom);
}

TEST(Cgroup, PidsLimitStopsAForkBomb) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.pids_limit = 10;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();

  int result[2];
  ASSERT_EQ(::pipe(result), 0);
  Child child([&] {
    ::close(result[0]);
    int forked = 0, err = 0;
    for (int i = 0; i < 100; ++i) {
      pid_t p = ::fork();
      if (p == 0) sleep_forever();
      if (p < 0) {
        err = errno;
        break;
      }
      ++forked;
    }
    int report[2] = {forked, err};
    (void)!::write(result[1], report, sizeof report);
    return sleep_forever();
  });
  ::close(result[1]);
  ASSERT_TRUE(cg->add_process(child.pid()));
  child.release();
  int report[2] = {-1, -1};
  ASSERT_EQ(::read(result[0], report, sizeof report), ssize_t(sizeof report));
  ::close(result[0]);
  EXPECT_EQ(report[0], 9);  // the bomb itself is the tenth
  EXPECT_EQ(report[1], EAGAIN);
  auto st = cg->stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pids_current, 10u);
  EXPECT_EQ(cg->pids()->size(), 10u);

  ASSERT_TRUE(cg->kill_all(SIGKILL));
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(cg->pids()->empty());
}

TEST(Cgroup, FreezeStopsProcessesAndThawResumes) {
  std::string path = unique_path();
  GroupGuard guard{path};
  auto cg = Cgroup::create(path, {});
  ASSERT_TRUE(cg) << cg.error().message();

  auto* counter = static_cast<std::atomic<uint64_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(counter, MAP_FAILED);
  new (counter) std::atomic<uint64_t>(0);
  Child child([counter] {
    for (;;) counter->fetch_add(1, std::memory_order_relaxed);
    return 0;
  });
  ASSERT_TRUE(cg->add_process(child.pid()));
  child.release();

  ASSERT_TRUE(cg->freeze(true));
  if (detect_cgroup_mode() == CgroupMode::v2) {
    EXPECT_NE(read_trimmed(controller_dir("", path) + "/cgroup.events").find("frozen 1"), std::string::npos);
  } else {
    EXPECT_EQ(read_trimmed(controller_dir("freezer", path) + "/freezer.state"), "FROZEN");
  }
  uint64_t before = counter->load();
  ::usleep(100000);
  EXPECT_EQ(counter->load(), before) << "a frozen process kept running";

  ASSERT_TRUE(cg->freeze(false));
  if (detect_cgroup_mode() == CgroupMode::v2) {
    EXPECT_NE(read_trimmed(controller_dir("", path) + "/cgroup.events").find("frozen 0"), std::string::npos);
  } else {
    EXPECT_EQ(read_trimmed(controller_dir("freezer", path) + "/freezer.state"), "THAWED");
  }
  for (int i = 0; i < 200 && counter->load() == before; ++i) ::usleep(10000);
  EXPECT_GT(counter->load(), before) << "the thawed process did not resume";

  // A frozen group can still be killed and destroyed.
  ASSERT_TRUE(cg->freeze(true));
  ASSERT_TRUE(cg->destroy());
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ::munmap(counter, 4096);
}

TEST(Cgroup, KillAllThenDestroyLeavesNothing) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.memory_limit = 64 * kMiB;
  auto cg = Cgroup::create(path, r);
  ASSERT_TRUE(cg) << cg.error().message();

  Child a([] {
    if (::fork() == 0) sleep_forever();  // a grandchild, in the group too
    return sleep_forever();
  });
  Child b(sleep_forever);
  ASSERT_TRUE(cg->add_process(a.pid()));
  ASSERT_TRUE(cg->add_process(b.pid()));
  a.release();
  b.release();
  EXPECT_EQ(wait_for_pids(*cg, 3), 3u);

  ASSERT_TRUE(cg->kill_all(SIGKILL));
  int sa = a.wait(), sb = b.wait();
  EXPECT_TRUE(WIFSIGNALED(sa) && WTERMSIG(sa) == SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(sb) && WTERMSIG(sb) == SIGKILL);
  EXPECT_TRUE(cg->pids()->empty());

  auto destroyed = cg->destroy();
  ASSERT_TRUE(destroyed) << destroyed.error().message();
  for (const char* c : {"memory", "pids", "cpu", "freezer"}) EXPECT_FALSE(path_exists(controller_dir(c, path))) << c;
  EXPECT_TRUE(cg->destroy()) << "destroy must be idempotent";
  auto reopened = Cgroup::open(path);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().err, ENOENT);
}

TEST(Cgroup, DestroyKillsWhatIsLeftAndSubgroups) {
  std::string path = unique_path();
  GroupGuard guard{path};
  auto cg = Cgroup::create(path, {});
  ASSERT_TRUE(cg) << cg.error().message();
  auto sub = Cgroup::create(path + "/inner", {});  // as a container's own systemd would
  ASSERT_TRUE(sub) << sub.error().message();
  Child child(sleep_forever);
  ASSERT_TRUE(sub->add_process(child.pid()));
  child.release();
  EXPECT_EQ(cg->pids()->size(), 1u);  // processes of subgroups belong to the group

  ASSERT_TRUE(cg->destroy());
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_FALSE(path_exists(controller_dir("memory", path)));
}

TEST(Cgroup, RefusesPathsThatLeaveTheHierarchy) {
  for (const char* bad : {"", "/", "..", "../x", "isola-test/../../x", "a//b", "a/./b", "cgroup.procs",
                          "a/cgroup.kill"}) {
    EXPECT_FALSE(Cgroup::create(bad, {})) << bad;
    EXPECT_FALSE(Cgroup::open(bad)) << bad;
  }
  EXPECT_FALSE(path_exists("/sys/fs/x"));
}

TEST(Cgroup, RefusesInvalidValuesAndCleansUp) {
  std::string path = unique_path();
  GroupGuard guard{path};
  Resources r;
  r.memory_limit = 64 * kMiB;
  r.memory_swap = 32 * kMiB;  // memory+swap below memory
  auto cg = Cgroup::create(path, r);
  ASSERT_FALSE(cg);
  EXPECT_NE(cg.error().message().find("memory+swap"), std::string::npos) << cg.error().message();
  EXPECT_FALSE(path_exists(controller_dir("memory", path)));

  Resources q;
  q.cpu_quota = -5;
  EXPECT_FALSE(Cgroup::create(path, q));
  EXPECT_FALSE(path_exists(controller_dir("cpu", path)));
}

TEST(Cgroup, FailedCreateLeavesAnExistingGroupAlone) {
  std::string path = unique_path();
  GroupGuard guard{path};
  auto cg = Cgroup::create(path, {});
  ASSERT_TRUE(cg) << cg.error().message();
  Child child(sleep_forever);
  ASSERT_TRUE(cg->add_process(child.pid()));
  child.release();
  Resources bad;
  bad.memory_limit = 64 * kMiB;
  bad.memory_swap = 1;
  ASSERT_FALSE(Cgroup::create(path, bad));
  EXPECT_TRUE(is_directory(controller_dir("memory", path)));
  EXPECT_EQ(::kill(child.pid(), 0), 0) << "the existing group's process was killed";
}

TEST(Cgroup, OpenOfAMissingGroupSaysSo) {
  auto cg = Cgroup::open("isola-test/does-not-exist-" + random_hex(8));
  ASSERT_FALSE(cg);
  EXPECT_EQ(cg.error().err, ENOENT);
}
