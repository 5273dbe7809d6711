// isola-agent: /init of a VM-isolated container's guest. It readies the
// guest (mounts, modules), says hello to the host on the virtio-serial port
// "isola.agent", creates the container when asked, serves it until its init
// exits, and powers the VM off. PID 1 must never return: every way out
// ends in power_off().
#include <signal.h>
#include <unistd.h>

#include <exception>

#include "agent/agent.h"
#include "agent/guest.h"
#include "runtime/seccomp.h"

namespace {

using namespace isola;
using namespace isola::agent;

constexpr const char* kPortName = "isola.agent";
// Under TCG the virtio-serial port can take a while after its driver loads.
constexpr auto kPortWait = std::chrono::seconds(10);

[[noreturn]] void fatal(const std::string& why) {
  kmsg(why + "; powering off", true);
  power_off();
}

void run() {
  int64_t start_ms = boottime_ms();
  fix_stdio();
  if (auto r = mount_basics(); !r) fatal(r.error().message());
  fix_stdio();
  set_kmsg_verbose(kernel_cmdline_has("isola.debug"));
  // The runtime's phase trace (common/log.h) goes to the console too.
  if (kernel_cmdline_has("isola.debug")) ::setenv("ISOLA_TRACE", "/run/isola-trace", 1);
  ::signal(SIGPIPE, SIG_IGN);

  int64_t mounted_ms = boottime_ms();
  std::vector<std::string> failed = load_modules(kModuleDir);
  // A VM with a NIC gets its driver now, before the host may save this
  // guest as a template: every clone then starts with it loaded.
  if (has_virtio_net()) (void)load_network_modules();
  prepare_for_container();
  int64_t modules_ms = boottime_ms();
  auto port = open_port(kPortName, kPortWait);
  int64_t port_ms = boottime_ms();
  if (!port) fatal(port.error().message());
  auto agent = Agent::create(std::move(*port), AgentOptions{});
  if (!agent) fatal(agent.error().message());
  Agent& a = **agent;
  if (!have_filesystem("9p")) {
    // Tell the host why before going: it sees this as the container's error.
    std::string detail = "the kernel has no 9p file system";
    if (!failed.empty())
      detail += " (modules that failed to load: " + failed.front() + (failed.size() > 1 ? ", ..." : "") + ")";
    kmsg(detail, true);
    a.send(AgentMsg::hello, 0, hello_payload(kernel_release(), start_ms, boottime_ms()));
    a.send_error(0, make_error("start agent", "9p", detail));
    a.begin_shutdown();
  } else {
    a.send(AgentMsg::hello, 0, hello_payload(kernel_release(), start_ms, boottime_ms()));
    kmsg("ready after " + std::to_string(boottime_ms() - start_ms) + " ms: mounts " +
         std::to_string(mounted_ms - start_ms) + " ms, modules " + std::to_string(modules_ms - mounted_ms) +
         " ms, port " + std::to_string(port_ms - modules_ms) + " ms");
  }
  a.run();
}

}  // namespace

int main() {
  // A guest starts afresh every time: caching compiled filters only costs
  // the write (an fsync under TCG takes about a second).
  isola::set_seccomp_cache_dir("");
  try {
    run();
  } catch (const std::exception& e) {
    kmsg(std::string("unexpected error: ") + e.what(), true);
  } catch (...) {
    kmsg("unexpected error", true);
  }
  power_off();
}
