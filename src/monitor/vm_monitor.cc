#include "monitor/vm_monitor.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "common/fs.h"
#include "common/log.h"
#include "common/unix_socket.h"
#include "engine/networking.h"
#include "monitor/monitor.h"
#include "monitor/session.h"
#include "runtime/seccomp.h"
#include "spec/spec.h"
#include "vm/agent_protocol.h"
#include "vm/guest.h"
#include "vm/qemu.h"
#include "vm/qmp.h"
#include "vm/template.h"
#include "vm/vm_spec.h"
#include "vm/worker.h"

namespace isola {

namespace {

constexpr int kBootTimeoutMs = 180000;  // TCG on a loaded machine is slow
constexpr uint32_t kInitStream = 1;
constexpr int kQemuTapFd = 3;  // the tap's descriptor number in QEMU
constexpr int kQemuRamFd = 4;  // a template maker's RAM (memfd) in QEMU

int64_t mono_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The last lines of the guest console, for errors about a VM that died.
std::string console_tail(const std::string& path) {
  auto text = read_file(path, 16u << 20);
  if (!text || text->empty()) return "";
  std::string t = text->size() > 600 ? text->substr(text->size() - 600) : *text;
  return " (guest console: ..." + t + ")";
}

class VmMonitor {
 public:
  VmMonitor(ContainerStore store, ContainerRecord rec, Json spec, bool wait_for_attach)
      : store_(std::move(store)), rec_(std::move(rec)), spec_(std::move(spec)), wait_for_attach_(wait_for_attach) {}

  Result<void> prepare();
  void run();
  pid_t worker_pid() const { return qemu_; }

