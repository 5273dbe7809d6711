// The start of a VM container: the guest (a clone of a VM template that
// fits, else a cold boot that leaves one behind), then the container in it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/log.h"
#include "common/unix_socket.h"
#include "monitor/monitor.h"
#include "monitor/reports.h"
#include "monitor/vm_monitor_impl.h"
#include "runtime/seccomp.h"
#include "spec/spec.h"
#include "vm/guest.h"
#include "vm/qmp.h"
#include "vm/vm_spec.h"
#include "vm/worker.h"

namespace isola::vm_monitor_detail {

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
  config.agent_fd = kWorkerAgentFd;
  config.console_fd = kWorkerConsoleFd;
  config.qmp_fd = kWorkerQmpFd;
  config.jail_root = ContainerStore::run_dir(rec_.id) + "/jail";
  // Under isola-runtime the keeper's cgroup is the container's: the worker
  // joins it, so that the engine's ps, kill --all and stats find it.
  std::string keeper_cgroup = json_string_or(rec_.options, "KeeperCgroup");
  config.worker_cgroup = keeper_cgroup.empty() ? worker_cgroup(rec_.id) : keeper_cgroup;
  config.join_cgroup = !keeper_cgroup.empty();
  worker_config_ = config;
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
    config.tap_fd = kWorkerTapFd;
    if (!net_.ports.empty()) TRYV(publish_ports(rec_.id, net_));
  } else if (std::string netns = json_string_or(rec_.options, "NetnsPath"); !netns.empty()) {
    TRYV(take_over_network(netns, tap));
    if (nic_) config.network = nic_, config.tap_fd = kWorkerTapFd;
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
  trace("vm: guest ready");  // either way: a clone awake, or a cold boot's hello
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

// A namespace joined by path (isola-runtime's, a pod's) lends the guest
// its interface; the record lets whichever cleanup comes first give it
// back (net/netns_takeover.h).
Result<void> VmMonitor::take_over_network(const std::string& netns, UniqueFd& tap) {
  std::optional<NetnsTakeover> t = TRY(take_over_netns(netns, tap));
  if (!t) return {};
  takeover_record_ = json_string_or(rec_.options, "NetnsRecord");
  if (!takeover_record_.empty())
    if (auto r = record_takeover(takeover_record_, *t); !r) {
      (void)give_back_netns(*t);
      return fail(r.error());
    }
  nic_ = VmNetwork{kTakeoverTap, t->mac, t->guest_address(), t->gateway->str()};
  takeover_ = std::move(t);
  return check_vm_network(*nic_);
}

void VmMonitor::give_back_network() {
  if (!takeover_record_.empty())
    give_back_recorded(takeover_record_);
  else if (auto r = give_back_netns(*takeover_); !r)
    log_debug("network namespace: {}", r.error().message());
  takeover_.reset();
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
    config.memory_fd = kWorkerRamFd;
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
  // The clone maps the template's RAM private, copy-on-write, from a
  // read-only descriptor: nothing it does reaches the template.
  UniqueFd ram = TRY(open_path(t.memory_path(), O_RDONLY | O_CLOEXEC));
  config.memory_fd = kWorkerRamFd;
  config.memory_shared = false;
  config.qmp_socket = ContainerStore::run_dir(rec_.id) + "/qmp.sock";
  config.incoming = true;
  int64_t t0 = mono_ms();
  TRYV(start_worker(config, tap, ram.get()));
  ram.reset();
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
  // The monitor makes the sockets and the console's file and hands them to
  // QEMU open: its jail has no place to make them in.
  ::unlink(config.agent_socket.c_str());
  UniqueFd agent = TRY(unix_listen(config.agent_socket, SOCK_STREAM));
  UniqueFd qmp;
  if (!config.qmp_socket.empty()) {
    ::unlink(config.qmp_socket.c_str());
    qmp = TRY(unix_listen(config.qmp_socket, SOCK_STREAM));
  }
  UniqueFd console = TRY(open_path(config.console_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  reader_ = AgentFrameReader();
  agent_.reset();
  trace("vm: starting QEMU");
  WorkerFds fds{tap ? tap.get() : -1, memory_fd, agent.get(), qmp ? qmp.get() : -1, console.get()};
  qemu_ = TRY(spawn_worker(config, fds, store_.console_path(rec_.id) + ".qemu"));
  qemu_gone_ = false;
  trace("vm: QEMU exec'd in its jail");
  return {};
}

// QEMU accepts on the channel's socket once it runs.
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
  remove_worker_cgroup(worker_config_);
}

Result<Json> agent_create_payload(const Json& spec, bool tty, bool interactive, int rows, int cols) {
  Json create = {{"spec", spec}, {"tty", tty}, {"interactive", interactive}, {"rows", rows}, {"cols", cols}};
  RuntimeSpec guest_spec = TRY(RuntimeSpec::from_json(spec));
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
  return create;
}

Result<void> VmMonitor::create_container() {
  if (created_) return {};
  created_ = true;
  VmPlan plan = TRY(VmPlan::from_json(TRY(parse_json(TRY(read_file(store_.vm_path(rec_.id))), "vm.json"))));
  Json shares = Json::array();
  for (const VmShare& s : plan.shares) shares.push_back({{"tag", s.tag}, {"path", s.guest_path}});
  Json create = TRY(agent_create_payload(spec_, rec_.tty, rec_.interactive, rows_, cols_));
  create["shares"] = std::move(shares);
  if (nic_) create["network"] = {{"mac", nic_->mac}, {"address", nic_->address}, {"gateway", nic_->gateway}};
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

}  // namespace isola::vm_monitor_detail
