#include "vm/worker.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/fs.h"
#include "common/log.h"

namespace isola {

namespace {

// QEMU runs as root only because 9p's passthrough model must create files
// with the guest's owners and modes. Keep just the capabilities that needs;
// everything else (admin, modules, ptrace, raw I/O, ...) is gone from its
// bounding set, so its root cannot have them, and it can never gain any.
void drop_worker_privileges() {
  static const int keep[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
                             CAP_FSETID, CAP_MKNOD,       CAP_SETGID,          CAP_SETUID};
  for (int cap = 0; cap <= 63; ++cap) {
    if (std::find(std::begin(keep), std::end(keep), cap) != std::end(keep)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;  // past the last one
  }
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

}  // namespace

namespace {

// Puts `fd` at `target` in the child, without close-on-exec.
void place_fd(int fd, int target) {
  if (fd == target) ::fcntl(target, F_SETFD, 0);
  else ::dup2(fd, target);  // the copy is not close-on-exec
}

}  // namespace

Result<pid_t> spawn_worker(const VmConfig& config, int tap_fd, int memory_fd, const std::string& output) {
  std::vector<std::string> args = qemu_command(config);
  log_debug("qemu: {}", [&] {
    std::string s;
    for (const auto& a : args) s += a + " ";
    return s;
  }());
  UniqueFd out = TRY(open_path(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  pid_t pid = ::fork();
  if (pid < 0) return fail(sys_error("fork"));
  if (pid == 0) {
    // The worker dies with its monitor: nobody else would stop the VM.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    drop_worker_privileges();
    ::dup2(out.get(), 1);
    ::dup2(out.get(), 2);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    // The tap and the RAM are all QEMU inherits beyond stdio. Both are
    // moved out of the way first, so placing one cannot overwrite the other.
    int keep = 3;
    int tap = tap_fd >= 0 && config.tap_fd >= 0 ? ::fcntl(tap_fd, F_DUPFD_CLOEXEC, 10) : -1;
    int ram = memory_fd >= 0 && config.memory_fd >= 0 ? ::fcntl(memory_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (tap >= 0) {
      place_fd(tap, config.tap_fd);
      keep = std::max(keep, config.tap_fd + 1);
    }
    if (ram >= 0) {
      place_fd(ram, config.memory_fd);
      keep = std::max(keep, config.memory_fd + 1);
    }
    for (int fd = 3; fd < keep; ++fd)
      if (!(tap >= 0 && fd == config.tap_fd) && !(ram >= 0 && fd == config.memory_fd)) ::close(fd);
    ::close_range(static_cast<unsigned>(keep), ~0U, 0);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace isola
