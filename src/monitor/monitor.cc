#include "monitor/monitor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "engine/container_store.h"
#include "engine/events.h"
#include "engine/health_probe.h"
#include "engine/networking.h"
#include "engine/restart.h"
#include "engine/volumes.h"
#include "image/rootfs.h"
#include "monitor/protocol.h"
#include "monitor/reports.h"
#include "monitor/session.h"
#include "monitor/vm_monitor.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/stdio_set.h"

namespace isola {

namespace {

// Everything the monitor holds for its one container.
class Monitor {
 public:
  Monitor(ContainerStore store, ContainerRecord record, RuntimeSpec spec, bool wait_for_attach)
      : store_(std::move(store)), rec_(std::move(record)), spec_(std::move(spec)), wait_for_attach_(wait_for_attach) {}

  // Sets up stdio and the socket and creates the container process.
  Result<void> prepare();
  // Serves until the container has exited and been recorded.
  void run();
  pid_t container_pid() const { return spawned_.pid; }

 private:
  Result<void> start_process();
  void on_output(int fd, FrameType stream);
  void broadcast(FrameType type, std::string_view payload);
  void log_chunk(std::string_view data, const char* stream);
  void handle_client_input(Client& c);
  void handle_frame(Client& c, const Frame& f);
  void on_exit(int status);
  void drain_outputs();
  void teardown();
  Result<void> join_network();

  ContainerStore store_;
  ContainerRecord rec_;
  RuntimeSpec spec_;
  bool wait_for_attach_;
  bool started_ = false;
  Spawned spawned_;
  UniqueFd listen_, sigfd_, log_;
  UniqueFd stdin_w_, stdout_r_, stderr_r_, master_;
  std::string stdin_pending_;
  bool stdin_eof_ = false;
  std::vector<Client> clients_;
  bool exited_ = false;
  ContainerState state_;
  std::string start_error_;
  int start_error_code_ = 0;
  ContainerNetwork net_;
};

// For a container sharing another's network: that namespace instead of a
// new one. (A bridge-networked container's new namespace gets its veths
// from spawn's on_namespaces, below.)
Result<void> Monitor::join_network() {
  net_ = TRY(load_container_network(store_, rec_.id));
  std::string path;
  if (net_.mode == "bridge") {
    if (!net_.ports.empty()) TRYV(publish_ports(rec_.id, net_));
    return {};
  } else if (net_.mode == "container") {
    ContainerState other = store_.state(net_.container);
    if (other.status != "running" && other.status != "paused")
      return fail(make_error("start container", rec_.name,
                             "it shares the network of container " + net_.container.substr(0, 12) +
                                 ", which is not running; start that one first"));
    path = "/proc/" + std::to_string(other.pid) + "/ns/net";
  } else {
    return {};
  }
  for (NamespaceSpec& ns : spec_.linux.namespaces)
    if (ns.type == "network") ns.path = path;
  return {};
}

Result<void> Monitor::prepare() {
  listen_ = TRY(listen_socket(ContainerStore::socket_path(rec_.id)));
  log_ = TRY(open_path(store_.log_path(rec_.id), O_WRONLY | O_CREAT | O_APPEND, 0600));

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return fail(sys_error("signalfd"));
  sigfd_.reset(sfd);

  StdioSet stdio = TRY(make_stdio(spec_.process.terminal, rec_.interactive));
  stdin_w_ = std::move(stdio.in);
  stdout_r_ = std::move(stdio.out);
  stderr_r_ = std::move(stdio.err);
  TRYV(join_network());
  SpawnOptions opts;
  opts.id = rec_.id;
  opts.wait_for_start = wait_for_attach_;
  if (net_.mode == "bridge")
    opts.on_namespaces = [this](pid_t pid) -> Result<void> {
      UniqueFd netns = TRY(open_path("/proc/" + std::to_string(pid) + "/ns/net", O_RDONLY | O_CLOEXEC));
      TRYV(plug_endpoints(netns.get(), rec_.id, net_));
      trace("monitor: network ready");
      return {};
    };
  trace("monitor: spawning the container");
  spawned_ = TRY(spawn_container(spec_, opts, stdio.fds));
  trace(wait_for_attach_ ? "monitor: container ready" : "monitor: container exec'd");
  if (stdio.console_sock) {
    // The client sets the size when it attaches.
    TRYV(receive_master(stdio, WindowSize{}));
    master_ = std::move(stdio.out);
  }

  state_ = store_.recorded_state(rec_.id);
  state_.pid = spawned_.pid;
  state_.pid_start = process_start_time(spawned_.pid);
  state_.monitor_pid = ::getpid();
  state_.monitor_start = process_start_time(::getpid());
  state_.exit_code = 0;
  state_.oom_killed = false;
  state_.error.clear();
  state_.finished_ns = 0;
  if (!wait_for_attach_) {
    started_ = true;
    state_.status = "running";
    state_.started_ns = now_ns();
  }
  TRYV(store_.write_state(rec_.id, state_));
  return {};
}

Result<void> Monitor::start_process() {
  if (started_) return {};
  started_ = true;
  auto started = start_container(spawned_);
  trace("monitor: container exec'd");
  if (!started) {
    // The child exits after reporting; record docker's code, not its own.
    start_error_ = started.error().message();
    start_error_code_ = start_failure_exit_code(started.error());
    return started;
  }
  state_.status = "running";
  state_.started_ns = now_ns();
  return store_.write_state(rec_.id, state_);
}

void Monitor::log_chunk(std::string_view data, const char* stream) { log_output(log_.get(), data, stream); }

void Monitor::broadcast(FrameType type, std::string_view payload) {
  std::string frame = encode_frame(type, payload);
  for (Client& c : clients_) {
    if (!c.attached || c.closed) continue;
    if (c.out.size() > (8u << 20)) {
      c.closed = true;  // a client that does not read loses its attachment
      continue;
    }
    c.out += frame;
    flush_client(c);
  }
}

void Monitor::on_output(int fd, FrameType stream) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0 || errno == EIO) {  // EIO: the pty's last slave closed
        if (fd == stdout_r_.get()) stdout_r_.reset();
        else if (fd == stderr_r_.get()) stderr_r_.reset();
        else if (fd == master_.get()) master_.reset();
      }
      return;
    }
    std::string_view data(buf, static_cast<size_t>(n));
    log_chunk(data, stream == FrameType::stderr_data ? "stderr" : "stdout");
    broadcast(stream, data);
  }
}

