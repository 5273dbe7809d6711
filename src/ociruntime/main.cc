// isola-runtime: runc's command line over isola's backends. Global flags
// come first (--root, --log, --log-format, --systemd-cgroup, --debug), then
// the command. Errors go to stderr and, with --log, to that file as runc
// writes them (JSON lines with level, msg and time for --log-format json),
// which is where containerd's shim and podman look for them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common/fs.h"
#include "common/log.h"
#include "ociruntime/runtime.h"

namespace isola::oci {
namespace {

constexpr const char* kUsage = R"(usage: isola-runtime [global flags] COMMAND [flags] ID [...]

An OCI runtime (runc's command line) with two isolation levels: process
isolation, and VM isolation when the bundle's config.json has the annotation
io.isola.isolation=vm (or hyperv), or when invoked as isola-runtime-vm.

Commands:
  create    create a container from a bundle (--bundle, --pid-file, --console-socket)
  start     run the created container's process
  run       create and start; waits unless --detach
  state     print the container's state (JSON)
  list      list containers
  kill      send a signal (default SIGTERM); --all for every process
  delete    remove a container; --force kills it first
  exec      run a further process (--process FILE, --detach, --tty, --pid-file)
  ps        list the container's host PIDs (--format table|json)
  pause     freeze every process of the container
  resume    thaw it
  update    change its cgroup limits (--resources FILE|-, --memory, --pids-limit, ...)
  features  what this runtime supports (JSON)
  spec      write a template config.json

Global flags:
  --root DIR          state directory (default /run/isola-runtime)
  --log FILE          also write errors to FILE
  --log-format FMT    text or json
  --systemd-cgroup    cgroupsPath is slice:prefix:name (no systemd needed)
  --debug             verbose logging
)";

struct LogTarget {
  std::string path;
  bool json = false;
};

std::string rfc3339_now() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%09ldZ", buf, ts.tv_nsec);
  return out;
}

void log_error(const LogTarget& log, const std::string& msg) {
  std::fprintf(stderr, "isola-runtime: %s\n", msg.c_str());
  if (log.path.empty()) return;
  std::string line;
  if (log.json) {
    line = Json{{"level", "error"}, {"msg", msg}, {"time", rfc3339_now()}}.dump() + "\n";
  } else {
    line = "time=\"" + rfc3339_now() + "\" level=error msg=" + Json(msg).dump() + "\n";
  }
  int fd = ::open(log.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
  ::close(fd);
}

Result<int> dispatch(Context& ctx, const Args& args, size_t i) {
  const std::string& cmd = args[i];
  ++i;
  if (cmd == "create") return cmd_create(ctx, args, i);
  if (cmd == "start") return cmd_start(ctx, args, i);
  if (cmd == "run") return cmd_run(ctx, args, i);
  if (cmd == "state") return cmd_state(ctx, args, i);
  if (cmd == "list") return cmd_list(ctx, args, i);
  if (cmd == "kill") return cmd_kill(ctx, args, i);
  if (cmd == "delete") return cmd_delete(ctx, args, i);
  if (cmd == "exec") return cmd_exec(ctx, args, i);
  if (cmd == "ps") return cmd_ps(ctx, args, i);
  if (cmd == "pause") return cmd_pause(ctx, args, i, true);
  if (cmd == "resume") return cmd_pause(ctx, args, i, false);
  if (cmd == "update") return cmd_update(ctx, args, i);
  if (cmd == "features") return cmd_features(ctx, args, i);
  if (cmd == "spec") return cmd_spec(ctx, args, i);
  return fail(make_error("isola-runtime", cmd, "unknown command (see --help)"));
}

}  // namespace
}  // namespace isola::oci

int main(int argc, char** argv) {
  using namespace isola;
  using namespace isola::oci;
  Args args(argv, argv + argc);
  Context ctx;
  std::string self = args[0].substr(args[0].rfind('/') + 1);
  ctx.vm_by_default = self == "isola-runtime-vm";
  LogTarget log;
  static const std::vector<FlagSpec> globals = {
      {{"root"}, true},          {{"log"}, true},   {{"log-format"}, true}, {{"systemd-cgroup"}, false},
      {{"debug"}, false},        {{"rootless"}, true}, {{"criu"}, true},     {{"help", "h"}, false},
      {{"version", "v"}, false},
  };
  // The global flags end at the command (the first word that is not a flag).
  size_t i = 1;
  std::vector<std::string> head;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    head.push_back(args[i]);
    std::string name = args[i].substr(args[i][1] == '-' ? 2 : 1);
    bool takes_value = name == "root" || name == "log" || name == "log-format" || name == "rootless" || name == "criu";
    if (takes_value && i + 1 < args.size()) head.push_back(args[++i]);
    ++i;
  }
  head.insert(head.begin(), "isola-runtime");
  auto g = parse_flags(head, 1, globals, false);
  if (g) {
    if (g->has("root")) ctx.root = g->get("root");
    log.path = g->get("log");
    log.json = g->get("log-format") == "json";
    ctx.systemd_cgroup = g->has("systemd-cgroup");
    if (g->has("debug")) set_debug(true);
  }
  if (!g) {
    log_error(log, g.error().message());
    return 1;
  }
  if (g->has("version")) {
    std::printf("isola-runtime version %s\ncommit: none\nspec: 1.0.2\n", ISOLA_VERSION);
    return 0;
  }
  if (g->has("help") || i >= args.size()) {
    std::fputs(kUsage, g->has("help") ? stdout : stderr);
    return g->has("help") ? 0 : 1;
  }
  auto r = dispatch(ctx, args, i);
  if (r) return *r;
  log_error(log, r.error().message());
  return r.error().exit_code ? r.error().exit_code : 1;
}