 private:
  struct Boot {
    std::string mode, reason, template_key;
    Json phases;
  };
  std::string cold_reason() const;
  Result<AgentFrame> boot(VmConfig& config, const UniqueFd& tap);
  Result<AgentFrame> boot_cold(VmConfig config, const UniqueFd& tap, TemplateMaker* maker);
  Result<AgentFrame> boot_clone(VmConfig config, const UniqueFd& tap, const TemplateInfo& t);
  Result<void> start_worker(const VmConfig& config, const UniqueFd& tap, int memory_fd);
  Result<void> connect_agent(const VmConfig& config);
  void stop_worker();
  Result<AgentFrame> wait_frame(int timeout_ms);
  Result<void> create_container();
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
  std::map<uint32_t, int> stream_fd_;  // exec stream → client fd
  int ps_client_fd_ = -1;
  uint32_t next_stream_ = 2;
  int rows_ = 24, cols_ = 80;  // the terminal size an attached run starts with
  bool exited_ = false;
  bool qemu_gone_ = false;
  ContainerState state_;
  ContainerNetwork net_;
  std::optional<VmNetwork> nic_;  // the guest's NIC, from the container's first network
  Boot boot_;
  bool agent_reported_exit_ = false;
};

Result<void> VmMonitor::send(AgentMsg type, uint32_t stream, std::string_view payload) {
  return write_agent_frame(agent_.get(), type, stream, payload);
}

Result<AgentFrame> VmMonitor::wait_frame(int timeout_ms) {
  int64_t deadline = mono_ms() + timeout_ms;
  for (;;) {
    AgentFrame f;
    if (TRY(reader_.next(f))) return f;
    int left = static_cast<int>(deadline - mono_ms());
    if (left <= 0) return fail(make_error("start the VM", rec_.name, "the guest agent did not answer in time"));
    pollfd p{agent_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, std::min(left, 500));
    if (r < 0 && errno != EINTR) return fail(sys_error("poll", "agent channel"));
    int status;
    if (::waitpid(qemu_, &status, WNOHANG) == qemu_) {
      qemu_gone_ = true;
      return fail(make_error("start the VM", rec_.name,
                             "the VM exited during boot" + console_tail(store_.console_path(rec_.id) + ".qemu") +
                                 console_tail(store_.console_path(rec_.id))));
    }
    if (r > 0) {
      char buf[65536];
      ssize_t n = ::read(agent_.get(), buf, sizeof buf);
      if (n == 0) return fail(make_error("start the VM", rec_.name, "the agent channel closed during boot"));
      if (n > 0) reader_.feed(buf, static_cast<size_t>(n));
    }
  }
}

Result<void> VmMonitor::prepare() {
  VmPlan plan = TRY(VmPlan::from_json(TRY(parse_json(TRY(read_file(store_.vm_path(rec_.id))), "vm.json"))));
  std::string agent = TRY(find_agent());
  VmConfig config;
  config.id = rec_.id;
  config.assets = TRY(prepare_guest_assets(agent));
  trace("vm: guest assets ready");
  config.accel = detect_accelerator();
  if (config.accel != "kvm") config.tsc_khz = host_tsc_khz();
  config.memory_mb = plan.memory_mb;
  config.cpus = plan.cpus;
  config.shares = plan.shares;
  config.agent_socket = ContainerStore::agent_socket_path(rec_.id);
  config.console_log = store_.console_path(rec_.id);
  if (const char* extra = std::getenv("ISOLA_VM_KERNEL_ARGS")) config.kernel_args = extra;
  // A NIC on the container's first network: a tap on its bridge that lasts
  // as long as QEMU holds it. (One NIC: VMs are on one network.)
  net_ = TRY(load_container_network(store_, rec_.id));
  UniqueFd tap;
  if (net_.mode == "bridge" && !net_.endpoints.empty()) {
    const Endpoint& ep = net_.endpoints[0];
    nic_ = VmNetwork{tap_name(rec_.id, ep.slot), ep.mac, ep.address.str() + "/" + std::to_string(ep.prefix),
                     ep.gateway.str()};
    TRYV(check_vm_network(*nic_));
    tap = TRY(make_tap(rec_.id, ep));
    config.network = nic_;
    config.tap_fd = kQemuTapFd;
    if (!net_.ports.empty()) TRYV(publish_ports(rec_.id, net_));
  }

  listen_ = TRY(listen_socket(ContainerStore::socket_path(rec_.id)));
  log_ = rec_.keep_log ? TRY(open_path(store_.log_path(rec_.id), O_WRONLY | O_CREAT | O_APPEND, 0600))
                       : TRY(open_path("/dev/null", O_WRONLY));
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  sigfd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd_) return fail(sys_error("signalfd"));

  int64_t t0 = mono_ms();
  AgentFrame hello = TRY(boot(config, tap));
  // The monitor's copy of the tap closes once QEMU has its own.
  tap.reset();
  Json h = TRY(parse_json(hello.payload, "agent hello"));
  if (json_int_or(h, "version", 0) != static_cast<int64_t>(kAgentProtocolVersion))
    return fail(make_error("start the VM", rec_.name, "the guest agent speaks another protocol version"));