void Monitor::handle_frame(Client& c, const Frame& f) {
  switch (f.type) {
    case FrameType::request: {
      auto req = parse_json(f.payload, "request");
      if (!req || json_string_or(*req, "op") != "attach") {
        c.out += encode_frame(FrameType::error, Json{{"error", "unknown request"}}.dump());
        c.closed = true;
        return;
      }
      c.attached = true;
      if (master_ && req->contains("rows")) {
        struct winsize ws {};
        ws.ws_row = static_cast<unsigned short>(json_int_or(*req, "rows", 24));
        ws.ws_col = static_cast<unsigned short>(json_int_or(*req, "cols", 80));
        ::ioctl(master_.get(), TIOCSWINSZ, &ws);
      }
      if (exited_) {
        c.out += encode_frame(FrameType::exit, Json{{"exit_code", state_.exit_code}, {"error", state_.error}}.dump());
        return;
      }
      if (auto r = start_process(); !r) {
        c.out += encode_frame(FrameType::error, error_json(r.error()).dump());
        return;
      }
      c.out += encode_frame(FrameType::started, "");
      return;
    }
    case FrameType::stdin_data:
      stdin_pending_ += f.payload;
      return;
    case FrameType::stdin_eof:
      stdin_eof_ = true;
      return;
    case FrameType::resize: {
      auto size = parse_json(f.payload, "resize");
      if (!size || !master_) return;
      struct winsize ws {};
      ws.ws_row = static_cast<unsigned short>(json_int_or(*size, "rows", 24));
      ws.ws_col = static_cast<unsigned short>(json_int_or(*size, "cols", 80));
      ::ioctl(master_.get(), TIOCSWINSZ, &ws);
      return;
    }
    default:
      c.closed = true;
  }
}

void Monitor::handle_client_input(Client& c) {
  char buf[65536];
  ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    c.closed = true;
    return;
  }
  c.reader.feed(buf, static_cast<size_t>(n));
  Frame f;
  for (;;) {
    auto got = c.reader.next(f);
    if (!got) {
      c.closed = true;  // malformed: drop the client, never the monitor
      return;
    }
    if (!*got) break;
    handle_frame(c, f);
  }
  flush_client(c);
}

