#include "agent/requests.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>

#include "common/json.h"

namespace isola::agent {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> decode_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

Error request_error(const std::string& what, std::string detail) {
  return make_error("read " + what + " request", "", std::move(detail));
}

// An optional boolean field; absent or null keeps `out`.
Result<void> read_bool(const Json& j, const char* key, const std::string& what, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_boolean()) return fail(request_error(what, std::string("\"") + key + "\" is not a boolean"));
  out = it->get<bool>();
  return {};
}

// Optional "rows" and "cols"; 0 or absent keeps the default.
Result<void> read_size(const Json& j, const std::string& what, WindowSize& out) {
  for (auto [key, field] : {std::pair{"rows", &out.rows}, std::pair{"cols", &out.cols}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number_unsigned() && !it->is_number_integer())
      return fail(request_error(what, std::string("\"") + key + "\" is not a number"));
    int64_t v = it->get<int64_t>();
    if (v < 0 || v > 65535) return fail(request_error(what, std::string("\"") + key + "\" is out of range"));
    if (v > 0) *field = static_cast<unsigned short>(v);
  }
  return {};
}

Result<Json> parse_object(std::string_view payload, const std::string& what) {
  Json j = TRY(parse_json(payload, what + " request"));
  if (!j.is_object()) return fail(request_error(what, "the payload is not a JSON object"));
  return j;
}

bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

}  // namespace

Result<void> check_share(const Share& share) {
  if (share.tag.empty() || share.tag.size() > 31 || !std::all_of(share.tag.begin(), share.tag.end(), is_tag_char))
    return fail(make_error("check share", share.tag, "a tag is 1-31 characters of [A-Za-z0-9._-]"));
  const std::string& p = share.path;
  if (!p.starts_with(kShareRoot) || p.size() == kShareRoot.size())
    return fail(make_error("check share", p, "the path must lie below " + std::string(kShareRoot)));
  size_t start = 0;
  while (start < p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view part(p.data() + start, end - start);
    if ((part.empty() && start != 0) || part == "." || part == "..")
      return fail(make_error("check share", p, "the path must be normalized (no //, . or ..)"));
    start = end + 1;
  }
  if (p.back() == '/') return fail(make_error("check share", p, "the path must not end with /"));
  return {};
}

