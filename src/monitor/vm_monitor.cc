#include "monitor/vm_monitor.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "common/log.h"
#include "monitor/monitor.h"
#include "monitor/reports.h"
#include "monitor/vm_monitor_impl.h"
#include "engine/events.h"
#include "engine/volumes.h"

namespace isola {

using namespace vm_monitor_detail;

namespace vm_monitor_detail {

Result<void> VmMonitor::send(AgentMsg type, uint32_t stream, std::string_view payload) {
  return write_agent_frame(agent_.get(), type, stream, payload);
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
//
// A pod member lives as long as its host stand-in's session: when that
// goes (killed, say), so does the member's init in the guest.
void VmMonitor::forget_client(const Client& c) {
  for (const auto& [id, stream] : members_) {
    auto it = stream_fd_.find(stream);
    if (it != stream_fd_.end() && it->second == c.fd.get())
      (void)send(AgentMsg::signal, stream, Json{{"signal", SIGKILL}}.dump());
  }
  std::erase_if(stream_fd_, [&](const auto& entry) { return entry.second == c.fd.get(); });
  if (ps_client_fd_ == c.fd.get()) ps_client_fd_ = -1;
  if (update_client_fd_ == c.fd.get()) update_client_fd_ = -1;
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
      } else {
        if (Client* c = client_for(f.stream)) queue_frame(*c, FrameType::exit, Json{{"exit_code", exit.exit_code}}.dump());
        stream_fd_.erase(f.stream);
        std::erase_if(members_, [&](const auto& m) { return m.second == f.stream; });
      }
      return;
    }
    case AgentMsg::ps_reply:
      for (Client& c : clients_)
        if (c.fd.get() == ps_client_fd_) queue_frame(c, FrameType::reply, f.payload);
      ps_client_fd_ = -1;
      return;
    case AgentMsg::update_reply:
      for (Client& c : clients_)
        if (c.fd.get() == update_client_fd_) queue_frame(c, FrameType::reply, f.payload);
      update_client_fd_ = -1;
      return;
    case AgentMsg::error:
      if (Client* c = client_for(f.stream)) {
        queue_frame(*c, FrameType::error, f.payload);
        stream_fd_.erase(f.stream);
        std::erase_if(members_, [&](const auto& m) { return m.second == f.stream; });
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
      uint32_t stream = kInitStream;
      if (std::string member = json_string_or(*req, "member"); !member.empty()) {
        auto it = members_.find(member);
        if (it == members_.end()) {
          queue_frame(c, FrameType::reply, Json{{"ok", false}, {"message", "no such pod member runs"}}.dump());
          return;
        }
        stream = it->second;
      }
      auto r = send(AgentMsg::signal, stream, Json{{"signal", static_cast<int>(json_int_or(*req, "signal", 15))}}.dump());
      queue_frame(c, FrameType::reply, Json{{"ok", bool(r)}}.dump());
    } else if (op == "member") {
      create_member(c, *req);
    } else if (op == "worker") {
      // Where a pod member's files go: QEMU's mount namespace (vm/pod_share.h).
      queue_frame(c, FrameType::reply, Json{{"ok", qemu_ > 0 && !qemu_gone_}, {"pid", qemu_}}.dump());
    } else if (op == "ps") {
      ps_client_fd_ = c.fd.get();
      if (!send(AgentMsg::ps, 0, "{}")) queue_frame(c, FrameType::reply, Json{{"error", "agent unreachable"}}.dump());
    } else if (op == "update") {
      // New limits for the container's group in the guest (isola update).
      update_client_fd_ = c.fd.get();
      Json update = {{"resources", req->value("resources", Json::object())}};
      if (!send(AgentMsg::update, 0, update.dump()))
        queue_frame(c, FrameType::reply, Json{{"ok", false}, {"message", "the guest agent is unreachable"}}.dump());
    } else if (op == "exec") {
      uint32_t stream = next_stream_++;
      c.stream = stream;
      stream_fd_[stream] = c.fd.get();
      Json exec = {{"process", req->value("process", Json::object())}, {"interactive", json_bool_or(*req, "stdin", false)}};
      if (req->contains("rows")) {
        exec["rows"] = static_cast<unsigned short>(json_int_or(*req, "rows", 24));
        exec["cols"] = static_cast<unsigned short>(json_int_or(*req, "cols", 80));
      }
      if (std::string member = json_string_or(*req, "member"); !member.empty()) {
        auto it = members_.find(member);
        if (it == members_.end()) {
          stream_fd_.erase(stream);
          queue_frame(c, FrameType::error, Json{{"message", "pod member " + member + " is not running"}}.dump());
          return;
        }
        exec["container"] = it->second;
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

// A further container of the pod whose first container this VM runs
// (isola-runtime has put its files in the pod share): created and started
// at once, on a stream of its own, driven by the client as an exec is.
void VmMonitor::create_member(Client& c, const Json& req) {
  std::string id = json_string_or(req, "id");
  auto refuse = [&](const std::string& why) {
    queue_frame(c, FrameType::error, Json{{"message", "create pod member " + id + ": " + why}}.dump());
  };
  if (!created_ || exited_) return refuse("the pod's first container is not running");
  if (id.empty() || members_.count(id)) return refuse("no ID, or one that runs already");
  Json spec = req.value("spec", Json::object());
  bool tty = spec.value("process", Json::object()).value("terminal", false);
  auto payload = agent_create_payload(spec, tty, json_bool_or(req, "stdin", false),
                                      static_cast<int>(json_int_or(req, "rows", 24)),
                                      static_cast<int>(json_int_or(req, "cols", 80)));
  if (!payload) return refuse(payload.error().message());
  uint32_t stream = next_stream_++;
  c.stream = stream;
  stream_fd_[stream] = c.fd.get();
  members_[id] = stream;
  if (!send(AgentMsg::create, stream, payload->dump())) {
    stream_fd_.erase(stream);
    members_.erase(id);
    refuse("the guest agent is unreachable");
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
  remove_worker_cgroup(worker_config_);
  (void)store_.unmount_rootfs(rec_.id);
  if (!net_.ports.empty()) (void)unpublish_ports(rec_.id);
  unplug_endpoints(rec_.id, net_);
  if (takeover_) give_back_network();
  ::unlink(ContainerStore::socket_path(rec_.id).c_str());
  ::unlink(ContainerStore::agent_socket_path(rec_.id).c_str());
  record_container_exit(store_.root(), rec_, state_);
  if (rec_.auto_remove) {
    remove_anonymous_volumes(store_.root(), rec_);  // as docker run --rm; before the record goes, for wait
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

}  // namespace vm_monitor_detail

bool run_vm_monitor(ContainerStore store, ContainerRecord rec, Json spec, bool wait_for_attach, int report_fd,
                    const std::function<void()>& on_started) {
  VmMonitor monitor(std::move(store), std::move(rec), std::move(spec), wait_for_attach);
  auto prepared = monitor.prepare();
  if (!prepared) {
    monitor.stop_worker();
    (void)write_all(report_fd, error_json(prepared.error()).dump());
    return false;
  }
  (void)write_all(report_fd, Json{{"ok", true}, {"pid", monitor.worker_pid()}}.dump());
  ::close(report_fd);
  on_started();
  monitor.run();
  return true;
}

}  // namespace isola