void Monitor::drain_outputs() {
  // Output written just before the exit may still sit in the pipes.
  for (int round = 0; round < 50 && (stdout_r_ || stderr_r_ || master_); ++round) {
    std::vector<pollfd> fds;
    for (UniqueFd* fd : {&stdout_r_, &stderr_r_, &master_})
      if (fd->valid()) fds.push_back({fd->get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 20) <= 0) break;
    for (const pollfd& p : fds) {
      if (!p.revents) continue;
      on_output(p.fd, p.fd == stderr_r_.get() ? FrameType::stderr_data : FrameType::stdout_data);
      if (p.revents & (POLLHUP | POLLERR)) {
        if (p.fd == stdout_r_.get()) stdout_r_.reset();
        else if (p.fd == stderr_r_.get()) stderr_r_.reset();
        else if (p.fd == master_.get()) master_.reset();
      }
    }
  }
}

void Monitor::on_exit(int status) {
  trace("monitor: container exited");
  exited_ = true;
  drain_outputs();
  state_.status = "exited";
  state_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (!start_error_.empty()) {
    state_.exit_code = start_error_code_;
    state_.error = start_error_;
  }
  state_.finished_ns = now_ns();
  if (auto cg = Cgroup::open(spec_.linux.cgroups_path); cg) {
    if (auto oom = cg->oom_killed(); oom && *oom) state_.oom_killed = true;
  }
  record_container_exit(store_.root(), rec_, state_);
  teardown();
  (void)store_.write_state(rec_.id, state_);
  trace("monitor: cleaned up");
  broadcast(FrameType::exit, Json{{"exit_code", state_.exit_code}, {"error", state_.error}}.dump());
  for (Client& c : clients_) {
    // Give attached clients a moment to read their last frames.
    for (int i = 0; i < 100 && !c.out.empty() && !c.closed; ++i) {
      pollfd p{c.fd.get(), POLLOUT, 0};
      ::poll(&p, 1, 10);
      flush_client(c);
    }
  }
}

void Monitor::teardown() {
  if (auto cg = Cgroup::open(spec_.linux.cgroups_path); cg) {
    if (auto r = cg->destroy(); !r) log_debug("cgroup: {}", r.error().message());
  }
  trace("monitor: cgroup removed");
  if (auto r = store_.unmount_rootfs(rec_.id); !r) log_debug("rootfs: {}", r.error().message());
  trace("monitor: rootfs unmounted");
  if (!net_.ports.empty()) (void)unpublish_ports(rec_.id);
  unplug_endpoints(rec_.id, net_);
  ::unlink(ContainerStore::socket_path(rec_.id).c_str());
  if (rec_.auto_remove) {
    remove_anonymous_volumes(store_.root(), rec_);  // as docker run --rm; before the record goes, for wait
    (void)store_.remove(rec_.id);
    forget_container_network(store_, rec_.id, net_);
  }
}

void Monitor::run() {
  while (!exited_) {
    std::vector<pollfd> fds;
    fds.push_back({sigfd_.get(), POLLIN, 0});
    fds.push_back({listen_.get(), POLLIN, 0});
    if (started_) {
      for (UniqueFd* fd : {&stdout_r_, &stderr_r_, &master_})
        if (fd->valid()) fds.push_back({fd->get(), POLLIN, 0});
    }
    int in_fd = master_.valid() ? master_.get() : stdin_w_.get();
    if (in_fd >= 0 && !stdin_pending_.empty()) fds.push_back({in_fd, POLLOUT, 0});
    size_t first_client = fds.size();
    for (Client& c : clients_)
      fds.push_back({c.fd.get(), static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;

    for (size_t i = 0; i < first_client; ++i) {
      const pollfd& p = fds[i];
      if (!p.revents) continue;
      if (p.fd == sigfd_.get()) {
        struct signalfd_siginfo si;
        while (::read(sigfd_.get(), &si, sizeof si) > 0) {
        }
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
          if (pid == spawned_.pid) on_exit(status);
      } else if (p.fd == listen_.get()) {
        int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) clients_.push_back(Client{UniqueFd(fd), {}, {}, false, false, 0});
      } else if (p.revents & POLLOUT) {
        ssize_t n = ::write(p.fd, stdin_pending_.data(), stdin_pending_.size());
        if (n > 0) stdin_pending_.erase(0, static_cast<size_t>(n));
        else if (n < 0 && errno == EPIPE) stdin_pending_.clear();
      } else {
        on_output(p.fd, p.fd == stderr_r_.get() ? FrameType::stderr_data : FrameType::stdout_data);
      }
    }
    if (exited_) break;
    for (size_t i = first_client; i < fds.size(); ++i) {
      Client& c = clients_[i - first_client];
      if (fds[i].revents & POLLOUT) flush_client(c);
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) handle_client_input(c);
    }
    std::erase_if(clients_, [](const Client& c) { return c.closed; });
    if (stdin_eof_ && stdin_pending_.empty() && stdin_w_.valid()) stdin_w_.reset();
  }
}

