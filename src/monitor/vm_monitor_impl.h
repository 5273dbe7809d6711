// The VM monitor's class, shared by its two halves: vm_boot.cc starts the
// VM (a clone of a VM template, or a cold boot that may leave one) and
// creates the container in it; vm_monitor.cc serves the container until it
// exits and tears the VM down.
#pragma once

#include <time.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/json.h"
#include "engine/container_store.h"
#include "engine/networking.h"
#include "net/netns_takeover.h"
#include "monitor/session.h"
#include "vm/agent_protocol.h"
#include "vm/qemu.h"
#include "vm/template.h"
#include "vm/worker.h"

namespace isola::vm_monitor_detail {

constexpr int kBootTimeoutMs = 180000;  // TCG on a loaded machine is slow

inline int64_t mono_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The last lines of the guest console, for errors about a VM that died.
inline std::string console_tail(const std::string& path) {
  auto text = read_file(path, 16u << 20);
  if (!text || text->empty()) return "";
  std::string t = text->size() > 600 ? text->substr(text->size() - 600) : *text;
  return " (guest console: ..." + t + ")";
}

// What the agent's create frame carries for a container: its spec, its
// stdio and, compiled here where it is fast and cached rather than in the
// guest under emulation, its seccomp filter.
Result<Json> agent_create_payload(const Json& spec, bool tty, bool interactive, int rows, int cols);

class VmMonitor {
 public:
  VmMonitor(ContainerStore store, ContainerRecord rec, Json spec, bool wait_for_attach)
      : store_(std::move(store)), rec_(std::move(rec)), spec_(std::move(spec)), wait_for_attach_(wait_for_attach) {}

  Result<void> prepare();
  void run();
  pid_t worker_pid() const { return qemu_; }
  // Kills and reaps QEMU if it runs; removes its cgroup.
  void stop_worker();

 private:
  struct Boot {
    std::string mode, reason, template_key;
    Json phases;
  };
  std::string cold_reason() const;
  Result<AgentFrame> boot(VmConfig& config, const UniqueFd& tap);
  Result<void> take_over_network(const std::string& netns, UniqueFd& tap);
  void give_back_network();
  Result<AgentFrame> boot_cold(VmConfig config, const UniqueFd& tap, TemplateMaker* maker);
  Result<AgentFrame> boot_clone(VmConfig config, const UniqueFd& tap, const TemplateInfo& t);
  Result<void> start_worker(const VmConfig& config, const UniqueFd& tap, int memory_fd);
  Result<void> connect_agent(const VmConfig& config);
  Result<AgentFrame> wait_frame(int timeout_ms);
  Result<void> create_container();
  void create_member(Client& c, const Json& req);
  Result<void> send(AgentMsg type, uint32_t stream, std::string_view payload);
  void on_agent_frame(const AgentFrame& f);
  void on_client_frame(Client& c, const Frame& f);
  void on_qemu_exit(int status);
  void finish(int exit_code, bool oom, const std::string& error);
  Client* client_for(uint32_t stream);
  void forget_client(const Client& c);

  ContainerStore store_;
  ContainerRecord rec_;
  Json spec_;
  bool wait_for_attach_;
  bool created_ = false;
  pid_t qemu_ = -1;
  UniqueFd listen_, sigfd_, log_, agent_;
  AgentFrameReader reader_;
  std::vector<Client> clients_;
  std::map<uint32_t, int> stream_fd_;  // exec or pod member stream → client fd
  std::map<std::string, uint32_t> members_;  // a pod's further containers: ID → stream of their init
  int ps_client_fd_ = -1;
  int update_client_fd_ = -1;  // isola update waiting for the agent's update_reply
  uint32_t next_stream_ = 2;
  int rows_ = 24, cols_ = 80;  // the terminal size an attached run starts with
  bool exited_ = false;
  bool qemu_gone_ = false;
  ContainerState state_;
  ContainerNetwork net_;
  std::optional<VmNetwork> nic_;  // the guest's NIC, from the container's first network
  std::optional<NetnsTakeover> takeover_;  // or from a network namespace it joined
  std::string takeover_record_;
  Boot boot_;
  VmConfig worker_config_;  // what stop_worker needs of the worker's set-up
  bool agent_reported_exit_ = false;
};

}  // namespace isola::vm_monitor_detail