  state_ = store_.recorded_state(rec_.id);
  state_.pid = qemu_;
  state_.pid_start = process_start_time(qemu_);
  state_.monitor_pid = ::getpid();
  state_.monitor_start = process_start_time(::getpid());
  state_.exit_code = 0;
  state_.oom_killed = false;
  state_.error.clear();
  state_.finished_ns = 0;
  state_.accelerator = config.accel;
  state_.guest_kernel = json_string_or(h, "kernel", config.assets.kernel_version);
  state_.boot_ms = mono_ms() - t0;
  state_.boot = boot_.mode;
  state_.boot_reason = boot_.reason;
  state_.template_key = boot_.template_key;
  state_.boot_phases = boot_.phases;
  if (!wait_for_attach_) TRYV(create_container());
  return store_.write_state(rec_.id, state_);
}

// Why this container boots cold whatever templates there are ("" if it
// need not).
std::string VmMonitor::cold_reason() const {
  if (json_string_or(rec_.options, "VmBoot") == "cold") return "the container asked for it (--vm-boot=cold)";
  return templates_off_reason();
}

// A clone of a template that fits, else a cold boot (which leaves a
// template behind when it may). A clone that fails on the way becomes a
// cold boot, and its template goes: a template that cannot be loaded
// never will be.
Result<AgentFrame> VmMonitor::boot(VmConfig& config, const UniqueFd& tap) {
  std::string reason = cold_reason();
  const bool templates = reason.empty();
  TemplateKey key = template_key(config);
  trace("vm: template looked up");
  if (templates) {
    if (auto t = find_template(key.id)) {
      auto hello = boot_clone(config, tap, *t);
      if (hello) return hello;
      log_warn("VM template {} failed, booting cold: {}", t->key, hello.error().message());
      stop_worker();
      (void)remove_template(t->key);
      reason = "the template could not be used: " + hello.error().message();
    } else {
      reason = "no template for this VM shape yet";
    }
  }
  std::optional<TemplateMaker> maker;
  if (templates) {
    if (auto m = TemplateMaker::begin(key, config.memory_mb)) maker = std::move(*m);
    else log_warn("cannot make a VM template: {}", m.error().message());
  }
  boot_ = Boot{"cold", reason, maker ? key.id : "", Json::object()};
  return boot_cold(config, tap, maker ? &*maker : nullptr);
}

Result<AgentFrame> VmMonitor::boot_cold(VmConfig config, const UniqueFd& tap, TemplateMaker* maker) {
  if (maker) {
    config.memory_fd = kQemuRamFd;
    config.memory_shared = true;
    config.qmp_socket = ContainerStore::run_dir(rec_.id) + "/qmp.sock";
  }
  int64_t t0 = mono_ms();
  TRYV(start_worker(config, tap, maker ? maker->memory_fd() : -1));
  std::optional<Qmp> qmp;
  if (maker) {
    auto q = Qmp::connect(config.qmp_socket, qemu_, 30000);
    if (!q) return fail(q.error().context("start the VM"));
    qmp = std::move(*q);
  }
  TRYV(connect_agent(config));
  AgentFrame hello = TRY(wait_frame(kBootTimeoutMs));
  if (hello.type != AgentMsg::hello) return fail(make_error("start the VM", rec_.name, "the agent did not say hello"));
  trace("vm: agent said hello");
  boot_.phases["boot"] = mono_ms() - t0;
  if (maker) {
    // The guest is exactly what every VM of this shape is at this point:
    // save it. The container's start waits for this (the save, a copy of
    // the guest's RAM on tmpfs), then the VM goes on.
    auto saved = maker->save(*qmp);
    if (saved) {
      boot_.phases["template_save"] = json_int_or(*saved, "save", 0);
      boot_.phases["template_copy"] = json_int_or(*saved, "copy", 0);
      trace("vm: template saved");
    } else {
      log_warn("could not save a VM template: {}", saved.error().message());
      boot_.template_key.clear();
    }
    if (auto r = qmp->execute("cont"); !r) return fail(r.error().context("resume the VM after saving a template"));
  }
  return hello;
}

Result<AgentFrame> VmMonitor::boot_clone(VmConfig config, const UniqueFd& tap, const TemplateInfo& t) {
  boot_ = Boot{"template", "", t.key, Json::object()};
  config.memory_file = t.memory_path();
  config.memory_shared = false;
  config.qmp_socket = ContainerStore::run_dir(rec_.id) + "/qmp.sock";
  config.incoming = true;
  int64_t t0 = mono_ms();
  TRYV(start_worker(config, tap, -1));
  Qmp qmp = TRY(Qmp::connect(config.qmp_socket, qemu_, 30000));
  int64_t t1 = mono_ms();
  TRYV(load_template(qmp, t));
  int64_t t2 = mono_ms();
  // The agent's channel is connected before the guest runs, so the guest
  // finds its host there when it wakes.
  TRYV(connect_agent(config));
  TRY(qmp.execute("cont"));
  // From here on this clone is a machine of its own: fresh randomness,
  // the host's clock, its own boot ID.
  std::string entropy = random_hex(128);
  Json wake = {{"entropy", entropy}, {"realtime_ns", now_ns()}, {"boot_id", random_uuid()}};
  TRYV(send(AgentMsg::wake, 0, wake.dump()));
  AgentFrame hello = TRY(wait_frame(30000));
  if (hello.type == AgentMsg::error) return fail(read_error_report(hello.payload).context("wake the clone"));
  if (hello.type != AgentMsg::hello) return fail(make_error("wake the clone", rec_.name, "the agent did not answer"));
  trace("vm: clone awake");
  boot_.phases["qemu_start"] = t1 - t0;
  boot_.phases["load_state"] = t2 - t1;
  boot_.phases["wake"] = mono_ms() - t2;
  return hello;
}

Result<void> VmMonitor::start_worker(const VmConfig& config, const UniqueFd& tap, int memory_fd) {
  ::unlink(config.agent_socket.c_str());
  if (!config.qmp_socket.empty()) ::unlink(config.qmp_socket.c_str());
  reader_ = AgentFrameReader();
  agent_.reset();
  trace("vm: starting QEMU");
  qemu_ = TRY(spawn_worker(config, tap ? tap.get() : -1, memory_fd, store_.console_path(rec_.id) + ".qemu"));
  qemu_gone_ = false;
  return {};
}

// QEMU creates the channel's socket as it starts.
Result<void> VmMonitor::connect_agent(const VmConfig& config) {
  for (int i = 0; i < 500 && !agent_; ++i) {
    auto fd = unix_connect(config.agent_socket, SOCK_STREAM, "the VM's agent channel");
    if (fd) agent_ = std::move(*fd);
    else ::usleep(10000);
    int status;
    if (::waitpid(qemu_, &status, WNOHANG) == qemu_) {
      qemu_gone_ = true;
      return fail(make_error("start the VM", "qemu-system-x86_64",
                             "it exited at once" + console_tail(config.console_log + ".qemu")));
    }
  }
  if (!agent_) return fail(make_error("start the VM", config.agent_socket, "QEMU did not open the agent channel"));
  return {};
}

void VmMonitor::stop_worker() {
  if (qemu_ > 0 && !qemu_gone_) {
    ::kill(qemu_, SIGKILL);
    ::waitpid(qemu_, nullptr, 0);
  }
  qemu_gone_ = true;
  agent_.reset();
}

Result<void> VmMonitor::create_container() {
  if (created_) return {};
  created_ = true;
  VmPlan plan = TRY(VmPlan::from_json(TRY(parse_json(TRY(read_file(store_.vm_path(rec_.id))), "vm.json"))));
  Json shares = Json::array();
  for (const VmShare& s : plan.shares) shares.push_back({{"tag", s.tag}, {"path", s.guest_path}});
  Json create = {{"spec", spec_},           {"shares", shares}, {"tty", rec_.tty},
                 {"interactive", rec_.interactive}, {"rows", rows_},    {"cols", cols_}};
  if (nic_) create["network"] = {{"mac", nic_->mac}, {"address", nic_->address}, {"gateway", nic_->gateway}};
  // The filter is compiled here, where it is fast and cached, not in the
  // guest, where compiling runs under emulation.
  RuntimeSpec guest_spec = TRY(RuntimeSpec::from_json(spec_));
  if (guest_spec.linux.seccomp) {
    std::string bytes = seccomp_program_bytes(TRY(compile_seccomp(*guest_spec.linux.seccomp)));
    static const char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
      hex += digits[c >> 4];
      hex += digits[c & 15];
    }
    create["seccomp_bpf"] = std::move(hex);
  }
  int64_t t0 = mono_ms();
  TRYV(send(AgentMsg::create, kInitStream, create.dump()));
  for (;;) {
    AgentFrame f = TRY(wait_frame(60000));
    if (f.type == AgentMsg::started && f.stream == kInitStream) break;
    if (f.type == AgentMsg::error) {
      return fail(read_error_report(f.payload));
    }
    on_agent_frame(f);  // early output
  }
  trace("vm: container exec'd");
  state_.status = "running";
  state_.started_ns = now_ns();
  state_.exec_ms = mono_ms() - t0;
  return store_.write_state(rec_.id, state_);
}

