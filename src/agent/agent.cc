// The loop is single-threaded (the runtime's spawn and exec require it):
// poll(2) over the port, a signalfd for SIGCHLD and every process's stdio.
// Nothing blocks on the host: frames for it queue in out_ and go as the
// port takes them; while that queue is long, process output is not read,
// so a host that stops reading slows the container down instead of making
// the agent grow without bound.
#include "agent/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "agent/agent_state.h"
#include "agent/guest.h"
#include "agent/ps.h"
#include "runtime/stdio_set.h"
#include "common/fs.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"

namespace isola::agent {
namespace {

constexpr size_t kReadChunk = 64 * 1024;      // one read, one frame, at most this
constexpr size_t kOutHighWater = 1u << 20;    // stop reading process output past this
constexpr size_t kStdinLimit = 8u << 20;      // per process, not yet taken by it
constexpr size_t kFinalDrain = 1u << 20;      // read after exit, per descriptor
constexpr auto kHostRetry = std::chrono::milliseconds(10);

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

Result<std::unique_ptr<Agent>> Agent::create(UniqueFd port, AgentOptions opts) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (::sigprocmask(SIG_BLOCK, &chld, nullptr) != 0) return fail(sys_error("block SIGCHLD"));
  int sfd = ::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return fail(sys_error("signalfd"));
  set_nonblocking(port.get());
  if (!opts.mount_share) opts.mount_share = mount_share;
  if (!opts.configure_network) opts.configure_network = set_up_network;
  return std::unique_ptr<Agent>(new Agent(std::move(port), UniqueFd(sfd), std::move(opts)));
}

Agent::Agent(UniqueFd port, UniqueFd sigfd, AgentOptions opts)
    : opts_(std::move(opts)), port_(std::move(port)), sigfd_(std::move(sigfd)), buf_(kReadChunk) {}

Agent::~Agent() {
  // Outside the guest (tests) nobody else would reap what is left.
  if (!opts_.pid1) {
    for (auto& [stream, p] : procs_) {
      if (p->exited) continue;
      ::kill(p->pid, SIGKILL);
      while (::waitpid(p->pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_UNBLOCK, &chld, nullptr);
}

void Agent::send(AgentMsg type, uint32_t stream, std::string_view payload) {
  if (payload.size() > kMaxAgentPayload) {
    send_error(stream, make_error("send", frame_type_name(type), "the reply is larger than a frame may be"));
    return;
  }
  if (out_start_ > 0 && out_start_ == out_.size()) {
    out_.clear();
    out_start_ = 0;
  }
  out_ += encode_agent_frame(type, stream, payload);
}

void Agent::send_error(uint32_t stream, const Error& e) {
  kmsg("stream " + std::to_string(stream) + ": " + e.message());
  send(AgentMsg::error, stream, error_payload(e));
}

void Agent::flush_port() {
  while (out_start_ < out_.size()) {
    size_t n = std::min(out_.size() - out_start_, kReadChunk);
    ssize_t w = ::write(port_.get(), out_.data() + out_start_, n);
    if (w > 0) {
      out_start_ += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) {
      kmsg(sys_error("write", "agent port").message(), true);
      host_gone();
    }
    break;
  }
  if (out_start_ == out_.size()) {
    out_.clear();
    out_start_ = 0;
  } else if (out_start_ > (4u << 20)) {
    out_.erase(0, out_start_);
    out_start_ = 0;
  }
}

// The host end of a virtio-serial port that nobody has open reads as EOF
// and polls as POLLHUP until the host connects (again); so do a closed
// socketpair in tests. The port is retried shortly rather than polled in a
// busy loop.
void Agent::host_gone() {
  host_retry_ = Clock::now() + kHostRetry;
  if (phase_ == Phase::finishing) host_ack_ = true;
}

void Agent::read_port() {
  ssize_t n = ::read(port_.get(), buf_.data(), buf_.size());
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) host_gone();
    return;
  }
  if (n == 0) {
    host_gone();
    return;
  }
  host_retry_.reset();
  // After a malformed frame the stream is out of step: what follows is
  // read and dropped, and the container runs on.
  if (reader_failed_) return;
  reader_.feed(buf_.data(), static_cast<size_t>(n));
  for (;;) {
    AgentFrame frame;
    auto got = reader_.next(frame);
    if (!got) {
      reader_failed_ = true;
      kmsg(got.error().message() + "; ignoring further frames", true);
      send_error(0, got.error());
      return;
    }
    if (!*got) return;
    try {
      handle_frame(frame);
    } catch (const std::exception& e) {
      send_error(frame.stream, make_error("handle frame", frame_type_name(frame.type), e.what()));
    } catch (...) {
      send_error(frame.stream, make_error("handle frame", frame_type_name(frame.type), "internal error"));
    }
  }
}

Agent::Proc* Agent::find(uint32_t stream) {
  auto it = procs_.find(stream);
  return it == procs_.end() ? nullptr : it->second.get();
}

void Agent::unknown_stream(uint32_t stream) {
  Error e = sys_error(ENOENT, "find stream", std::to_string(stream));
  e.detail = "no process runs on this stream";
  send_error(stream, e);
}

void Agent::handle_frame(const AgentFrame& f) {
  if (auto ok = check_host_frame(f); !ok) {
    send_error(f.stream, ok.error());
    return;
  }
  if (f.type == AgentMsg::error) {
    kmsg("the host reported: " + f.payload.substr(0, 1024), true);
    return;
  }
  if (f.type == AgentMsg::shutdown) {
    begin_shutdown();
    return;
  }
  if (f.type == AgentMsg::ps) {
    on_ps();
    return;
  }
  if (f.type == AgentMsg::wake) {
    on_wake(f);
    return;
  }
  if (f.type == AgentMsg::update) {
    on_update(f);
    return;
  }
  if (phase_ != Phase::serving) {
    Error e = sys_error(ESRCH, frame_type_name(f.type), "");
    e.detail = "the container has exited";
    send_error(f.stream, e);
    return;
  }
  switch (f.type) {
    case AgentMsg::create: on_create(f); break;
    case AgentMsg::exec: on_exec(f); break;
    case AgentMsg::stdin_data: on_stdin(f, false); break;
    case AgentMsg::stdin_eof: on_stdin(f, true); break;
    case AgentMsg::resize: on_resize(f); break;
    case AgentMsg::signal: on_signal(f); break;
    default: break;  // check_host_frame let nothing else through
  }
}

void Agent::on_stdin(const AgentFrame& f, bool eof) {
  Proc* p = find(f.stream);
  if (!p) return unknown_stream(f.stream);
  // Input for a process without stdin, or after its EOF, goes nowhere, as
  // it would on a closed pipe.
  if (!p->in || p->in_eof) return;
  if (eof) {
    if (p->tty) {
      // A terminal has no end of input; its EOF character is the nearest.
      struct termios t {};
      p->in_buf += ::tcgetattr(p->in.get(), &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
    } else {
      p->in_eof = true;
    }
  } else {
    if (p->in_buf.size() + f.payload.size() > kStdinLimit) {
      send_error(f.stream, sys_error(ENOBUFS, "write stdin", "stream " + std::to_string(f.stream)));
      return;
    }
    p->in_buf += f.payload;
  }
  write_stdin(*p);
}

void Agent::on_resize(const AgentFrame& f) {
  Proc* p = find(f.stream);
  if (!p) return unknown_stream(f.stream);
  auto size = parse_resize(f.payload);
  if (!size) return send_error(f.stream, size.error());
  if (!p->tty || !p->in) return send_error(f.stream, sys_error(ENOTTY, "resize", "stream " + std::to_string(f.stream)));
  struct winsize ws {};
  ws.ws_row = size->rows;
  ws.ws_col = size->cols;
  // On the master, this also sends SIGWINCH to the terminal's foreground group.
  if (::ioctl(p->in.get(), TIOCSWINSZ, &ws) != 0) send_error(f.stream, sys_error("resize", "terminal"));
}

void Agent::on_signal(const AgentFrame& f) {
  Proc* p = find(f.stream);
  if (!p) return unknown_stream(f.stream);
  auto sig = parse_signal(f.payload);
  if (!sig) return send_error(f.stream, sig.error());
  if (p->exited || ::kill(p->pid, *sig) != 0) {
    int err = p->exited ? ESRCH : errno;
    send_error(f.stream, sys_error(err, "kill", "pid " + std::to_string(p->pid)));
  }
}

// With isola.debug the runtime's phase trace (common/log.h) goes to a file
// in the guest; each create's lines go to the console.
void Agent::dump_trace() {
  const char* path = std::getenv("ISOLA_TRACE");
  if (!path || !*path || !opts_.pid1) return;
  auto text = read_file(path, 1u << 20);
  ::unlink(path);
  if (!text) return;
  int64_t first = -1;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    int64_t ns = std::strtoll(line.c_str(), nullptr, 10);
    if (first < 0) first = ns;
    size_t phase = line.find(' ', line.find(' ') + 1);
    kmsg("trace +" + std::to_string((ns - first) / 1000000) + " ms" + (phase == std::string::npos ? "" : line.substr(phase)));
  }
}

// The first thing a clone of a VM template hears: from here on it must not
// be its siblings' twin (random numbers, clock, boot ID).
void Agent::on_wake(const AgentFrame& f) {
  auto req = parse_wake_request(f.payload);
  if (!req) return send_error(f.stream, req.error());
  if (opts_.pid1) {
    if (auto r = reseed_random(req->entropy); !r) return send_error(f.stream, r.error());
    if (auto r = set_clock(req->realtime_ns); !r) return send_error(f.stream, r.error());
  }
  boot_id_file_ = path_join(opts_.state_dir, "boot_id");
  if (auto r = write_file_atomic(boot_id_file_, req->boot_id + "\n", 0444); !r) {
    boot_id_file_.clear();
    return send_error(f.stream, r.error());
  }
  send(AgentMsg::hello, 0, hello_payload(kernel_release(), 0, boottime_ms()));
}

void Agent::on_ps() {
  PsOptions opts;
  opts.exclude = ::getpid();
  if (container_) {
    if (auto root = open_dir(container_->spec.root_path)) {
      if (auto text = read_regular_in_root(root->get(), "etc/passwd", 1u << 20)) opts.passwd = std::move(*text);
    }
  }
  auto table = list_processes(opts);
  if (!table) return send_error(0, table.error());
  send(AgentMsg::ps_reply, 0, ps_reply_payload(*table));
}

// isola update: new limits for the container's group. A write the kernel
// refuses may follow others that it took: the host then sends the old
// limits again, so nothing is undone here.
void Agent::on_update(const AgentFrame& f) {
  auto apply = [&]() -> Result<void> {
    Resources r = TRY(parse_update_request(f.payload));
    if (!container_ || phase_ != Phase::serving) {
      Error e = sys_error(ESRCH, "update", "container");
      e.detail = "no container runs in this VM";
      return fail(std::move(e));
    }
    Cgroup cg = TRY(Cgroup::open(container_->spec.linux.cgroups_path));
    return cg.update(r);
  };
  send(AgentMsg::update_reply, 0, update_reply_payload(apply()));
}

void Agent::reap() {
  signalfd_siginfo info;
  while (::read(sigfd_.get(), &info, sizeof info) == sizeof info) {
  }
  auto mark = [&](pid_t pid, int status) {
    for (auto& [stream, p] : procs_) {
      if (p->pid != pid || p->exited) continue;
      p->exited = true;
      p->status = status;
      p->drain_until = Clock::now() + opts_.drain_grace;
    }
  };
  if (opts_.pid1) {
    // PID 1 inherits every orphan: reap them all, keep what is ours.
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      mark(pid, status);
    }
    return;
  }
  for (auto& [stream, p] : procs_) {
    int status = 0;
    if (!p->exited && ::waitpid(p->pid, &status, WNOHANG) == p->pid) mark(p->pid, status);
  }
}

void Agent::read_output(Proc& p, UniqueFd& fd, AgentMsg type) {
  ssize_t n = ::read(fd.get(), buf_.data(), buf_.size());
  if (n > 0) {
    send(type, p.stream, std::string_view(buf_.data(), static_cast<size_t>(n)));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    fd.reset();  // EOF; a pty master reads EIO once every slave is closed
  }
}

void Agent::write_stdin(Proc& p) {
  while (p.in && !p.in_buf.empty()) {
    ssize_t n = ::write(p.in.get(), p.in_buf.data(), p.in_buf.size());
    if (n > 0) {
      p.in_buf.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      p.in_buf.clear();  // the reader is gone (EPIPE) or the terminal hung up
      if (!p.tty) p.in.reset();
    }
  }
  if (p.in_eof && p.in_buf.empty() && !p.tty) p.in.reset();
}

void Agent::finish_exited() {
  auto now = Clock::now();
  for (auto it = procs_.begin(); it != procs_.end();) {
    Proc& p = *it->second;
    if (!p.exited || ((p.out || p.err) && now < p.drain_until)) {
      ++it;
      continue;
    }
    // What is still in the pipes goes before the exit frame.
    for (auto [fd, type] : {std::pair{&p.out, AgentMsg::stdout_data}, std::pair{&p.err, AgentMsg::stderr_data}}) {
      size_t before = out_.size(), budget = kFinalDrain;
      while (*fd && out_.size() - before < budget) {
        size_t size_before = out_.size();
        read_output(p, *fd, type);
        if (out_.size() == size_before) break;  // nothing more now
      }
    }
    if (p.init) finish_init(p);
    else if (p.member) finish_member(p);
    else send(AgentMsg::exit, p.stream, exit_payload(exit_code_from_status(p.status), false));
    it = procs_.erase(it);
  }
}

// The container is over: whatever else runs is killed (exec'd processes
// still get their exit frames as they are reaped), and the agent ends once
// the host has the frames.
void Agent::finish_init(Proc& p) {
  int code = exit_code_from_status(p.status);
  bool oom = false;
  if (container_ && !container_->spec.linux.cgroups_path.empty()) {
    if (auto cg = Cgroup::open(container_->spec.linux.cgroups_path)) {
      if (auto killed = cg->oom_killed()) oom = *killed;
    }
  }
  send(AgentMsg::exit, p.stream, exit_payload(code, oom));
  init_exit_code_ = code;
  kill_all();
  if (opts_.pid1) ::sync();  // the host may look at the rootfs once it has the exit
  // A shutdown that killed it is already acknowledged: that phase goes on.
  if (phase_ == Phase::serving) {
    phase_ = Phase::finishing;
    phase_deadline_ = Clock::now() + opts_.ack_wait;
  }
}

void Agent::kill_all() {
  if (opts_.pid1) {
    ::kill(-1, SIGKILL);  // everything but PID 1 itself
    return;
  }
  for (auto& [stream, p] : procs_)
    if (!p->exited) ::kill(p->pid, SIGKILL);
}

void Agent::begin_shutdown() {
  if (phase_ == Phase::finishing) {
    host_ack_ = true;
    return;
  }
  if (phase_ != Phase::serving) return;
  kill_all();
  phase_ = Phase::shutting_down;
  phase_deadline_ = Clock::now() + opts_.ack_wait;
}

int Agent::poll_timeout(int max_wait_ms) const {
  auto now = Clock::now();
  auto until = now + std::chrono::milliseconds(std::max(max_wait_ms, 0));
  for (const auto& [stream, p] : procs_)
    if (p->exited) until = std::min(until, p->drain_until);
  if (phase_ == Phase::finishing || phase_ == Phase::shutting_down) until = std::min(until, phase_deadline_);
  if (host_retry_) until = std::min(until, *host_retry_);
  if (until <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
}

bool Agent::step(int max_wait_ms) {
  if (phase_ == Phase::done) return false;
  enum class Kind { port, signal, out, err, in };
  struct Watch {
    Kind kind;
    Proc* proc;
  };
  std::vector<pollfd> fds;
  std::vector<Watch> watches;
  auto add = [&](int fd, short events, Kind kind, Proc* p) {
    fds.push_back(pollfd{fd, events, 0});
    watches.push_back(Watch{kind, p});
  };
  auto now = Clock::now();
  if (host_retry_ && now >= *host_retry_) host_retry_.reset();
  if (!host_retry_) {
    short events = static_cast<short>(POLLIN | (out_start_ < out_.size() ? POLLOUT : 0));
    add(port_.get(), events, Kind::port, nullptr);
  }
  add(sigfd_.get(), POLLIN, Kind::signal, nullptr);
  bool room = out_.size() - out_start_ < kOutHighWater;
  for (auto& [stream, p] : procs_) {
    if (room && p->out) add(p->out.get(), POLLIN, Kind::out, p.get());
    if (room && p->err) add(p->err.get(), POLLIN, Kind::err, p.get());
    if (p->in && !p->in_buf.empty()) add(p->in.get(), POLLOUT, Kind::in, p.get());
  }
  int n = ::poll(fds.data(), fds.size(), poll_timeout(max_wait_ms));
  if (n < 0 && errno != EINTR) kmsg(sys_error("poll").message(), true);
  bool port_ready = false;
  short port_events = 0;
  for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
    short ev = fds[i].revents;
    if (!ev) continue;
    Watch& w = watches[i];
    switch (w.kind) {
      case Kind::port: port_ready = true; port_events = ev; break;
      case Kind::signal: reap(); break;
      case Kind::out: if (w.proc->out) read_output(*w.proc, w.proc->out, AgentMsg::stdout_data); break;
      case Kind::err: if (w.proc->err) read_output(*w.proc, w.proc->err, AgentMsg::stderr_data); break;
      case Kind::in: write_stdin(*w.proc); break;
    }
  }
  // Frames last: a create or exec may add processes, a shutdown kill them.
  if (port_ready) {
    if (port_events & POLLIN) read_port();
    else if (port_events & (POLLHUP | POLLERR)) host_gone();
  }
  finish_exited();
  if (!host_retry_) flush_port();

  now = Clock::now();
  bool flushed = out_start_ == out_.size();
  // Every process killed at the end still reports its exit first.
  if ((phase_ == Phase::finishing || phase_ == Phase::shutting_down) && now >= phase_deadline_) phase_ = Phase::done;
  if (phase_ == Phase::finishing && flushed && host_ack_ && procs_.empty()) phase_ = Phase::done;
  if (phase_ == Phase::shutting_down && flushed && procs_.empty()) phase_ = Phase::done;
  return phase_ != Phase::done;
}

void Agent::run() {
  for (;;) {
    try {
      if (!step(1000)) return;
    } catch (const std::exception& e) {
      kmsg(std::string("unexpected error: ") + e.what(), true);
    } catch (...) {
      kmsg("unexpected error", true);
    }
  }
}

}  // namespace isola::agent
