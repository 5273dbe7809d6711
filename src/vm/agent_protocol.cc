#include "vm/agent_protocol.h"

#include <poll.h>
#include <unistd.h>

namespace isola {

std::string encode_agent_frame(AgentMsg type, uint32_t stream, std::string_view payload) {
  std::string out;
  out.reserve(9 + payload.size());
  out += static_cast<char>(type);
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put32(stream);
  put32(static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

Result<bool> AgentFrameReader::next(AgentFrame& out) {
  if (failed_) return fail(make_error("read agent frame", "", "the channel is out of step"));
  if (buf_.size() < 9) return false;
  auto get32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(buf_[at + i])) << (8 * i);
    return v;
  };
  uint8_t type = static_cast<uint8_t>(buf_[0]);
  uint32_t len = get32(5);
  if (type < static_cast<uint8_t>(AgentMsg::hello) || type > static_cast<uint8_t>(AgentMsg::update_reply)) {
    failed_ = true;
    return fail(make_error("read agent frame", "", "unknown frame type " + std::to_string(type)));
  }
  if (len > kMaxAgentPayload) {
    failed_ = true;
    return fail(make_error("read agent frame", "", "frame of " + std::to_string(len) + " bytes is too large"));
  }
  if (buf_.size() < 9 + static_cast<size_t>(len)) return false;
  out.type = static_cast<AgentMsg>(type);
  out.stream = get32(1);
  out.payload = buf_.substr(9, len);
  buf_.erase(0, 9 + static_cast<size_t>(len));
  return true;
}

Result<void> write_agent_frame(int fd, AgentMsg type, uint32_t stream, std::string_view payload) {
  if (payload.size() > kMaxAgentPayload) return fail(make_error("write agent frame", "", "payload too large"));
  std::string data = encode_agent_frame(type, stream, payload);
  std::string_view rest = data;
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return fail(sys_error("write", "agent channel"));
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace isola