Client* VmMonitor::client_for(uint32_t stream) {
  auto it = stream_fd_.find(stream);
  if (it == stream_fd_.end()) return nullptr;
  for (Client& c : clients_)
    if (c.fd.get() == it->second) return &c;
  return nullptr;
}

// Clients are found by fd, and the next client to connect may get the
// same number: what a closed client was waiting for must not reach it (an
// exec's output and exit, a ps reply).
void VmMonitor::forget_client(const Client& c) {
  std::erase_if(stream_fd_, [&](const auto& entry) { return entry.second == c.fd.get(); });
  if (ps_client_fd_ == c.fd.get()) ps_client_fd_ = -1;
}

void VmMonitor::on_agent_frame(const AgentFrame& f) {
  switch (f.type) {
    case AgentMsg::stdout_data:
    case AgentMsg::stderr_data: {
      FrameType t = f.type == AgentMsg::stdout_data ? FrameType::stdout_data : FrameType::stderr_data;
      if (f.stream == kInitStream) {
        log_output(log_.get(), f.payload, t == FrameType::stdout_data ? "stdout" : "stderr");
        for (Client& c : clients_)
          if (c.attached && c.stream == 0) queue_frame(c, t, f.payload);
      } else if (Client* c = client_for(f.stream)) {
        queue_frame(*c, t, f.payload);
      }
      return;
    }
    case AgentMsg::started:
      if (Client* c = client_for(f.stream)) queue_frame(*c, FrameType::started, "");
      return;
    case AgentMsg::exit: {
      ExitReport exit = read_exit_report(f.payload);
      if (f.stream == kInitStream) {
        agent_reported_exit_ = true;
        finish(exit.exit_code, exit.oom_killed, "");
      } else if (Client* c = client_for(f.stream)) {
        queue_frame(*c, FrameType::exit, Json{{"exit_code", exit.exit_code}}.dump());
        stream_fd_.erase(f.stream);
      }
      return;
    }
    case AgentMsg::ps_reply:
      for (Client& c : clients_)
        if (c.fd.get() == ps_client_fd_) queue_frame(c, FrameType::reply, f.payload);
      ps_client_fd_ = -1;
      return;
    case AgentMsg::error:
      if (Client* c = client_for(f.stream)) {
        queue_frame(*c, FrameType::error, f.payload);
        stream_fd_.erase(f.stream);
      } else {
        log_debug("agent error on stream {}: {}", f.stream, f.payload);
      }
      return;
    default:
      log_debug("unexpected agent frame type {}", static_cast<int>(f.type));
  }
}

