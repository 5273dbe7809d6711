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
#include <iostream>
#include <memory>
#include <vector>

#include "common/json.h"
#include "common/unique_fd.h"
#include "monitor/client.h"
#include "monitor/monitor.h"
#include "monitor/protocol.h"
#include "monitor/session_client.h"

namespace isola::cli {

static_assert(sizeof(termios) <= 64);

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  termios t;
  if (!::isatty(fd) || ::tcgetattr(fd, &t) != 0) return;
  std::memcpy(saved_, &t, sizeof t);
  // Fully raw: the container's own terminal already turns "\n" into "\r\n".
  const char eof = static_cast<char>(t.c_cc[VEOF]);
  ::cfmakeraw(&t);
  if (::tcsetattr(fd, TCSANOW, &t) != 0) return;
  active_ = true;
  // Input typed before now (a script's end of input, say) was read in
  // canonical mode, where an end-of-file character is kept as a NUL byte:
  // raw mode would hand that NUL over and the container's terminal echo
  // it as "^@". It is taken here and given back as the character it was.
  pollfd p{fd, POLLIN, 0};
  char buf[4096];
  while (pending_.size() < (1u << 16) && ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) pending_ += buf[i] == '\0' ? eof : buf[i];
  }
}

RawTerminal::~RawTerminal() {
  if (!active_) return;
  termios t;
  std::memcpy(&t, saved_, sizeof t);
  ::tcsetattr(fd_, TCSANOW, &t);
}

namespace {

// The container's pty already turned each "\n" into "\r\n": the user's
// terminal must pass its output through as it comes, or every line ends in
// "\r\r\n". Raw mode (-it) does that; this is for -t alone.
class VerbatimOutput {
 public:
  explicit VerbatimOutput(int fd) : fd_(fd) {
    if (!::isatty(fd_) || ::tcgetattr(fd_, &saved_) != 0) return;
    struct termios t = saved_;
    t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
    active_ = ::tcsetattr(fd_, TCSADRAIN, &t) == 0;
  }
  ~VerbatimOutput() {
    if (active_) ::tcsetattr(fd_, TCSADRAIN, &saved_);
  }
  VerbatimOutput(const VerbatimOutput&) = delete;
  VerbatimOutput& operator=(const VerbatimOutput&) = delete;

 private:
  int fd_;
  bool active_ = false;
  struct termios saved_ {};
};

}  // namespace

Result<int> attach_session(const std::string& socket_path, const AttachOptions& opts) {
  SessionOptions so;
  so.op = opts.op;
  so.extra = opts.extra;
  so.stdin = opts.stdin;
  so.tty = opts.tty;
  so.size_fd = STDIN_FILENO;
  so.detach_keys = true;
  so.out = opts.out;
  so.err = opts.err;
  so.signals = opts.signals;
  so.on_signal = opts.on_signal;
  // Raw before the session opens: what is typed from here on reaches the
  // container as typed.
  std::unique_ptr<RawTerminal> raw;
  std::unique_ptr<VerbatimOutput> verbatim;
  if (opts.tty && opts.stdin) {
    raw = std::make_unique<RawTerminal>(STDIN_FILENO);
    so.first_input = raw->take_pending();
  } else if (opts.tty) {
    verbatim = std::make_unique<VerbatimOutput>(opts.out);
  }
  SessionClient session = TRY(SessionClient::open(socket_path, std::move(so)));
  int code = TRY(session.run());
  return code == kSessionDetached ? kDetached : code;
}

Result<bool> confirm_on_terminal(const std::string& command, const std::string& warning) {
  if (!::isatty(STDIN_FILENO))
    return fail(make_error(command, "standard input", "is not a terminal, so isola cannot ask for "
                           "confirmation; use -f to prune without asking"));
  std::cout << warning << "Are you sure you want to continue? [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

}  // namespace isola::cli