// Closes every descriptor from 3 up except `keep`: the monitor must not hold
// the caller's pipes open (a shell or test harness would wait for EOF).
void close_inherited_fds(int keep) {
  if (keep > 3) ::syscall(SYS_close_range, 3, keep - 1, 0);
  ::syscall(SYS_close_range, keep + 1, ~0U, 0);
}

[[noreturn]] void monitor_main(const MonitorRequest& req, int report_fd) {
  trace("monitor: started");
  close_inherited_fds(report_fd);
  sigset_t none;  // a monitor started by a restart inherits its predecessor's mask
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_NAME, "isola-monitor");
  if (::chdir("/") != 0) ::_exit(1);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    if (!debug_enabled()) ::dup2(null, 2);
    ::close(null);
  }
  auto fail_with = [&](const Error& e) {
    (void)write_all(report_fd, error_json(e).dump());
    ::_exit(1);
  };
  auto store = ContainerStore::open(req.root);
  if (!store) fail_with(store.error());
  auto rec = store->resolve(req.id);
  if (!rec) fail_with(rec.error());
  auto text = read_file(store->spec_path(rec->id));
  if (!text) fail_with(text.error());
  auto j = parse_json(*text, "config.json");
  if (!j) fail_with(j.error());
  // Both levels: the health prober runs beside the started container, and
  // after its exit the restart policy decides whether it starts again.
  UniqueFd prober;
  auto on_started = [&] { prober = start_health_prober(req.root, *rec); };
  if (rec->isolation == Isolation::vm) {
    if (!run_vm_monitor(*store, *rec, std::move(*j), req.wait_for_attach, report_fd, on_started)) ::_exit(1);
  } else {
    auto spec = RuntimeSpec::from_json(*j);
    if (!spec) fail_with(spec.error());
    Monitor monitor(*store, *rec, std::move(*spec), req.wait_for_attach);
    if (auto r = monitor.prepare(); !r) fail_with(r.error());
    (void)write_all(report_fd, Json{{"ok", true}, {"pid", monitor.container_pid()}}.dump());
    ::close(report_fd);
    on_started();
    monitor.run();
  }
  stop_health_prober(std::move(prober));
  restart_after_exit(req.root, rec->id);
  ::_exit(0);
}

}  // namespace

Result<pid_t> launch_monitor(const MonitorRequest& req) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t parent = ::getpid();
  pid_t first = ::fork();
  if (first < 0) return fail(sys_error("fork"));
  if (first == 0 && req.child_of_caller) {
    rd.reset();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::getppid() != parent) ::_exit(1);
    monitor_main(req, wr.release());
  }
  if (first == 0) {
    rd.reset();
    ::setsid();
    pid_t second = ::fork();
    if (second < 0) ::_exit(1);
    if (second > 0) ::_exit(0);
    monitor_main(req, wr.release());
  }
  wr.reset();
  int status;
  while (!req.child_of_caller && ::waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  auto text = read_fd(rd.get(), "monitor report", 1u << 20);
  if (!text) return fail(text.error());
  auto j = parse_json(*text, "monitor report");
  if (!j) return fail(make_error("start container", req.id, "the monitor died before it reported"));
  if (!json_bool_or(*j, "ok", false)) return fail(read_error_report(*text));
  int64_t pid = json_int_or(*j, "pid", 0);
  if (pid <= 0 || pid > INT32_MAX) return fail(make_error("start container", req.id, "the monitor reported no pid"));
  return static_cast<pid_t>(pid);
}

}  // namespace isola
