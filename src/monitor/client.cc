#include "monitor/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "monitor/protocol.h"

namespace isola {

Result<UniqueFd> connect_monitor(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(sys_error("socket", path));
  UniqueFd sock(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return fail(make_error("connect", path, "path too long"));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return fail(sys_error("connect to the container's monitor", path));
  return sock;
}

Result<Json> monitor_call(const std::string& path, const Json& request, int timeout_ms) {
  UniqueFd sock = TRY(connect_monitor(path));
  TRYV(write_frame(sock.get(), FrameType::request, request.dump()));
  FrameReader reader;
  for (;;) {
    Frame f;
    if (TRY(reader.next(f))) {
      auto j = parse_json(f.payload, "monitor reply");
      if (f.type == FrameType::reply && j) return *j;
      if (f.type == FrameType::error)
        return fail(make_error(json_string_or(request, "op"), "", j ? json_string_or(*j, "message") : f.payload));
      continue;
    }
    pollfd p{sock.get(), POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) return fail(make_error(json_string_or(request, "op"), path, "the monitor did not answer in time"));
    char buf[65536];
    ssize_t n = ::read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(make_error(json_string_or(request, "op"), path, "the monitor closed the connection"));
    reader.feed(buf, static_cast<size_t>(n));
  }
}

}  // namespace isola
