// The protocol between the host (a VM container's monitor) and isola-agent,
// PID 1 inside the guest, over one virtio-serial port: a byte stream of
// frames
//
//   [type: u8][stream: u32 LE][length: u32 LE][payload: length bytes]
//
// Stream 0 is control; every process in the guest has its own stream (1 is
// the container's init, exec'd processes take the next free numbers, chosen
// by the host). Payloads are JSON for control frames and raw bytes for
// stdio. A frame larger than kMaxAgentPayload, an unknown type or a stream
// that does not exist is a protocol error: the receiver drops the frame
// and answers kError on stream 0 (the agent) or fails the container (the
// host); neither side crashes. docs/agent-protocol.md describes it in full.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

inline constexpr uint32_t kAgentProtocolVersion = 1;
inline constexpr uint32_t kMaxAgentPayload = 1u << 20;
// The stream of the VM's first container's init.
inline constexpr uint32_t kInitStream = 1;

enum class AgentMsg : uint8_t {
  hello = 1,      // agent → host, stream 0: {"version":1,"kernel":"6.1.0-…"}
  // host → agent, stream 1: {"spec":{OCI config},"shares":[{"tag":"v0","path":"/run/isola/v0"}]};
  // on a new stream N ≥ 2, a further container of a pod (no shares).
  create = 2,
  exec = 3,       // host → agent, stream N: {"process":{OCI process}[,"container":M]}
  started = 4,    // agent → host, stream N: {"pid":P} (guest PID)
  stdin_data = 5, // host → agent, stream N: bytes
  stdin_eof = 6,  // host → agent, stream N
  stdout_data = 7,// agent → host, stream N: bytes
  stderr_data = 8,// agent → host, stream N: bytes
  resize = 9,     // host → agent, stream N: {"rows":R,"cols":C}
  signal = 10,    // host → agent, stream N: {"signal":S} (to that process)
  exit = 11,      // agent → host, stream N: {"exit_code":C,"oom_killed":B}
  ps = 12,        // host → agent, stream 0: {}
  ps_reply = 13,  // agent → host, stream 0: {"titles":[…],"processes":[[…],…]}
  shutdown = 14,  // host → agent, stream 0: kill everything, sync, power off
  error = 15,     // either way: {"errno":E,"op":"…","message":"…"} (stream of the request)
  // host → agent, stream 0, to a clone of a VM template before anything
  // else: {"entropy":"<hex>","realtime_ns":N,"boot_id":"<uuid>"}; the agent
  // reseeds the kernel's random generator, sets the clock, keeps the boot
  // ID for the container and answers with a hello.
  wake = 16,
  // host → agent, stream 0: {"resources":{OCI linux.resources}}, applied
  // to the container's cgroup in the guest (isola update); answered by
  // update_reply {"ok":true} or {"ok":false,"errno":E,"op":"…","message":"…"}.
  update = 17,
  update_reply = 18,
};

struct AgentFrame {
  AgentMsg type;
  uint32_t stream = 0;
  std::string payload;
};

std::string encode_agent_frame(AgentMsg type, uint32_t stream, std::string_view payload);

// Accumulates bytes from the channel and yields whole frames; a malformed
// stream (unknown type, oversized frame) is an error and the reader stays
// failed.
class AgentFrameReader {
 public:
  void feed(const char* data, size_t size) { buf_.append(data, size); }
  // True with `out` filled when a whole frame is there; false when more
  // bytes are needed.
  Result<bool> next(AgentFrame& out);

 private:
  std::string buf_;
  bool failed_ = false;
};

// Writes a whole frame to a blocking descriptor.
Result<void> write_agent_frame(int fd, AgentMsg type, uint32_t stream, std::string_view payload);

}  // namespace isola
