#include "monitor/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/unix_socket.h"
#include "monitor/protocol.h"

namespace isola {

Result<UniqueFd> connect_monitor(const std::string& path) {
  return unix_connect(path, SOCK_STREAM, "the container's monitor");
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
