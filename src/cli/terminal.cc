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
#include "monitor/session_client.h"

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

Result<int> attach_session(const std::string& socket_path, const AttachOptions& opts) {
  SessionOptions so;
  so.op = opts.op;
  so.extra = opts.extra;
  so.stdin = opts.stdin;
  so.tty = opts.tty;
  so.size_fd = STDIN_FILENO;
  so.detach_keys = true;
  SessionClient session = TRY(SessionClient::open(socket_path, std::move(so)));
  std::unique_ptr<RawTerminal> raw;
  if (opts.tty && opts.stdin) raw = std::make_unique<RawTerminal>(STDIN_FILENO);
  int code = TRY(session.run());
  return code == kSessionDetached ? kDetached : code;
}

}  // namespace isola::cli
