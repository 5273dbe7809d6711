#include "vm/qmp.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "common/unix_socket.h"

namespace isola {

namespace {

constexpr size_t kMaxMessage = 1u << 20;  // no QMP reply we ask for comes near this
constexpr size_t kMaxEvents = 64;         // kept for wait_event; the rest are dropped

int64_t mono_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

Result<Qmp> Qmp::connect(const std::string& path, pid_t worker, int timeout_ms) {
  int64_t deadline = mono_ms() + timeout_ms;
  UniqueFd fd;
  for (;;) {
    auto c = unix_connect(path, SOCK_STREAM, "QEMU's QMP socket");
    if (c) {
      fd = std::move(*c);
      break;
    }
    // Looked at, not reaped: the worker is the caller's child to wait for.
    siginfo_t info{};
    if (worker > 0 && ::waitid(P_PID, static_cast<id_t>(worker), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == worker)
      return fail(make_error("connect to QMP", path, "the VM worker exited before it opened the socket"));
    if (mono_ms() >= deadline) return fail(c.error());
    ::usleep(2000);
  }
  ::unlink(path.c_str());
  Qmp q(std::move(fd));
  q.timeout_ms_ = timeout_ms;
  Json greeting = TRY(q.next(timeout_ms));
  if (!greeting.is_object() || !greeting.contains("QMP"))
    return fail(make_error("connect to QMP", path, "the first message is not QMP's greeting"));
  TRY(q.execute("qmp_capabilities"));
  return q;
}

Result<void> Qmp::send(const Json& message, int pass) {
  std::string text = message.dump() + "\n";
  if (pass >= 0) {
    TRYV(send_fd(fd_.get(), pass, text));
    return {};
  }
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::send(fd_.get(), text.data() + off, text.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(sys_error("send", "QMP"));
    off += static_cast<size_t>(n);
  }
  return {};
}

Result<Json> Qmp::next(int timeout_ms) {
  int64_t deadline = mono_ms() + timeout_ms;
  for (;;) {
    if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      return parse_json(line, "QMP message");
    }
    if (buf_.size() > kMaxMessage) return fail(make_error("read", "QMP", "a message larger than 1 MiB"));
    int left = static_cast<int>(deadline - mono_ms());
    if (left <= 0) return fail(make_error("read", "QMP", "QEMU did not answer in time"));
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, left);
    if (r < 0 && errno != EINTR) return fail(sys_error("poll", "QMP"));
    if (r <= 0) continue;
    char chunk[16384];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(sys_error("read", "QMP"));
    if (n == 0) return fail(make_error("read", "QMP", "QEMU closed the connection"));
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

Result<Json> Qmp::reply(const std::string& command) {
  for (;;) {
    Json m = TRY(next(timeout_ms_));
    if (!m.is_object()) return fail(make_error("run QMP command", command, "the reply is not an object"));
    if (m.contains("event")) {
      if (events_.size() < kMaxEvents) events_.push_back(std::move(m));
      continue;
    }
    if (auto e = m.find("error"); e != m.end()) {
      std::string desc = e->is_object() ? json_string_or(*e, "desc", "unknown error") : "unknown error";
      return fail(make_error("run QMP command", command, desc));
    }
    if (auto r = m.find("return"); r != m.end()) return *r;
    return fail(make_error("run QMP command", command, "the reply has neither return nor error"));
  }
}

Result<Json> Qmp::execute(const std::string& command, const Json& arguments) {
  Json message = {{"execute", command}};
  if (!arguments.is_null()) message["arguments"] = arguments;
  TRYV(send(message));
  return reply(command);
}

Result<void> Qmp::pass_fd(int fd, const std::string& name) {
  TRYV(send(Json{{"execute", "getfd"}, {"arguments", {{"fdname", name}}}}, fd));
  TRY(reply("getfd " + name));
  return {};
}

Result<Json> Qmp::wait_event(const std::string& name, const std::string& key, const std::string& value,
                             int timeout_ms) {
  auto matches = [&](const Json& m) {
    if (json_string_or(m, "event") != name) return false;
    if (key.empty()) return true;
    auto data = m.find("data");
    return data != m.end() && data->is_object() && json_string_or(*data, key.c_str()) == value;
  };
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    if (matches(*it)) {
      Json found = std::move(*it);
      events_.erase(it);
      return found;
    }
  }
  int64_t deadline = mono_ms() + timeout_ms;
  for (;;) {
    int left = static_cast<int>(deadline - mono_ms());
    if (left <= 0) return fail(make_error("wait for QEMU event", name, "it did not come in time"));
    Json m = TRY(next(left));
    if (m.is_object() && matches(m)) return m;
  }
}

}  // namespace isola
