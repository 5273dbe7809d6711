// The agent's containers: the VM's first container (create on stream 1),
// a pod's further containers (create on later streams), exec'd processes,
// and what is done when a pod member ends.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "agent/agent.h"
#include "agent/agent_state.h"
#include "agent/guest.h"
#include "common/fs.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/stdio_set.h"

namespace isola::agent {
namespace {

// net.ipv4.ip_forward → /proc/sys/net/ipv4/ip_forward, in the agent's own
// network namespace (the one the container shares).
Result<void> set_sysctls(const std::map<std::string, std::string>& sysctls) {
  for (const auto& [key, value] : sysctls) {
    if (key.find('/') != std::string::npos || key.find("..") != std::string::npos)
      return fail(make_error("set sysctl", key, "not a sysctl name"));
    std::string path = "/proc/sys/" + key;
    std::replace(path.begin(), path.end(), '.', '/');
    TRYV(write_file_in_place(path, value));
  }
  return {};
}

}  // namespace

// The kernel's boot ID is the template's in every clone; a container
// reads the one the host gave this clone.
void Agent::give_boot_id(RuntimeSpec& spec) const {
  bool has_proc = std::any_of(spec.mounts.begin(), spec.mounts.end(),
                              [](const MountSpec& m) { return m.destination == "/proc"; });
  if (!boot_id_file_.empty() && has_proc)
    spec.mounts.push_back({"/proc/sys/kernel/random/boot_id", "bind", boot_id_file_, {"bind", "ro"}});
}

void Agent::on_create(const AgentFrame& f) {
  if (f.stream != kInitStream) return on_create_member(f);
  if (container_) {
    send_error(f.stream, sys_error(EEXIST, "create", "container"));
    return;
  }
  int64_t t0 = boottime_ms();
  auto req = parse_create_request(f.payload);
  if (!req) {
    send_error(f.stream, req.error());
    return;
  }
  if (opts_.pid1 && req->realtime_ns) {
    if (auto r = set_clock(*req->realtime_ns); !r) kmsg(r.error().message(), true);
  }
  for (const Share& share : req->shares) {
    kmsg("mounting share " + share.tag + " at " + share.path);
    if (auto r = opts_.mount_share(share); !r) {
      send_error(f.stream, r.error());
      return;
    }
  }
  RuntimeSpec& spec = req->spec;
  if (opts_.pid1) use_prepared(spec);
  give_boot_id(spec);
  if (opts_.pid1) {
    if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)
      kmsg(sys_error("sethostname", spec.hostname).message(), true);
    // A container in a network namespace of its own gets its lo from the
    // runtime; only one that shares the guest's needs the guest's (and the
    // ~10 ms under TCG stay out of the boot otherwise). A container with a
    // network always shares it (parse_create_request).
    bool own_net = std::any_of(spec.linux.namespaces.begin(), spec.linux.namespaces.end(),
                               [](const NamespaceSpec& ns) { return ns.type == "network"; });
    if (!own_net) loopback_up();
  }
  if (req->network) {
    if (auto r = opts_.configure_network(*req->network); !r) {
      send_error(f.stream, r.error());
      return;
    }
    if (auto r = set_sysctls(req->guest_net_sysctls); !r) {
      send_error(f.stream, r.error());
      return;
    }
  }
  auto stdio = make_stdio(req->tty, req->interactive);
  if (!stdio) {
    send_error(f.stream, stdio.error());
    return;
  }
  SpawnOptions so;
  so.id = req->id;
  if (req->seccomp_program) {
    if (auto r = remember_seccomp(*spec.linux.seccomp, std::move(*req->seccomp_program)); !r) {
      send_error(f.stream, r.error());
      return;
    }
  }
  int64_t t1 = boottime_ms();
  kmsg("creating container " + so.id);
  auto spawned = spawn_container(spec, so, stdio->fds);
  kmsg("create took " + std::to_string(boottime_ms() - t0) + " ms: " + std::to_string(boottime_ms() - t1) +
       " ms in the runtime");
  dump_trace();
  if (!spawned) {
    send_error(f.stream, spawned.error());
    return;
  }
  if (!adopt(f.stream, spawned->pid, *stdio, req->size, req->tty, Role::init)) return;
  container_ = std::make_unique<Container>(Container{req->id, std::move(req->spec), spawned->pid});
}

