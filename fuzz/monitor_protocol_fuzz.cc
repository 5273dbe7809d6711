// The framing on a container monitor's control socket (src/monitor/
// protocol.cc FrameReader and read_frame). The input is what a client
// writes to the socket.
//
// Checked: the frames read from a socket with read_frame, fed at once and
// fed one byte at a time are the same, with the same error; re-encoding
// them gives the bytes consumed; payloads stay within the bound.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/json.h"
#include "fuzz_util.h"
#include "monitor/protocol.h"

namespace {

using namespace isola;

struct Decoded {
  std::vector<Frame> frames;
  bool failed = false;
};

Decoded read_all_at_once(std::string_view bytes) {
  Decoded d;
  FrameReader reader;
  reader.feed(bytes.data(), bytes.size());
  for (;;) {
    Frame f;
    auto r = reader.next(f);
    if (!r) {
      d.failed = true;
      return d;
    }
    if (!*r) return d;
    d.frames.push_back(std::move(f));
  }
}

Decoded read_byte_by_byte(std::string_view bytes) {
  Decoded d;
  FrameReader reader;
  for (char c : bytes) {
    reader.feed(&c, 1);
    for (;;) {
      Frame f;
      auto r = reader.next(f);
      if (!r) {
        d.failed = true;
        return d;
      }
      if (!*r) break;
      d.frames.push_back(std::move(f));
    }
  }
  return d;
}

// As a client's bytes arrive: through a socket, read with read_frame until
// the clean end of the stream or an error.
Decoded read_from_socket(std::string_view bytes) {
  Decoded d;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) isola::fuzz::die("harness: socketpair");
  int sndbuf = 1 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  std::string_view rest = bytes;
  while (!rest.empty()) {
    ssize_t n = ::write(sv[0], rest.data(), rest.size());
    if (n <= 0) isola::fuzz::die("harness: write to socketpair");
    rest.remove_prefix(static_cast<size_t>(n));
  }
  ::close(sv[0]);
  FrameReader reader;
  for (;;) {
    Frame f;
    auto r = read_frame(sv[1], reader, f);
    if (!r) {
      d.failed = true;
      break;
    }
    if (!*r) break;
    d.frames.push_back(std::move(f));
  }
  ::close(sv[1]);
  return d;
}

void expect_same(const Decoded& a, const Decoded& b) {
  FUZZ_CHECK(a.failed == b.failed);
  FUZZ_CHECK(a.frames.size() == b.frames.size());
  for (size_t i = 0; i < a.frames.size(); ++i)
    FUZZ_CHECK(a.frames[i].type == b.frames[i].type && a.frames[i].payload == b.frames[i].payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Decoded whole = read_all_at_once(bytes);
  expect_same(whole, read_byte_by_byte(bytes));
  expect_same(whole, read_from_socket(bytes));

  std::string encoded;
  for (const Frame& f : whole.frames) {
    FUZZ_CHECK(f.payload.size() <= kMaxFramePayload);
    encoded += encode_frame(f.type, f.payload);
    // What the monitor reads out of a request or resize frame.
    if (f.type == FrameType::request || f.type == FrameType::resize) {
      if (auto j = parse_json(f.payload, "request")) (void)json_string_or(*j, "op");
    }
  }
  FUZZ_CHECK(bytes.starts_with(encoded));
  return 0;
}
