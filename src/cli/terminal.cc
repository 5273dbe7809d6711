#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "common/json.h"
#include "common/unique_fd.h"
#include "monitor/client.h"
#include "monitor/monitor.h"
#include "monitor/protocol.h"

namespace isola::cli {

static_assert(sizeof(termios) <= 64);

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  termios t;
  if (!::isatty(fd) || ::tcgetattr(fd, &t) != 0) return;
  std::memcpy(saved_, &t, sizeof t);
  // Fully raw: the container's own terminal already turns "\n" into "\r\n".
  ::cfmakeraw(&t);
  if (::tcsetattr(fd, TCSANOW, &t) == 0) active_ = true;
}

RawTerminal::~RawTerminal() {
  if (!active_) return;
  termios t;
  std::memcpy(&t, saved_, sizeof t);
  ::tcsetattr(fd_, TCSANOW, &t);
}

namespace {

Result<void> send_size(int sock) {
  winsize ws{};
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) != 0) return {};
  return write_frame(sock, FrameType::resize, Json{{"rows", ws.ws_row}, {"cols", ws.ws_col}}.dump());
}

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

Result<int> attach_session(const std::string& socket_path, const AttachOptions& opts) {
  UniqueFd sock = TRY(connect_monitor(socket_path));
  // The size rides on the request so the process starts with it.
  Json request = opts.extra;
  request["op"] = opts.op;
  request["stdin"] = opts.stdin;
  winsize ws{};
  if (opts.tty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
    request["rows"] = ws.ws_row;
    request["cols"] = ws.ws_col;
  }
  TRYV(write_frame(sock.get(), FrameType::request, request.dump()));

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGWINCH);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd winch(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  std::unique_ptr<RawTerminal> raw;
  if (opts.tty && opts.stdin) raw = std::make_unique<RawTerminal>(STDIN_FILENO);

  FrameReader reader;
  bool stdin_open = opts.stdin;
  bool held_ctrl_p = false;
  for (;;) {
    std::vector<pollfd> fds = {{sock.get(), POLLIN, 0}, {winch.get(), POLLIN, 0}};
    if (stdin_open) fds.push_back({STDIN_FILENO, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("poll"));
    }
    if (fds[1].revents) {
      signalfd_siginfo si;
      while (::read(winch.get(), &si, sizeof si) > 0) {
      }
      if (opts.tty) (void)send_size(sock.get());
    }
    if (stdin_open && fds[2].revents) {
      char buf[65536];
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n > 0) {
        std::string data;
        for (ssize_t i = 0; i < n; ++i) {
          char ch = buf[i];
          // Ctrl-P Ctrl-Q detaches a terminal session, as in docker; a
          // lone Ctrl-P is held back until the next key says which it is.
          if (opts.tty && held_ctrl_p) {
            held_ctrl_p = false;
            if (ch == 0x11) {
              if (!data.empty()) TRYV(write_frame(sock.get(), FrameType::stdin_data, data));
              return kDetached;
            }
            data += '\x10';
          }
          if (opts.tty && ch == 0x10) held_ctrl_p = true;
          else data += ch;
        }
        if (!data.empty()) TRYV(write_frame(sock.get(), FrameType::stdin_data, data));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        TRYV(write_frame(sock.get(), FrameType::stdin_eof, ""));
      }
    }
    if (fds[0].revents) {
      char buf[65536];
      ssize_t n = ::read(sock.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(make_error("attach", socket_path, "the container's monitor went away"));
      reader.feed(buf, static_cast<size_t>(n));
      Frame f;
      for (;;) {
        bool got = TRY(reader.next(f));
        if (!got) break;
        switch (f.type) {
          case FrameType::stdout_data: TRYV(write_out(STDOUT_FILENO, f.payload)); break;
          case FrameType::stderr_data: TRYV(write_out(STDERR_FILENO, f.payload)); break;
          case FrameType::exit: {
            auto j = parse_json(f.payload, "exit frame");
            return j ? j->value("exit_code", 125) : 125;
          }
          case FrameType::error: {
            auto j = parse_json(f.payload, "error frame");
            Error e = plain_error(j ? json_string_or(*j, "message", json_string_or(*j, "error")) : "unknown error");
            if (j) {
              Error probe{j->value("errno", 0), json_string_or(*j, "op"), {}, {}};
              int given = j->value("exit_code", 0);
              e.exit_code = given ? given : start_failure_exit_code(probe);
            }
            return fail(e);
          }
          default: break;
        }
      }
    }
  }
}

}  // namespace isola::cli
