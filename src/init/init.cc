// isola-init: the tiny PID 1 that `isola run --init` puts in front of the
// container's command. It runs the command as its child, forwards the
// signals it receives to it, reaps every orphan that the kernel hands to
// PID 1, and exits with the command's status. Built static: the image may
// have no C library. Deliberately plain: no allocation, no C++ runtime.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
  if (first >= argc) {
    static const char usage[] = "isola-init: usage: isola-init [--] COMMAND [ARG...]\n";
    (void)!write(2, usage, sizeof usage - 1);
    return 125;
  }

  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  // The kernel drops signals sent to a PID namespace's init while their
  // disposition is the default, so give each one a handler; they stay
  // blocked and are taken with sigtimedwait below.
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = [](int) {};
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, nullptr);

  pid_t child = fork();
  if (child < 0) {
    perror("isola-init: fork");
    return 125;
  }
  if (child == 0) {
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, nullptr);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    // Its own process group, so a terminal's ^C reaches the command as usual.
    setpgid(0, 0);
    if (isatty(0)) tcsetpgrp(0, getpid());
    execvp(argv[first], argv + first);
    int err = errno;
    fprintf(stderr, "isola-init: exec %s: %s\n", argv[first], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }

  for (;;) {
    siginfo_t info;
    struct timespec tick = {1, 0};
    int sig = sigtimedwait(&all, &info, &tick);
    if (sig > 0 && sig != SIGCHLD) kill(child, sig);
    // Reap everything that has exited; the command's status is ours.
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) {
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
      }
    }
  }
}
