// The guest agent protocol, both sides: the byte stream of frames over the
// virtio-serial port (src/vm/agent_protocol.cc AgentFrameReader, which the
// host's VM monitor and the agent both use) and the agent's parsing of what
// the host sends (src/agent/requests.cc: create, exec, resize, signal and
// the per-stream rules). The input is the raw channel.
//
// Checked: feeding the bytes at once or one by one gives the same frames
// and the same error; re-encoding the frames gives the bytes consumed; a
// failed reader stays failed; what a request parser accepts is consistent
// (a create's spec survives to_json/from_json, shares pass check_share,
// sizes and signals are in range); every error can be sent back as the
// JSON error payload the host reads.
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/requests.h"
#include "fuzz_util.h"
#include "vm/agent_protocol.h"

namespace {

using namespace isola;

struct Decoded {
  std::vector<AgentFrame> frames;
  bool failed = false;
};

Decoded read_all_at_once(std::string_view bytes) {
  Decoded d;
  AgentFrameReader reader;
  reader.feed(bytes.data(), bytes.size());
  for (;;) {
    AgentFrame f;
    auto r = reader.next(f);
    if (!r) {
      d.failed = true;
      FUZZ_CHECK(!reader.next(f).has_value());  // stays out of step
      return d;
    }
    if (!*r) return d;
    d.frames.push_back(std::move(f));
  }
}

Decoded read_byte_by_byte(std::string_view bytes) {
  Decoded d;
  AgentFrameReader reader;
  for (char c : bytes) {
    reader.feed(&c, 1);
    for (;;) {
      AgentFrame f;
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

void check_error_payload(const Error& e) {
  auto j = parse_json(agent::error_payload(e), "error payload");
  FUZZ_CHECK(j.has_value() && j->is_object());
  FUZZ_CHECK(json_string(*j, "message", "error payload").has_value());
}

void check_spec_round_trip(const RuntimeSpec& spec) {
  Json once = spec.to_json();
  auto again = RuntimeSpec::from_json(once);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->to_json() == once);
}

// What the agent does with a frame from the host, short of acting on it.
void handle_host_frame(const AgentFrame& f) {
  if (auto ok = agent::check_host_frame(f); !ok) {
    check_error_payload(ok.error());
    return;
  }
  switch (f.type) {
    case AgentMsg::create: {
      auto req = agent::parse_create_request(f.payload);
      if (!req) return check_error_payload(req.error());
      FUZZ_CHECK(!req->spec.process.args.empty());
      FUZZ_CHECK(req->size.rows > 0 && req->size.cols > 0);
      FUZZ_CHECK(req->spec.process.terminal == req->tty);
      for (const agent::Share& s : req->shares) FUZZ_CHECK(agent::check_share(s).has_value());
      if (req->network)
        for (const NamespaceSpec& ns : req->spec.linux.namespaces) FUZZ_CHECK(ns.type != "network");
      if (req->realtime_ns) FUZZ_CHECK(*req->realtime_ns > 0);
      if (req->seccomp_program) {
        FUZZ_CHECK(req->spec.linux.seccomp.has_value());
        FUZZ_CHECK(!req->seccomp_program->insns.empty() && req->seccomp_program->insns.size() <= 4096);
      }
      check_spec_round_trip(req->spec);
      return;
    }
    case AgentMsg::wake: {
      auto req = agent::parse_wake_request(f.payload);
      if (!req) return check_error_payload(req.error());
      FUZZ_CHECK(req->entropy.size() >= 32 && req->entropy.size() <= 512);
      FUZZ_CHECK(req->realtime_ns > 0 && req->boot_id.size() == 36);
      return;
    }
    case AgentMsg::exec: {
      auto req = agent::parse_exec_request(f.payload);
      if (!req) return check_error_payload(req.error());
      FUZZ_CHECK(!req->process.args.empty());
      FUZZ_CHECK(req->size.rows > 0 && req->size.cols > 0);
      auto back = process_from_json(process_to_json(req->process));
      FUZZ_CHECK(back.has_value());
      FUZZ_CHECK(process_to_json(*back) == process_to_json(req->process));
      return;
    }
    case AgentMsg::resize: {
      auto size = agent::parse_resize(f.payload);
      if (!size) return check_error_payload(size.error());
      FUZZ_CHECK(size->rows > 0 && size->cols > 0);
      return;
    }
    case AgentMsg::signal: {
      auto sig = agent::parse_signal(f.payload);
      if (!sig) return check_error_payload(sig.error());
      FUZZ_CHECK(*sig >= 1 && *sig < NSIG);
      return;
    }
    default:
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Decoded whole = read_all_at_once(bytes);
  Decoded bytewise = read_byte_by_byte(bytes);
  FUZZ_CHECK(whole.failed == bytewise.failed);
  FUZZ_CHECK(whole.frames.size() == bytewise.frames.size());

  std::string encoded;
  for (size_t i = 0; i < whole.frames.size(); ++i) {
    const AgentFrame& a = whole.frames[i];
    const AgentFrame& b = bytewise.frames[i];
    FUZZ_CHECK(a.type == b.type && a.stream == b.stream && a.payload == b.payload);
    FUZZ_CHECK(a.payload.size() <= kMaxAgentPayload);
    FUZZ_CHECK(!std::string_view(agent::frame_type_name(a.type)).empty());
    encoded += encode_agent_frame(a.type, a.stream, a.payload);
  }
  FUZZ_CHECK(bytes.starts_with(encoded));

  for (const AgentFrame& f : whole.frames) handle_host_frame(f);
  return 0;
}
