// exec: a further process in a running container.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "common/fs.h"
#include "common/unix_socket.h"
#include "ociruntime/runtime.h"
#include "ociruntime/vm_keeper.h"
#include "runtime/container.h"

namespace isola::oci {

namespace {

const std::vector<FlagSpec> kExecFlags = {
    {{"process", "p"}, true},        {{"detach", "d"}, false},        {{"pid-file"}, true},
    {{"console-socket"}, true},      {{"tty", "t"}, false},            {{"cwd"}, true},
    {{"env", "e"}, true, true},      {{"user", "u"}, true},            {{"additional-gids", "g"}, true, true},
    {{"cap", "c"}, true, true},      {{"no-new-privs"}, false},        {{"preserve-fds"}, true},
    {{"process-label"}, true},       {{"apparmor"}, true},             {{"ignore-paused"}, false},
    {{"cgroup"}, true},
};

Result<uint32_t> parse_id_number(const std::string& text, const char* what) {
  char* end = nullptr;
  unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end || v > 0xfffffffful)
    return fail(make_error("parse arguments", text, std::string(what) + " must be a number"));
  return static_cast<uint32_t>(v);
}

// The process from --process, or from the container's own process with
// the command line and flags given.
Result<ProcessSpec> exec_process(const ParsedArgs& p, const RuntimeSpec& spec) {
  if (p.has("process")) {
    std::string text = TRY(read_file(p.get("process"), 4u << 20));
    return process_from_json(TRY(parse_json(text, p.get("process"))));
  }
  if (p.positional.size() < 2)
    return fail(make_error("exec", "", "usage: isola-runtime exec [flags] ID COMMAND [ARG...] (or --process FILE)"));
  ProcessSpec proc = spec.process;
  proc.args.assign(p.positional.begin() + 1, p.positional.end());
  proc.terminal = p.has("tty");
  for (const std::string& kv : p.all("env")) proc.env.push_back(kv);
  if (p.has("cwd")) proc.cwd = p.get("cwd");
  if (p.has("user")) {
    std::string u = p.get("user");
    size_t colon = u.find(':');
    proc.uid = TRY(parse_id_number(u.substr(0, colon), "the user"));
    if (colon != std::string::npos) proc.gid = TRY(parse_id_number(u.substr(colon + 1), "the group"));
  }
  for (const std::string& g : p.all("additional-gids")) proc.additional_gids.push_back(TRY(parse_id_number(g, "a group")));
  if (p.has("no-new-privs")) proc.no_new_privileges = true;
  if (!p.all("cap").empty() && proc.capabilities) {
    for (const std::string& cap : p.all("cap"))
      for (auto* set : {&proc.capabilities->bounding, &proc.capabilities->effective, &proc.capabilities->permitted})
        set->push_back(cap);
  }
  return proc;
}

}  // namespace

Result<int> cmd_exec(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, kExecFlags, true));
  if (p.positional.empty()) return fail(make_error("exec", "", "usage: isola-runtime exec [flags] ID COMMAND [ARG...]"));
  const std::string id = p.positional[0];
  StateRoot root = TRY(StateRoot::open(ctx.root));
  ContainerInfo info = TRY(root.load(id));
  std::string status = status_of(info, root.start_socket(id));
  if (status != "running") return fail(make_error("exec", id, "the container is " + status + ", not running"));
  Json config = TRY(parse_json(TRY(read_file(root.spec_path(id), 16u << 20)), "config.json"));
  RuntimeSpec spec = TRY(RuntimeSpec::from_json(config));
  ProcessSpec proc = TRY(exec_process(p, spec));
  UniqueFd console;
  if (p.has("console-socket")) console = TRY(unix_connect(p.get("console-socket"), SOCK_STREAM, "the console socket"));
  if (proc.terminal && !console)
    return fail(make_error("exec", id, "a terminal was asked for but no --console-socket was given"));

  if (info.backend == Backend::vm) {
    pid_t relay = ::getpid();
    VmExec req{info.keeper_socket, info.pod_sandbox.empty() ? "" : info.id, proc, console.get(), p.has("detach")};
    if (req.detach) {
      TRY(exec_in_vm(req, &relay));
      if (p.has("pid-file")) TRYV(write_pid_file(p.get("pid-file"), relay));
      return 0;
    }
    if (p.has("pid-file")) TRYV(write_pid_file(p.get("pid-file"), relay));
    return exec_in_vm(req, &relay);
  }

  int preserve = 0;
  if (p.has("preserve-fds")) preserve = static_cast<int>(TRY(parse_id_number(p.get("preserve-fds"), "--preserve-fds")));
  StdioFds stdio{0, 1, 2, -1, console.get(), preserve};
  pid_t pid = TRY(exec_in_container(info.pid, spec, proc, stdio));
  if (p.has("pid-file")) TRYV(write_pid_file(p.get("pid-file"), pid));
  if (p.has("detach")) return 0;
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace isola::oci