// A further container of the pod whose first container is the VM's: its
// files are in the pod share already (the host put them there), it joins
// the first container's namespaces that its spec names "pod", and has a
// cgroup of its own.
void Agent::on_create_member(const AgentFrame& f) {
  auto fail_with = [&](Error e) { send_error(f.stream, e); };
  if (!container_) {
    Error e = sys_error(ESRCH, "create pod member", "");
    e.detail = "the pod's first container has not been created";
    return fail_with(e);
  }
  if (find(f.stream) || members_.count(f.stream))
    return fail_with(sys_error(EEXIST, "create pod member", "stream " + std::to_string(f.stream)));
  auto req = parse_create_request(f.payload);
  if (!req) return fail_with(req.error());
  if (!req->shares.empty() || req->network)
    return fail_with(make_error("create pod member", req->id, "a pod member brings no shares and no network"));
  RuntimeSpec& spec = req->spec;
  if (auto r = join_pod_namespaces(spec, container_->init_pid); !r) return fail_with(r.error());
  give_boot_id(spec);
  if (req->seccomp_program)
    if (auto r = remember_seccomp(*spec.linux.seccomp, std::move(*req->seccomp_program)); !r) return fail_with(r.error());
  auto stdio = make_stdio(req->tty, req->interactive);
  if (!stdio) return fail_with(stdio.error());
  SpawnOptions so;
  so.id = req->id;
  kmsg("creating pod member " + so.id);
  auto spawned = spawn_container(spec, so, stdio->fds);
  if (!spawned) return fail_with(spawned.error());
  if (!adopt(f.stream, spawned->pid, *stdio, req->size, req->tty, Role::member)) return;
  members_[f.stream] = std::make_unique<Container>(Container{req->id, std::move(req->spec), spawned->pid});
}

// A pod member's init has exited: what else runs in its cgroup goes with
// it, as with a container of its own.
void Agent::finish_member(Proc& p) {
  bool oom = false;
  if (auto it = members_.find(p.stream); it != members_.end()) {
    const std::string& path = it->second->spec.linux.cgroups_path;
    if (!path.empty()) {
      if (auto cg = Cgroup::open(path)) {
        if (auto killed = cg->oom_killed()) oom = *killed;
        (void)cg->destroy();  // kills what is left first
      }
    }
    members_.erase(it);
  }
  send(AgentMsg::exit, p.stream, exit_payload(exit_code_from_status(p.status), oom));
}

void Agent::on_exec(const AgentFrame& f) {
  if (!container_) {
    Error e = sys_error(ESRCH, "exec in container", "");
    e.detail = "no container has been created";
    send_error(f.stream, e);
    return;
  }
  if (find(f.stream)) {
    Error e = sys_error(EEXIST, "exec in container", "stream " + std::to_string(f.stream));
    e.detail = "a process already runs on this stream";
    send_error(f.stream, e);
    return;
  }
  auto req = parse_exec_request(f.payload);
  if (!req) {
    send_error(f.stream, req.error());
    return;
  }
  auto stdio = make_stdio(req->process.terminal, req->interactive);
  if (!stdio) {
    send_error(f.stream, stdio.error());
    return;
  }
  const Container* target = container_.get();
  if (req->container != 0 && req->container != kInitStream) {
    auto member = members_.find(req->container);
    if (member == members_.end()) {
      Error e = sys_error(ESRCH, "exec in container", "stream " + std::to_string(req->container));
      e.detail = "no pod member runs on this stream";
      send_error(f.stream, e);
      return;
    }
    target = member->second.get();
  }
  auto pid = exec_in_container(target->init_pid, target->spec, req->process, stdio->fds);
  if (!pid) {
    send_error(f.stream, pid.error());
    return;
  }
  adopt(f.stream, *pid, *stdio, req->size, req->process.terminal, Role::exec);
}

// A process the runtime started on `stream`: its terminal's master arrives
// (a process that cannot get it is killed), its stdio is watched from now
// on, and the host hears that it started. False when it failed (the host
// has the error).
bool Agent::adopt(uint32_t stream, pid_t pid, StdioSet& stdio, const WindowSize& size, bool tty, Role role) {
  if (stdio.console_sock) {
    if (auto r = receive_master(stdio, size); !r) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      send_error(stream, r.error());
      return false;
    }
  }
  auto p = std::make_unique<Proc>();
  p->stream = stream;
  p->pid = pid;
  p->init = role == Role::init;
  p->member = role == Role::member;
  p->tty = tty;
  p->in = std::move(stdio.in);
  p->out = std::move(stdio.out);
  p->err = std::move(stdio.err);
  procs_[stream] = std::move(p);
  send(AgentMsg::started, stream, started_payload(pid, boottime_ms()));
  return true;
}

}  // namespace isola::agent