void VmMonitor::on_client_frame(Client& c, const Frame& f) {
  if (f.type == FrameType::request) {
    auto req = parse_json(f.payload, "request");
    std::string op = req ? json_string_or(*req, "op") : "";
    if (op == "attach") {
      c.attached = true;
      if (exited_) {
        queue_frame(c, FrameType::exit, Json{{"exit_code", state_.exit_code}, {"error", state_.error}}.dump());
        return;
      }
      if (!created_) {
        if (req->contains("rows")) {
          rows_ = static_cast<unsigned short>(json_int_or(*req, "rows", 24));
          cols_ = static_cast<unsigned short>(json_int_or(*req, "cols", 80));
        }
        if (auto r = create_container(); !r) {
          queue_frame(c, FrameType::error, error_json(r.error()).dump());
          finish(r.error().exit_code ? r.error().exit_code : 125, false, r.error().message());
          return;
        }
      }
      queue_frame(c, FrameType::started, "");
    } else if (op == "signal") {
      auto r = send(AgentMsg::signal, kInitStream, Json{{"signal", static_cast<int>(json_int_or(*req, "signal", 15))}}.dump());
      queue_frame(c, FrameType::reply, Json{{"ok", bool(r)}}.dump());
    } else if (op == "ps") {
      ps_client_fd_ = c.fd.get();
      if (!send(AgentMsg::ps, 0, "{}")) queue_frame(c, FrameType::reply, Json{{"error", "agent unreachable"}}.dump());
    } else if (op == "exec") {
      uint32_t stream = next_stream_++;
      c.stream = stream;
      stream_fd_[stream] = c.fd.get();
      Json exec = {{"process", req->value("process", Json::object())}, {"interactive", json_bool_or(*req, "stdin", false)}};
      if (req->contains("rows")) {
        exec["rows"] = static_cast<unsigned short>(json_int_or(*req, "rows", 24));
        exec["cols"] = static_cast<unsigned short>(json_int_or(*req, "cols", 80));
      }
      if (!send(AgentMsg::exec, stream, exec.dump()))
        queue_frame(c, FrameType::error, Json{{"message", "the guest agent is unreachable"}}.dump());
    } else {
      queue_frame(c, FrameType::error, Json{{"message", "unknown request"}}.dump());
      c.closed = true;
    }
    return;
  }
  uint32_t stream = c.stream ? c.stream : kInitStream;
  switch (f.type) {
    case FrameType::stdin_data: (void)send(AgentMsg::stdin_data, stream, f.payload); return;
    case FrameType::stdin_eof: (void)send(AgentMsg::stdin_eof, stream, ""); return;
    case FrameType::resize: (void)send(AgentMsg::resize, stream, f.payload); return;
    default: c.closed = true;
  }
}

