#include "ociruntime/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "common/unique_fd.h"
#include "ociruntime/runtime.h"

namespace isola::oci {

namespace {

int64_t mono_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Result<void> run_hook(const Hook& hook, const std::string& input, const char* kind) {
  const std::string what = std::string(kind) + " hook " + hook.path;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe", what));
  UniqueFd rd(p[0]), wr(p[1]);
  std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = hook.env;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return fail(sys_error("fork", what));
  if (pid == 0) {
    ::setpgid(0, 0);  // so that a timeout kills what the hook started too
    ::dup2(rd.get(), 0);
    ::execve(hook.path.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  rd.reset();
  // The hook may not read its stdin at all; a full pipe must not block us.
  ::fcntl(wr.get(), F_SETFL, O_NONBLOCK);
  ::signal(SIGPIPE, SIG_IGN);
  size_t off = 0;
  int64_t deadline = hook.timeout > 0 ? mono_ms() + hook.timeout * 1000LL : 0;
  int status = 0;
  for (;;) {
    if (off < input.size() && wr) {
      ssize_t n = ::write(wr.get(), input.data() + off, input.size() - off);
      if (n > 0) off += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) wr.reset();
      if (off == input.size()) wr.reset();
    }
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (deadline && mono_ms() > deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return fail(make_error("run " + what, "", "timed out after " + std::to_string(hook.timeout) + " s"));
    }
    ::usleep(wr ? 1000 : 5000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  return fail(make_error("run " + what, "", "it failed with " + how));
}

}  // namespace

Result<void> run_hooks(const std::vector<Hook>& hooks, const Json& state, const char* kind) {
  const std::string input = state.dump();
  for (const Hook& h : hooks) TRYV(run_hook(h, input, kind));
  return {};
}

void run_hooks_warning(const std::vector<Hook>& hooks, const Json& state, const char* kind) {
  const std::string input = state.dump();
  for (const Hook& h : hooks)
    if (auto r = run_hook(h, input, kind); !r)
      print_warning(r.error().message());
}

}  // namespace isola::oci
