#include "runtime/stdio_set.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "common/unix_socket.h"

namespace isola {

namespace {

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  return std::pair{UniqueFd(p[0]), UniqueFd(p[1])};
}

Result<void> take_master(StdioSet& s, int master, WindowSize size) {
  s.out.reset(master);
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  set_nonblocking(master);
  struct winsize ws {};
  ws.ws_row = size.rows;
  ws.ws_col = size.cols;
  if (::ioctl(master, TIOCSWINSZ, &ws) != 0) return fail(sys_error("set the terminal size"));
  s.in.reset(::fcntl(master, F_DUPFD_CLOEXEC, 3));
  if (!s.in) return fail(sys_error("dup", "pty master"));
  return {};
}

}  // namespace

Result<StdioSet> make_stdio(bool tty, bool interactive) {
  StdioSet s;
  if (tty) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail(sys_error("socketpair"));
    s.console_sock.reset(sv[0]);
    s.child_console_sock.reset(sv[1]);
    s.fds.console_socket = sv[1];
    return s;
  }
  auto [out_r, out_w] = TRY(make_pipe());
  auto [err_r, err_w] = TRY(make_pipe());
  s.out = std::move(out_r);
  s.child_out = std::move(out_w);
  s.err = std::move(err_r);
  s.child_err = std::move(err_w);
  if (interactive) {
    auto [in_r, in_w] = TRY(make_pipe());
    s.child_in = std::move(in_r);
    s.in = std::move(in_w);
  }
  for (const UniqueFd* fd : {&s.in, &s.out, &s.err})
    if (*fd) set_nonblocking(fd->get());
  s.fds.in = s.child_in ? s.child_in.get() : -1;
  s.fds.out = s.child_out.get();
  s.fds.err = s.child_err.get();
  return s;
}

// The runtime returns once the process exec'd or reported ready, both after
// it sent the master: nothing here waits.
Result<void> receive_master(StdioSet& s, WindowSize size) {
  auto master = recv_fd(s.console_sock.get(), MSG_DONTWAIT);
  if (!master) return fail(make_error("receive the terminal", "", "the process sent none"));
  return take_master(s, master->release(), size);
}

}  // namespace isola