Result<CreateRequest> parse_create_request(std::string_view payload) {
  const std::string what = "create";
  Json j = TRY(parse_object(payload, what));
  CreateRequest req;
  const Json* spec = TRY(json_object(j, "spec", "create request"));
  req.spec = TRY(RuntimeSpec::from_json(*spec));
  if (req.spec.process.args.empty()) return fail(request_error(what, "the spec has no process to run"));
  if (auto it = j.find("shares"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return fail(request_error(what, "\"shares\" is not an array"));
    for (const Json& s : *it) {
      Share share;
      share.tag = TRY(json_string(s, "tag", "create request share"));
      share.path = TRY(json_string(s, "path", "create request share"));
      TRYV(check_share(share));
      for (const Share& other : req.shares)
        if (other.tag == share.tag || other.path == share.path)
          return fail(make_error("check share", share.tag, "the tag or the path is given twice"));
      req.shares.push_back(std::move(share));
    }
  }
  req.tty = req.spec.process.terminal;
  TRYV(read_bool(j, "tty", what, req.tty));
  req.spec.process.terminal = req.tty;
  TRYV(read_bool(j, "interactive", what, req.interactive));
  TRYV(read_size(j, what, req.size));
  if (auto it = j.find("realtime_ns"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return fail(request_error(what, "\"realtime_ns\" is not a positive integer"));
    req.realtime_ns = it->get<int64_t>();
  }
  if (auto it = j.find("network"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return fail(request_error(what, "\"network\" is not an object"));
    const std::string net_what = "create request network";
    std::string mac = TRY(json_string(*it, "mac", net_what));
    std::string address = TRY(json_string(*it, "address", net_what));
    std::string gateway = TRY(json_string(*it, "gateway", net_what));
    req.network = TRY(parse_nic_config(mac, address, gateway));
    // The VM is the container's network: eth0 lives in the guest's own
    // namespace, which the container then shares.
    std::erase_if(req.spec.linux.namespaces, [](const NamespaceSpec& ns) { return ns.type == "network"; });
    std::map<std::string, std::string>& sysctl = req.spec.linux.sysctl;
    for (auto s = sysctl.begin(); s != sysctl.end();) {
      if (!s->first.starts_with("net.")) {
        ++s;
        continue;
      }
      req.guest_net_sysctls.insert(*s);
      s = sysctl.erase(s);
    }
  }
  if (auto it = j.find("seccomp_bpf"); it != j.end() && !it->is_null()) {
    auto bytes = it->is_string() ? decode_hex(it->get<std::string>()) : std::nullopt;
    if (!bytes) return fail(request_error(what, "\"seccomp_bpf\" is not lowercase hex"));
    if (!req.spec.linux.seccomp) return fail(request_error(what, "\"seccomp_bpf\" without a seccomp profile in the spec"));
    req.seccomp_program = TRY(seccomp_program_from_bytes(*bytes));
  }
  req.id = json_string_or(j, "id");
  if (req.id.empty()) {
    const std::string& cg = req.spec.linux.cgroups_path;
    req.id = cg.empty() ? "container" : cg.substr(cg.rfind('/') + 1);
  }
  return req;
}

Result<WakeRequest> parse_wake_request(std::string_view payload) {
  const std::string what = "wake";
  Json j = TRY(parse_object(payload, what));
  WakeRequest req;
  std::string hex = TRY(json_string(j, "entropy", what));
  if (hex.size() < 64 || hex.size() > 1024)
    return fail(request_error(what, "\"entropy\" must be 32 to 512 bytes in hex"));
  auto bytes = decode_hex(hex);
  if (!bytes) return fail(request_error(what, "\"entropy\" is not lowercase hex"));
  req.entropy = std::move(*bytes);
  auto t = j.find("realtime_ns");
  if (t == j.end() || !t->is_number_integer() || t->get<int64_t>() <= 0)
    return fail(request_error(what, "\"realtime_ns\" must be a positive integer"));
  req.realtime_ns = t->get<int64_t>();
  req.boot_id = TRY(json_string(j, "boot_id", what));
  bool uuid = req.boot_id.size() == 36;
  for (size_t i = 0; uuid && i < 36; ++i)
    uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? req.boot_id[i] == '-' : hex_digit(req.boot_id[i]) >= 0;
  if (!uuid) return fail(request_error(what, "\"boot_id\" is not a lowercase UUID"));
  return req;
}

Result<ExecRequest> parse_exec_request(std::string_view payload) {
  const std::string what = "exec";
  Json j = TRY(parse_object(payload, what));
  ExecRequest req;
  const Json* process = TRY(json_object(j, "process", "exec request"));
  // The spec parser reads a process only inside a whole document.
  Json doc = {{"ociVersion", "1.0.2"}, {"root", {{"path", "/"}}}, {"process", *process}};
  RuntimeSpec spec = TRY(RuntimeSpec::from_json(doc));
  req.process = std::move(spec.process);
  if (req.process.args.empty()) return fail(request_error(what, "the process has no args"));
  TRYV(read_bool(j, "interactive", what, req.interactive));
  TRYV(read_size(j, what, req.size));
  if (j.contains("container")) {
    const Json& c = j["container"];
    if (!c.is_number_unsigned() || c.get<uint64_t>() > UINT32_MAX)
      return fail(request_error(what, "\"container\" must be a stream number"));
    req.container = c.get<uint32_t>();
  }
  return req;
}

Result<void> join_pod_namespaces(RuntimeSpec& spec, pid_t pod_init) {
  static const std::map<std::string, std::string> proc_names = {
      {"network", "net"}, {"ipc", "ipc"}, {"uts", "uts"}, {"pid", "pid"}};
  for (NamespaceSpec& ns : spec.linux.namespaces) {
    if (ns.path.empty()) continue;
    auto name = proc_names.find(ns.type);
    if (ns.path != "pod" || name == proc_names.end())
      return fail(request_error("create", "a pod member may join only the pod's network, IPC, UTS and PID "
                                          "namespaces (path \"pod\"), not " + ns.type + " at " + ns.path));
    ns.path = "/proc/" + std::to_string(pod_init) + "/ns/" + name->second;
  }
  return {};
}

Result<WindowSize> parse_resize(std::string_view payload) {
  Json j = TRY(parse_object(payload, "resize"));
  if (!j.contains("rows") || !j.contains("cols")) return fail(request_error("resize", "needs \"rows\" and \"cols\""));
  WindowSize size;
  size.rows = size.cols = 0;
  TRYV(read_size(j, "resize", size));
  if (size.rows == 0 || size.cols == 0) return fail(request_error("resize", "rows and cols must be positive"));
  return size;
}

Result<int> parse_signal(std::string_view payload) {
  Json j = TRY(parse_object(payload, "signal"));
  auto it = j.find("signal");
  if (it == j.end() || !it->is_number_integer()) return fail(request_error("signal", "\"signal\" is not an integer"));
  int64_t sig = it->get<int64_t>();
  if (sig < 1 || sig >= NSIG) return fail(sys_error(EINVAL, "signal", "signal " + std::to_string(sig)));
  return static_cast<int>(sig);
}

Result<Resources> parse_update_request(std::string_view payload) {
  Json j = TRY(parse_object(payload, "update"));
  auto it = j.find("resources");
  if (it == j.end() || !it->is_object()) return fail(request_error("update", "\"resources\" is not an object"));
  Resources r = TRY(resources_from_json(*it));
  if (!r.cpuset_cpus.empty() || !r.devices.empty() || r.cpu_shares || r.memory_swappiness || r.disable_oom_killer)
    return fail(request_error("update", "only memory, cpu quota/period and pids limits may be updated"));
  return r;
}

Result<void> check_host_frame(const AgentFrame& frame) {
  auto bad = [&](const std::string& detail) {
    Error e = sys_error(EINVAL, "frame", std::string(frame_type_name(frame.type)) + " on stream " +
                                             std::to_string(frame.stream));
    e.detail = detail;
    return fail(std::move(e));
  };
  switch (frame.type) {
    case AgentMsg::create:
      if (frame.stream == 0) return bad("create is sent on stream 1, or on a new stream for a pod's further container");
      return {};
    case AgentMsg::exec:
      if (frame.stream < 2) return bad("exec is sent on a new stream numbered 2 or more");
      return {};
    case AgentMsg::stdin_data:
    case AgentMsg::stdin_eof:
    case AgentMsg::resize:
    case AgentMsg::signal:
      if (frame.stream == 0) return bad("stream 0 has no process");
      return {};
    case AgentMsg::ps:
    case AgentMsg::shutdown:
    case AgentMsg::wake:
    case AgentMsg::update:
      if (frame.stream != 0) return bad("control requests are sent on stream 0");
      return {};
    case AgentMsg::error:
      return {};
    default:
      return bad("only the agent sends this");
  }
}

std::string error_payload(const Error& e) {
  Json j = {{"errno", e.err}, {"op", e.op}, {"message", e.message()}};
  if (e.exit_code != 0) j["exit_code"] = e.exit_code;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string update_reply_payload(const Result<void>& result) {
  if (result) return Json{{"ok", true}}.dump();
  const Error& e = result.error();
  Json j = {{"ok", false}, {"errno", e.err}, {"op", e.op}, {"message", e.message()}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string exit_payload(int exit_code, bool oom_killed) {
  return Json{{"exit_code", exit_code}, {"oom_killed", oom_killed}}.dump();
}

std::string started_payload(pid_t pid, int64_t boottime_ms) {
  return Json{{"pid", pid}, {"boottime_ms", boottime_ms}}.dump();
}

std::string hello_payload(std::string_view kernel, int64_t agent_start_ms, int64_t hello_ms) {
  return Json{{"version", kAgentProtocolVersion},
              {"kernel", std::string(kernel)},
              {"agent_start_ms", agent_start_ms},
              {"hello_ms", hello_ms}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

int exit_code_from_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

const char* frame_type_name(AgentMsg type) {
  switch (type) {
    case AgentMsg::hello: return "hello";
    case AgentMsg::create: return "create";
    case AgentMsg::exec: return "exec";
    case AgentMsg::started: return "started";
    case AgentMsg::stdin_data: return "stdin_data";
    case AgentMsg::stdin_eof: return "stdin_eof";
    case AgentMsg::stdout_data: return "stdout_data";
    case AgentMsg::stderr_data: return "stderr_data";
    case AgentMsg::resize: return "resize";
    case AgentMsg::signal: return "signal";
    case AgentMsg::exit: return "exit";
    case AgentMsg::ps: return "ps";
    case AgentMsg::ps_reply: return "ps_reply";
    case AgentMsg::shutdown: return "shutdown";
    case AgentMsg::error: return "error";
    case AgentMsg::wake: return "wake";
    case AgentMsg::update: return "update";
    case AgentMsg::update_reply: return "update_reply";
  }
  return "unknown";
}

}  // namespace isola::agent
