#include "engine/health_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common/log.h"
#include "common/duration.h"
#include "engine/events.h"
#include "engine/health.h"

namespace isola {

namespace {

constexpr size_t kOutputLimit = 4096;  // docker keeps this much of a probe's output

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Runs `isola --root ROOT exec ID CMD...` with its output in a pipe; kills
// it at the timeout (exit code -1, as docker reports a timeout).
HealthProbe run_probe(const std::string& exe, const std::string& root, const std::string& id,
                      const HealthConfig& cfg) {
  HealthProbe probe;
  probe.start_ns = now_ns();
  std::vector<std::string> args = {exe, "--root", root, "exec", id};
  for (const std::string& a : cfg.command()) args.push_back(a);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    probe.exit_code = -1;
    probe.output = "health check: pipe failed";
    probe.end_ns = now_ns();
    return probe;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());  // still isola after an upgrade replaced the file
    ::_exit(127);
  }
  ::close(p[1]);
  UniqueFd out(p[0]);
  int64_t deadline = probe.start_ns + cfg.timeout_ns;
  bool timed_out = child < 0;
  for (;;) {
    int64_t left_ms = (deadline - now_ns()) / 1000000;
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{out.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000))) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out.get(), buf, sizeof buf);
    if (n <= 0) break;  // every writer is gone: the probe ended
    size_t keep = std::min(static_cast<size_t>(n), kOutputLimit - std::min(kOutputLimit, probe.output.size()));
    probe.output.append(buf, keep);
  }
  int status = 0;
  if (timed_out && child > 0) ::kill(child, SIGKILL);
  if (child > 0) ::waitpid(child, &status, 0);
  probe.end_ns = now_ns();
  if (timed_out) {
    probe.exit_code = -1;
    probe.output = "Health check exceeded timeout (" + format_go_duration(cfg.timeout_ns) + ")";
  } else {
    probe.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return probe;
}

void sleep_ns(int64_t ns) {
  struct timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

[[noreturn]] void prober_main(const std::string& root, const ContainerRecord& rec, const HealthConfig& cfg) {
  auto store = ContainerStore::open(root);
  if (!store) ::_exit(1);
  std::string exe = self_exe();  // argv[0] only: the probe runs /proc/self/exe
  HealthState health;  // each run of the container starts over
  (void)write_health(*store, rec.id, health);
  for (;;) {
    ContainerState st = store->state(rec.id);
    bool in_start_period = health.status == "starting" && now_ns() - st.started_ns < cfg.start_period_ns;
    sleep_ns(in_start_period ? cfg.start_interval_ns : cfg.interval_ns);
    st = store->state(rec.id);
    if (st.status == "exited" || st.status == "restarting") ::_exit(0);
    if (st.status != "running") continue;  // created (not attached yet) or paused
    in_start_period = health.status == "starting" && now_ns() - st.started_ns < cfg.start_period_ns;
    HealthProbe probe = run_probe(exe, root, rec.id, cfg);
    std::string before = health.status;
    health.record(probe, cfg.retries, in_start_period);
    try {
      (void)write_health(*store, rec.id, health);
    } catch (const std::exception&) {
      // Unreachable with the replacing dump; a prober must not die of it.
    }
    if (health.status != before) record_container_event(root, rec, "health_status: " + health.status);
  }
}

}  // namespace

UniqueFd start_health_prober(const std::string& store_root, const ContainerRecord& rec) {
  auto cfg = health_config_of(rec);
  if (!cfg) return {};
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid > 0) {
    // Not reaped before this: only this thread waits for children.
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) ::kill(pid, SIGKILL);  // unstoppable without one: no probes rather than a stray
    return UniqueFd(fd);
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != parent) ::_exit(0);
  ::prctl(PR_SET_NAME, "isola-health");
  ::syscall(SYS_close_range, 3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  prober_main(store_root, rec, *cfg);
}

void stop_health_prober(UniqueFd prober) {
  if (!prober) return;
  ::syscall(SYS_pidfd_send_signal, prober.get(), SIGKILL, nullptr, 0);
  constexpr int kPidfdIdType = 3;  // P_PIDFD (Linux 5.4), not in glibc 2.36's headers
  siginfo_t info;
  while (::waitid(static_cast<idtype_t>(kPidfdIdType), static_cast<id_t>(prober.get()), &info, WEXITED) < 0 &&
         errno == EINTR) {
  }
}

}  // namespace isola
