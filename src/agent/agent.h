// The agent's event loop: one virtio-serial port to the host, the
// container's init and every exec'd process, each on its own stream. It
// reads frames from the host and answers them, relays stdio (one read, one
// frame), reaps children with a signalfd, and ends when the container's
// init has exited and its exit frame is out (or when the host asks for a
// shutdown). What happens to the machine afterwards (power off) is the
// caller's business, so the loop runs in tests on a socketpair.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/requests.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/stdio_set.h"
#include "vm/agent_protocol.h"

namespace isola::agent {

struct AgentOptions {
  // As the guest's PID 1: reap every orphan (waitpid(-1)), kill every other
  // process at the end (kill(-1)), set the guest's hostname and clock.
  bool pid1 = true;
  // Mounts one share; tests replace it.
  std::function<Result<void>(const Share&)> mount_share;
  // Brings up the VM's NIC for a create request with a network; tests
  // replace it.
  std::function<Result<void>(const NicConfig&)> configure_network;
  // How long to wait, after the init's exit frame is out, for the host to
  // acknowledge it (shutdown, or closing the channel) before ending anyway.
  std::chrono::milliseconds ack_wait{1000};
  // How long an exited process's output may still come (from children that
  // hold its pipes) before its exit frame is sent anyway.
  std::chrono::milliseconds drain_grace{250};
  // Where the agent keeps its own files (a clone's boot ID): the guest's
  // /run, outside every share; tests use a temporary directory.
  std::string state_dir = "/run";
};

class Agent {
 public:
  // Takes the port (non-blocking) and blocks SIGCHLD for its signalfd.
  static Result<std::unique_ptr<Agent>> create(UniqueFd port, AgentOptions opts);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Queues a frame for the host (sent as the port takes it).
  void send(AgentMsg type, uint32_t stream, std::string_view payload);
  void send_error(uint32_t stream, const Error& e);
  // Ends the agent: kills every process, flushes what is queued.
  void begin_shutdown();

  // One round of the loop, waiting at most `max_wait_ms`. False once the
  // agent is done.
  bool step(int max_wait_ms);
  // Steps until done.
  void run();

  bool done() const { return phase_ == Phase::done; }
  // The container init's exit code, once it has exited.
  std::optional<int> init_exit_code() const { return init_exit_code_; }

 private:
  struct Proc;
  struct Container;
  using Clock = std::chrono::steady_clock;
  enum class Phase { serving, finishing, shutting_down, done };

  Agent(UniqueFd port, UniqueFd sigfd, AgentOptions opts);

  void handle_frame(const AgentFrame& f);
  void on_create(const AgentFrame& f);
  void on_create_member(const AgentFrame& f);
  void give_boot_id(RuntimeSpec& spec) const;
  enum class Role { init, member, exec };
  bool adopt(uint32_t stream, pid_t pid, StdioSet& stdio, const WindowSize& size, bool tty, Role role);
  void finish_member(Proc& p);
  void on_exec(const AgentFrame& f);
  void on_stdin(const AgentFrame& f, bool eof);
  void on_resize(const AgentFrame& f);
  void on_signal(const AgentFrame& f);
  void on_ps();
  void on_wake(const AgentFrame& f);
  void on_update(const AgentFrame& f);
  void dump_trace();
  Proc* find(uint32_t stream);
  void unknown_stream(uint32_t stream);

  void read_port();
  void flush_port();
  void host_gone();
  void reap();
  void read_output(Proc& p, UniqueFd& fd, AgentMsg type);
  void write_stdin(Proc& p);
  void finish_exited();
  void finish_init(Proc& p);
  void kill_all();
  int poll_timeout(int max_wait_ms) const;

  AgentOptions opts_;
  UniqueFd port_;
  UniqueFd sigfd_;
  AgentFrameReader reader_;
  bool reader_failed_ = false;
  std::string out_;        // frames not yet taken by the port
  size_t out_start_ = 0;   // bytes of out_ already written
  std::optional<Clock::time_point> host_retry_;  // the host hung up: try again then
  std::map<uint32_t, std::unique_ptr<Proc>> procs_;
  std::unique_ptr<Container> container_;
  // A pod's further containers, by the stream of their init.
  std::map<uint32_t, std::unique_ptr<Container>> members_;
  Phase phase_ = Phase::serving;
  std::string boot_id_file_;  // a clone's own boot ID, bound over the container's

  Clock::time_point phase_deadline_{};
  bool host_ack_ = false;
  std::optional<int> init_exit_code_;
  std::vector<char> buf_;
};

}  // namespace isola::agent
