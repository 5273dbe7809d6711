#include "vm/worker.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "common/fs.h"
#include "common/log.h"
#include "runtime/cgroup.h"
#include "runtime/security.h"
#include "vm/guest.h"
#include "vm/worker_seccomp.h"

namespace isola {

namespace {

struct ChildPlan {
  std::vector<std::string> args, env;
  JailPlan jail;
  SeccompProgram filter;
  WorkerFds fds;
  int out = -1, go = -1, report = -1;
  bool jailed = true;
};

// Puts `fd` at `target`, open across exec.
void place(int fd, int target) {
  if (fd < 0) return;
  if (fd == target) ::fcntl(target, F_SETFD, 0);
  else ::dup2(fd, target);
}

// Between clone and exec, in the worker: waits for its ids and cgroup, sets
// up its descriptors and jail, and becomes QEMU. A failure is written to
// the report pipe, which otherwise closes at exec.
[[noreturn]] void become_worker(ChildPlan& p) {
  // The worker dies with its monitor: nobody else would stop the VM.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  char go = 0;
  if (::read(p.go, &go, 1) != 1) ::_exit(127);  // the monitor gave up
  auto jailed = [&]() -> Result<void> {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    // Everything QEMU inherits is moved above its numbers first, so placing
    // one cannot overwrite another; all else closes at exec.
    auto lift = [](int& fd) {
      if (fd >= 0) fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 64);
    };
    for (int* fd : {&p.fds.tap, &p.fds.ram, &p.fds.agent, &p.fds.qmp, &p.fds.console, &p.out, &null, &p.report})
      lift(*fd);
    if (null < 0 || p.out < 0 || p.report < 0) return fail(sys_error("fcntl", "the worker's descriptors"));
    ::close_range(0, ~0U, CLOSE_RANGE_CLOEXEC);
    place(null, 0);
    place(p.out, 1);
    place(p.out, 2);
    place(p.fds.tap, kWorkerTapFd);
    place(p.fds.ram, kWorkerRamFd);
    place(p.fds.agent, kWorkerAgentFd);
    place(p.fds.qmp, kWorkerQmpFd);
    place(p.fds.console, kWorkerConsoleFd);
    if (p.jailed) {
      TRYV(enter_jail(p.jail));
      TRYV(set_no_new_privileges());
      TRYV(load_seccomp(p.filter));
    } else {
      TRYV(keep_worker_capabilities());
      TRYV(set_no_new_privileges());
    }
    std::vector<char*> argv, envp;
    for (std::string& a : p.args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : p.env) envp.push_back(e.data());
    envp.push_back(nullptr);
    ::execvpe(argv[0], argv.data(), envp.data());
    return fail(sys_error("exec", p.args[0]));
  }();
  std::string why = jailed.error().message();
  (void)!::write(p.report, why.data(), why.size());
  ::_exit(127);
}

Resources worker_limits(const VmConfig& config) {
  Resources r;
  r.memory_limit = static_cast<int64_t>(worker_memory_limit_mb(config.memory_mb) << 20);
  r.pids_limit = kWorkerPidsLimit;
  if (config.accel == "kvm") r.devices.push_back(DeviceRule{true, 'c', 10, 232, "rwm"});  // /dev/kvm
  return r;
}

}  // namespace

std::string worker_cgroup(const std::string& id) { return "isola/" + id; }

void remove_worker_cgroup(const VmConfig& config) {
  if (config.join_cgroup || config.worker_cgroup.empty()) return;
  if (auto cg = Cgroup::open(config.worker_cgroup); cg)
    if (auto r = cg->destroy(); !r) log_debug("worker cgroup: {}", r.error().message());
}

namespace {

// The worker's cgroup with its limits: made, or (isola-runtime) the
// container's, whose limits become the worker's (the keeper and the
// monitor in it are a few MiB of the overhead).
Result<Cgroup> worker_cgroup_for(const VmConfig& config) {
  if (config.join_cgroup) {
    Cgroup cg = TRY(Cgroup::open(config.worker_cgroup));
    TRYV(cg.update(worker_limits(config)));
    return cg;
  }
  remove_worker_cgroup(config);  // a dead worker's, if any
  return Cgroup::create(config.worker_cgroup, worker_limits(config));
}

// Lets the worker go on once it is placed (else it exits as the pipe
// closes), then waits for its exec: the report pipe closes then, or
// carries what went wrong in the jail's set-up.
Result<void> release_worker(const Result<void>& placed, UniqueFd go, UniqueFd report) {
  if (placed) (void)!::write(go.get(), "g", 1);
  go.reset();
  std::string why;
  char buf[512];
  for (ssize_t n; (n = ::read(report.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    why.append(buf, static_cast<size_t>(n));
  }
  if (!placed) return fail(Error(placed.error()).context("jail the VM worker"));
  if (!why.empty()) return fail(make_error("jail the VM worker", "qemu-system-x86_64", why));
  return {};
}

}  // namespace

Result<pid_t> spawn_worker(const VmConfig& config, const WorkerFds& fds, const std::string& output) {
  ChildPlan p;
  p.args = qemu_command(config);
  log_debug("qemu: {}", [&] {
    std::string s;
    for (const auto& a : p.args) s += a + " ";
    return s;
  }());
  std::string preload = TRY(find_qemu_preload());
  p.env = {"PATH=/usr/bin:/bin", "LD_PRELOAD=" + preload};
  if (fds.ram >= 0) p.env.push_back("ISOLA_RAM_FD=" + std::to_string(kWorkerRamFd));
  TRYV(mkdir_p(config.jail_root, 0700));
  p.jail = jail_plan(config, config.jail_root, preload);
  p.filter = TRY(worker_seccomp_program());
  p.fds = fds;
  p.jailed = !jail_disabled();
  UniqueFd out = TRY(open_path(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  int go[2], report[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd go_read(go[0]), go_write(go[1]);
  if (::pipe2(report, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd report_read(report[0]), report_write(report[1]);
  p.out = out.get();
  p.go = go[0];
  p.report = report[1];

  std::optional<Cgroup> cg;
  if (p.jailed) cg = TRY(worker_cgroup_for(config));
  const unsigned long namespaces = p.jailed ? kJailNamespaces : 0;
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, namespaces | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) {
    int err = errno;
    remove_worker_cgroup(config);
    return fail(sys_error(err, "clone", "the VM worker's namespaces"));
  }
  if (pid == 0) become_worker(p);
  go_read.reset();
  report_write.reset();
  auto placed = [&]() -> Result<void> {
    if (!p.jailed) return {};
    TRYV(map_jail_ids(pid));
    return cg->add_process(pid);
  }();
  auto started = release_worker(placed, std::move(go_write), std::move(report_read));
  if (!started) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    remove_worker_cgroup(config);
    return fail(started.error());
  }
  return pid;
}

}  // namespace isola
