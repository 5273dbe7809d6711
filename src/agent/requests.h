// The agent's side of the protocol's payloads: parsing what the host sends
// (create, exec, resize, signal), checking that a frame may come from the
// host on its stream, and building what the agent answers (error, exit,
// started). Pure functions, no system calls: unit-tested on their own.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "runtime/seccomp.h"
#include "runtime/stdio_set.h"
#include "spec/spec.h"
#include "vm/agent_protocol.h"
#include "vm/vm_network.h"

namespace isola::agent {

// A 9p share the host exports: mounted at `path` in the guest.
struct Share {
  std::string tag;   // QEMU's mount_tag: "rootfs", "etc", "v0", ...
  std::string path;  // absolute, below /run/isola/
};

struct CreateRequest {
  std::string id;  // for messages; from "id", else the last part of cgroupsPath
  RuntimeSpec spec;
  std::vector<Share> shares;
  bool tty = false;          // the init gets a pty (spec.process.terminal follows it)
  bool interactive = false;  // the init gets a stdin pipe (or reads the pty)
  WindowSize size;
  std::optional<int64_t> realtime_ns;  // the host's clock, to set the guest's
  // The VM's NIC: the container then shares the guest's network namespace
  // (spec's "network" namespace dropped), where the agent configures eth0.
  std::optional<NicConfig> network;
  // With a network the container shares the guest's namespace, the VM's
  // own: its net.* sysctls are the agent's to set there (the runtime would
  // refuse them outside a namespace of the container's own).
  std::map<std::string, std::string> guest_net_sysctls;
  // The spec's seccomp filter, compiled by the host ("seccomp_bpf", hex).
  std::optional<SeccompProgram> seccomp_program;
};

struct ExecRequest {
  ProcessSpec process;  // process.terminal asks for a pty
  bool interactive = false;
  WindowSize size;
  // The container to run it in: the stream of a pod member's init; 0 (or
  // absent) is the VM's first container.
  uint32_t container = 0;
};

// A pod member's namespaces (a create on a stream numbered 2 or more): a
// namespace whose path is "pod" is the pod's, joined through the first
// container's init, `pod_init`; every other namespace is new. A path to
// anything else is refused, since the host's paths mean nothing in the
// guest.
Result<void> join_pod_namespaces(RuntimeSpec& spec, pid_t pod_init);

// Where shares may be mounted: the agent's own mounts (/proc, /dev, ...)
// must stay out of the host's reach.
inline constexpr std::string_view kShareRoot = "/run/isola/";

// The mount(2) data for every 9p share; docs/agent-protocol.md says why.
inline constexpr const char* kNinePOptions = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap,access=client";

// What a clone of a VM template must not share with its siblings.
struct WakeRequest {
  std::string entropy;  // 32 to 512 random bytes from the host
  int64_t realtime_ns = 0;
  std::string boot_id;  // a UUID, lowercase: what the container reads as boot_id
};

Result<CreateRequest> parse_create_request(std::string_view payload);
Result<WakeRequest> parse_wake_request(std::string_view payload);
Result<ExecRequest> parse_exec_request(std::string_view payload);
Result<WindowSize> parse_resize(std::string_view payload);
// A signal number 1..64 from {"signal":S}.
Result<int> parse_signal(std::string_view payload);
Result<void> check_share(const Share& share);
// isola update: {"resources":{OCI linux.resources}}. Memory, CPU quota and
// period and the pids limit only: the guest's CPUs are the VM's own (no
// cpuset), and the devices are fixed when the container is created.
Result<Resources> parse_update_request(std::string_view payload);

// Whether the host may send this frame type on this stream. Stream 0 is
// control (ps, shutdown, error), 1 the container's init (create, and the
// per-process messages), 2 and up exec'd processes and the inits of a
// pod's further containers (create).
Result<void> check_host_frame(const AgentFrame& frame);

std::string error_payload(const Error& e);
// {"ok":true}, or {"ok":false} with error_payload's fields.
std::string update_reply_payload(const Result<void>& result);
std::string exit_payload(int exit_code, bool oom_killed);
std::string started_payload(pid_t pid, int64_t boottime_ms);
std::string hello_payload(std::string_view kernel, int64_t agent_start_ms, int64_t hello_ms);

// docker's exit code for a wait status: the code, or 128 + the signal.
int exit_code_from_status(int status);

const char* frame_type_name(AgentMsg type);

}  // namespace isola::agent
