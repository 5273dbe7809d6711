#include "monitor/session.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/fs.h"
#include "common/unix_socket.h"
#include "engine/container_store.h"

namespace isola {

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("write", "pipe"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

void set_nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

Json error_json(const Error& e) {
  return {{"ok", false}, {"errno", e.err}, {"op", e.op}, {"message", e.message()}, {"exit_code", e.exit_code}};
}

Result<UniqueFd> listen_socket(const std::string& path) {
  TRYV(mkdir_p(path.substr(0, path.rfind('/')), 0700));
  return unix_listen(path, SOCK_STREAM | SOCK_NONBLOCK);
}

void flush_client(Client& c) {
  while (!c.out.empty() && !c.closed) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) c.closed = true;
      return;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
}

void queue_frame(Client& c, FrameType type, std::string_view payload) {
  if (c.closed) return;
  if (c.out.size() > (8u << 20)) {
    c.closed = true;  // a client that does not read loses its attachment
    return;
  }
  c.out += encode_frame(type, payload);
  flush_client(c);
}

void log_output(int log_fd, std::string_view data, const char* stream) {
  std::string out;
  std::string time = format_time_ns(now_ns());
  while (!data.empty()) {
    size_t nl = data.find('\n');
    size_t n = nl == std::string_view::npos ? data.size() : nl + 1;
    Json line = {{"log", std::string(data.substr(0, n))}, {"stream", stream}, {"time", time}};
    out += line.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    data.remove_prefix(n);
  }
  (void)write_all(log_fd, out);
}

}  // namespace isola
