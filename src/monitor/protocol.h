// The framing spoken on a container monitor's control socket
// (/run/isola/<id>/ctl.sock): [type:u8][length:u32 little-endian][payload].
// A client first sends a Request frame (JSON, "op" one of: "attach"
// {"stdin":bool,"rows","cols"}; for VM containers also "signal" {"signal":S},
// "ps" and "update" {"resources":{OCI linux.resources}}, answered by one
// Reply frame, and "exec" {"process":{...}}, which
// then flows like an attach of the exec'd process). After an attach or
// exec, stdin, resize and output frames flow until an Exit frame.
// Frames are bounded; anything malformed closes the connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

enum class FrameType : uint8_t {
  request = 1,   // client → monitor, JSON
  stdin_data = 2,
  stdin_eof = 3,
  stdout_data = 4,
  stderr_data = 5,
  resize = 6,    // JSON {"rows":R,"cols":C}
  exit = 7,      // monitor → client, JSON {"exit_code":N,"error":"..."}
  error = 8,     // monitor → client, JSON {"error":"..."}
  started = 9,   // monitor → client: the container process is running
  reply = 10,    // monitor → client: the JSON answer to a one-shot request
};

inline constexpr uint32_t kMaxFramePayload = 1u << 20;

struct Frame {
  FrameType type;
  std::string payload;
};

std::string encode_frame(FrameType type, std::string_view payload);

// Accumulates bytes and yields whole frames.
class FrameReader {
 public:
  void feed(const char* data, size_t size) { buf_.append(data, size); }
  // A frame if one is complete; an error for a malformed stream.
  Result<bool> next(Frame& out);

 private:
  std::string buf_;
};

// Blocking helpers for clients.
Result<void> write_frame(int fd, FrameType type, std::string_view payload);
// Reads one whole frame; returns false at a clean EOF.
Result<bool> read_frame(int fd, FrameReader& reader, Frame& out);

}  // namespace isola