void VmMonitor::finish(int exit_code, bool oom, const std::string& error) {
  if (exited_) return;
  trace("vm: container exited");
  exited_ = true;
  state_.status = "exited";
  state_.exit_code = exit_code;
  state_.oom_killed = oom;
  state_.error = error;
  state_.finished_ns = now_ns();
  // Once the agent has reported the init's exit it has synced the guest
  // and nothing in it matters: the VM ends at once, instead of powering
  // off. Otherwise (a start that failed) ask the agent to power off, and
  // make sure the VM goes either way.
  if (!qemu_gone_ && agent_reported_exit_) {
    ::kill(qemu_, SIGKILL);
    ::waitpid(qemu_, nullptr, 0);
    qemu_gone_ = true;
  }
  if (!qemu_gone_ && agent_) (void)send(AgentMsg::shutdown, 0, "{}");
  if (!qemu_gone_) {
    for (int i = 0; i < 100; ++i) {
      int status;
      if (::waitpid(qemu_, &status, WNOHANG) == qemu_) {
        qemu_gone_ = true;
        break;
      }
      ::usleep(50000);
    }
    if (!qemu_gone_) {
      ::kill(qemu_, SIGKILL);
      ::waitpid(qemu_, nullptr, 0);
      qemu_gone_ = true;
    }
  }
  trace("vm: VM stopped");
  (void)store_.unmount_rootfs(rec_.id);
  if (!net_.ports.empty()) (void)unpublish_ports(rec_.id);
  unplug_endpoints(rec_.id, net_);
  ::unlink(ContainerStore::socket_path(rec_.id).c_str());
  ::unlink(ContainerStore::agent_socket_path(rec_.id).c_str());
  if (rec_.auto_remove) {
    (void)store_.remove(rec_.id);
    forget_container_network(store_, rec_.id, net_);
  } else {
    (void)store_.write_state(rec_.id, state_);
  }
  for (Client& c : clients_)
    if (c.attached) queue_frame(c, FrameType::exit, Json{{"exit_code", exit_code}, {"error", error}}.dump());
  for (Client& c : clients_)
    for (int i = 0; i < 100 && !c.out.empty() && !c.closed; ++i) {
      pollfd p{c.fd.get(), POLLOUT, 0};
      ::poll(&p, 1, 10);
      flush_client(c);
    }
}

