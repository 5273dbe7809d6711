#include "monitor/session_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "monitor/client.h"
#include "monitor/monitor.h"

namespace isola {

namespace {

Result<void> write_out(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      return fail(sys_error("write", "output"));
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

SessionClient::SessionClient(UniqueFd sock, SessionOptions opts) : sock_(std::move(sock)), opts_(std::move(opts)) {}

Result<SessionClient> SessionClient::open(const std::string& socket_path, SessionOptions opts) {
  UniqueFd sock = TRY(connect_monitor(socket_path));
  // The size rides on the request so the process starts with it.
  Json request = opts.extra;
  request["op"] = opts.op;
  request["stdin"] = opts.stdin;
  winsize ws{};
  if (opts.tty && ::ioctl(opts.size_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    request["rows"] = ws.ws_row;
    request["cols"] = ws.ws_col;
  }
  TRYV(write_frame(sock.get(), FrameType::request, request.dump()));
  SessionClient s(std::move(sock), std::move(opts));
  s.socket_path_ = socket_path;
  s.stdin_open_ = s.opts_.stdin;
  sigset_t mask;
  sigemptyset(&mask);
  if (s.opts_.tty) sigaddset(&mask, SIGWINCH);
  for (int sig : s.opts_.signals) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  s.sigfd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!s.sigfd_) return fail(sys_error("signalfd"));
  return s;
}

Result<void> SessionClient::send_size() {
  winsize ws{};
  if (::ioctl(opts_.size_fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return {};
  return write_frame(sock_.get(), FrameType::resize, Json{{"rows", ws.ws_row}, {"cols", ws.ws_col}}.dump());
}

Result<void> SessionClient::forward_input() {
  char buf[65536];
  ssize_t n = ::read(opts_.in, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return {};
  if (n <= 0) {  // EOF; EIO from a pty whose other side closed
    stdin_open_ = false;
    return write_frame(sock_.get(), FrameType::stdin_eof, "");
  }
  std::string data;
  for (ssize_t i = 0; i < n; ++i) {
    char ch = buf[i];
    if (!opts_.detach_keys || !opts_.tty) {
      data += ch;
      continue;
    }
    // Ctrl-P Ctrl-Q detaches a terminal session, as in docker; a lone
    // Ctrl-P is held back until the next key says which it is.
    if (held_ctrl_p_) {
      held_ctrl_p_ = false;
      if (ch == 0x11) {
        detached_ = true;
        break;
      }
      data += '\x10';
    }
    if (ch == 0x10) held_ctrl_p_ = true;
    else data += ch;
  }
  if (!data.empty()) TRYV(write_frame(sock_.get(), FrameType::stdin_data, data));
  return {};
}

// One read can bring "started", the output and the exit together (a short
// command, a slow client): the exit is kept in the object, so whichever of
// wait_started() and run() reads it, run() ends with it.
Result<void> SessionClient::drain_frames() {
  Frame f;
  while (!exited_ && TRY(reader_.next(f))) {
    switch (f.type) {
      case FrameType::stdout_data: TRYV(write_out(opts_.out, f.payload)); break;
      case FrameType::stderr_data: TRYV(write_out(opts_.tty ? opts_.out : opts_.err, f.payload)); break;
      case FrameType::started: started_ = true; break;
      case FrameType::exit: {
        ExitReport report = read_exit_report(f.payload);
        exited_ = true;
        exit_code_ = report.exit_code;
        if (!started_ && !report.error.empty()) {
          Error e = plain_error(report.error);
          e.exit_code = exit_code_;
          return fail(e);
        }
        break;
      }
      case FrameType::error: return fail(read_error_report(f.payload));
      default: break;
    }
  }
  return {};
}

// Waits for and handles one batch of events; false once the session is over.
Result<bool> SessionClient::relay_once() {
  // Frames already read come first: they may be all that is left of the
  // session, its exit included, and nothing more would wake the poll.
  TRYV(drain_frames());
  if (exited_) return false;
  std::vector<pollfd> fds = {{sock_.get(), POLLIN, 0}, {sigfd_.get(), POLLIN, 0}};
  if (stdin_open_ && started_ && !opts_.first_input.empty()) {
    TRYV(write_frame(sock_.get(), FrameType::stdin_data, opts_.first_input));
    opts_.first_input.clear();
  }
  if (stdin_open_ && started_) fds.push_back({opts_.in, POLLIN, 0});
  if (::poll(fds.data(), fds.size(), -1) < 0) {
    if (errno == EINTR) return true;
    return fail(sys_error("poll"));
  }
  if (fds[1].revents) {
    signalfd_siginfo si;
    while (::read(sigfd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGWINCH && opts_.tty) (void)send_size();
      else if (opts_.on_signal) opts_.on_signal(sig);
    }
  }
  if (fds.size() > 2 && fds[2].revents) {
    TRYV(forward_input());
    if (detached_) return false;
  }
  if (fds[0].revents) {
    char buf[65536];
    ssize_t n = ::read(sock_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return fail(make_error("attach", socket_path_, "the container's monitor went away"));
    reader_.feed(buf, static_cast<size_t>(n));
    TRYV(drain_frames());
  }
  return !exited_;
}

Result<void> SessionClient::wait_started() {
  while (!started_ && !exited_ && !detached_) TRY(relay_once());
  if (exited_ && !started_) {
    Error e = make_error("start", "", "the process exited before it started");
    e.exit_code = exit_code_;
    return fail(e);
  }
  return {};
}

Result<int> SessionClient::run() {
  while (TRY(relay_once())) {
  }
  if (detached_) return kSessionDetached;
  return exit_code_;
}

}  // namespace isola
