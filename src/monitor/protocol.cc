#include "monitor/protocol.h"

#include <unistd.h>

namespace isola {

std::string encode_frame(FrameType type, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out += static_cast<char>(type);
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out.append(payload);
  return out;
}

Result<bool> FrameReader::next(Frame& out) {
  if (buf_.size() < 5) return false;
  uint8_t type = static_cast<uint8_t>(buf_[0]);
  if (type < static_cast<uint8_t>(FrameType::request) || type > static_cast<uint8_t>(FrameType::reply))
    return fail(make_error("read frame", "", "unknown frame type " + std::to_string(type)));
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<uint8_t>(buf_[1 + i])) << (8 * i);
  if (n > kMaxFramePayload) return fail(make_error("read frame", "", "frame too large"));
  if (buf_.size() < 5 + static_cast<size_t>(n)) return false;
  out.type = static_cast<FrameType>(type);
  out.payload = buf_.substr(5, n);
  buf_.erase(0, 5 + static_cast<size_t>(n));
  return true;
}

Result<void> write_frame(int fd, FrameType type, std::string_view payload) {
  std::string data = encode_frame(type, payload);
  std::string_view rest = data;
  while (!rest.empty()) {
    ssize_t w = ::write(fd, rest.data(), rest.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("write", "monitor socket"));
    }
    rest.remove_prefix(static_cast<size_t>(w));
  }
  return {};
}

Result<bool> read_frame(int fd, FrameReader& reader, Frame& out) {
  for (;;) {
    if (TRY(reader.next(out))) return true;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("read", "monitor socket"));
    }
    if (n == 0) return false;
    reader.feed(buf, static_cast<size_t>(n));
  }
}

}  // namespace isola