void VmMonitor::on_qemu_exit(int status) {
  qemu_gone_ = true;
  // Output and the exit frame may still sit in the channel.
  char buf[65536];
  ssize_t n;
  while (agent_ && (n = ::read(agent_.get(), buf, sizeof buf)) > 0) {
    reader_.feed(buf, static_cast<size_t>(n));
    AgentFrame f;
    while (!exited_) {
      auto got = reader_.next(f);
      if (!got || !*got) break;
      on_agent_frame(f);
    }
  }
  if (exited_) return;
  std::string why = WIFSIGNALED(status) ? "the VM worker was killed by signal " + std::to_string(WTERMSIG(status))
                                        : "the VM exited before the container did";
  finish(137, false, why + console_tail(store_.console_path(rec_.id)));
}

void VmMonitor::run() {
  set_nonblock(agent_.get());
  while (!exited_) {
    std::vector<pollfd> fds = {{sigfd_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}, {agent_.get(), POLLIN, 0}};
    size_t first_client = fds.size();
    for (Client& c : clients_)
      fds.push_back({c.fd.get(), static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      struct signalfd_siginfo si;
      while (::read(sigfd_.get(), &si, sizeof si) > 0) {
      }
      int status;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == qemu_) on_qemu_exit(status);
      if (exited_) break;
    }
    if (fds[1].revents) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) clients_.push_back(Client{UniqueFd(fd), {}, {}, false, false, 0});
    }
    if (fds[2].revents) {
      char buf[65536];
      ssize_t n = ::read(agent_.get(), buf, sizeof buf);
      if (n > 0) {
        reader_.feed(buf, static_cast<size_t>(n));
        AgentFrame f;
        for (;;) {
          auto got = reader_.next(f);
          if (!got) {
            // A guest that breaks the protocol is not trusted further.
            ::kill(qemu_, SIGKILL);
            finish(137, false, "the guest agent sent a malformed frame: " + got.error().message());
            break;
          }
          if (!*got) break;
          on_agent_frame(f);
          if (exited_) break;
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::kill(qemu_, SIGKILL);
        int status;
        ::waitpid(qemu_, &status, 0);
        qemu_gone_ = true;
        finish(137, false, "the guest agent went away" + console_tail(store_.console_path(rec_.id)));
      }
    }
    if (exited_) break;
    for (size_t i = first_client; i < fds.size(); ++i) {
      Client& c = clients_[i - first_client];
      if (fds[i].revents & POLLOUT) flush_client(c);
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) c.closed = true;
        continue;
      }
      c.reader.feed(buf, static_cast<size_t>(n));
      Frame f;
      for (;;) {
        auto got = c.reader.next(f);
        if (!got) {
          c.closed = true;
          break;
        }
        if (!*got) break;
        on_client_frame(c, f);
        if (exited_) break;
      }
      if (exited_) break;
    }
    for (const Client& c : clients_)
      if (c.closed) forget_client(c);
    std::erase_if(clients_, [](const Client& c) { return c.closed; });
  }
}

}  // namespace

void run_vm_monitor(ContainerStore store, ContainerRecord rec, Json spec, bool wait_for_attach, int report_fd) {
  ::prctl(PR_SET_NAME, "isola-monitor");
  VmMonitor monitor(std::move(store), std::move(rec), std::move(spec), wait_for_attach);
  auto prepared = monitor.prepare();
  if (!prepared) {
    if (monitor.worker_pid() > 0) {
      ::kill(monitor.worker_pid(), SIGKILL);
      ::waitpid(monitor.worker_pid(), nullptr, 0);
    }
    (void)write_all(report_fd, error_json(prepared.error()).dump());
    ::_exit(1);
  }
  (void)write_all(report_fd, Json{{"ok", true}, {"pid", monitor.worker_pid()}}.dump());
  ::close(report_fd);
  monitor.run();
  ::_exit(0);
}

}  // namespace isola
