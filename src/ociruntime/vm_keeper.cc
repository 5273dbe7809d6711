#include "ociruntime/vm_keeper.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "common/fs.h"
#include "common/unix_socket.h"
#include "engine/container_store.h"
#include "monitor/client.h"
#include "monitor/monitor.h"
#include "monitor/session.h"
#include "monitor/session_client.h"
#include "ociruntime/bundle.h"
#include "ociruntime/pod_member.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/security.h"
#include "vm/pod_share.h"
#include "vm/vm_spec.h"

namespace isola::oci {

namespace {

// Signals an engine sends to stop or poke a container; the keeper passes
// them on to the guest process (SIGKILL cannot be caught: it kills the
// keeper, and with it the monitor and the VM).
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};

// The host name of the UTS namespace at `path`, read by a child that
// joins it.
Result<std::string> hostname_in(const std::string& path) {
  UniqueFd ns = TRY(open_path(path, O_RDONLY));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd in(fds[0]), out(fds[1]);
  pid_t child = ::fork();
  if (child < 0) return fail(sys_error("fork"));
  if (child == 0) {
    struct utsname u {};
    if (::setns(ns.get(), CLONE_NEWUTS) != 0 || ::uname(&u) != 0) ::_exit(1);
    ::_exit(write_all(out.get(), u.nodename) ? 0 : 1);
  }
  out.reset();
  std::string name = read_fd(in.get(), path, 256).value_or("");
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail(make_error("join UTS namespace", path, "failed"));
  return name;
}

// The guest runs its own namespaces and cgroup; paths of the host's mean
// nothing there (lend_host_namespaces has taken what they lend).
Result<void> adapt_spec_for_guest(RuntimeSpec& spec) {
  for (NamespaceSpec& ns : spec.linux.namespaces) ns.path.clear();
  // A node is made in the guest and opens the guest kernel's device of
  // those numbers: right for a virtual one (fuse, tun), another disk
  // altogether for a block device.
  for (const DeviceNodeSpec& d : spec.linux.devices)
    if (d.type == 'b')
      return fail(make_error("unsupported runtime spec", "linux.devices",
                             d.path + ": a VM container has the guest's block devices, not the host's"));
  spec.linux.cgroups_path = "container";
  return {};
}

// The network namespace a VM container takes over (net/netns_takeover.h):
// one its spec joins by path. A pod's sandbox takes over the pod's; the
// pod's further containers run in the sandbox's VM and share it there.
std::string network_to_take_over(const RuntimeSpec& spec) {
  for (const NamespaceSpec& ns : spec.linux.namespaces)
    if (ns.type == "network") return ns.path;
  return {};
}

// A Kubernetes pod with hostNetwork has no network namespace in its specs:
// a VM has its own network stack and cannot share the host's.
Result<void> check_pod_network(const RuntimeSpec& spec) {
  if (pod_container_type(spec).empty()) return {};
  for (const NamespaceSpec& ns : spec.linux.namespaces)
    if (ns.type == "network") return {};
  return fail(make_error("unsupported runtime spec", "linux.namespaces",
                         "a pod with hostNetwork cannot run in a VM (it has a network stack of its own); "
                         "use the isola runtime class (process isolation) for it"));
}

// A host terminal standing in for the guest's: its master goes to the
// engine; the slave stays with the keeper, raw, so the guest's terminal
// alone echoes and edits lines.
Result<UniqueFd> make_host_terminal(int console_socket, const ProcessSpec& proc) {
  int master, slave;
  if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) return fail(sys_error("openpty"));
  UniqueFd m(master), s(slave);
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  termios t;
  if (::tcgetattr(slave, &t) == 0) {
    ::cfmakeraw(&t);
    ::tcsetattr(slave, TCSANOW, &t);
  }
  if (proc.console_rows && proc.console_cols) {
    struct winsize ws {};
    ws.ws_row = static_cast<unsigned short>(proc.console_rows);
    ws.ws_col = static_cast<unsigned short>(proc.console_cols);
    ::ioctl(slave, TIOCSWINSZ, &ws);
  }
  char name[64] = "/dev/pts/?";
  (void)::ptsname_r(master, name, sizeof name);
  TRYV(send_fd(console_socket, master, name));
  return s;
}

// As runc does, a command that cannot be found fails create rather than
// start (engines answer 127 then). The guest sees the rootfs share as it
// is here, so look there; a path under a mount could come from the mount,
// and is left to the guest.
Result<void> check_command(const RuntimeSpec& spec) {
  const std::string& cmd = spec.process.args[0];
  std::vector<std::string> candidates;
  bool searched = cmd.find('/') == std::string::npos;
  if (!searched) {
    if (cmd[0] != '/') return {};
    candidates.push_back(cmd);
  } else {
    std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const std::string& e : spec.process.env)
      if (e.starts_with("PATH=")) path = e.substr(5);
    size_t start = 0;
    for (;;) {
      size_t end = path.find(':', start);
      std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (dir.empty() || dir[0] != '/') return {};
      candidates.push_back(path_join(dir, cmd));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  UniqueFd root = TRY(open_dir(spec.root_path));
  for (const std::string& c : candidates) {
    for (const MountSpec& m : spec.mounts)
      if (c.starts_with(m.destination + "/")) return {};
    auto fd = open_in_root(root.get(), c.substr(1), O_PATH);
    struct stat st;
    if (fd && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return {};
  }
  Error e = sys_error(ENOENT, "exec", cmd);
  if (searched) e.detail = "executable file not found in $PATH";
  e.exit_code = 127;
  return fail(e);
}

// A forked helper keeps only what it uses: above all not the caller's lock
// on the container, which would then outlive the caller.
void close_fds_except(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < 3) continue;
    if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, fd - 1, 0);
    next = std::max(next, static_cast<unsigned>(fd) + 1);
  }
  ::syscall(SYS_close_range, next, ~0U, 0);
}

// A session that relays the engine's descriptors 0-2, or `term` (a host
// terminal) when the process has one.
SessionOptions relay_options(std::string op, Json extra, int term) {
  SessionOptions so;
  so.op = std::move(op);
  so.extra = std::move(extra);
  so.stdin = true;
  so.tty = term >= 0;
  if (term >= 0) so.in = so.out = so.err = so.size_fd = term;
  return so;
}

// A process that carries a session on: it gives up the engine's pipes when
// it relays a terminal, and makes the terminal its own so that resizes
// arrive as SIGWINCH.
void become_relay(int term) {
  if (term < 0) return;
  ::setsid();
  ::ioctl(term, TIOCSCTTY, 0);
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
}

struct Prepared {
  std::string monitor_socket;
  UniqueFd terminal;  // with process.terminal
};

Result<Prepared> prepare_vm(const KeeperRequest& req) {
  TRYV(TRY(Cgroup::open(req.cgroup_path)).add_process(::getpid()));
  if (req.preserve_fds > 0)
    return fail(make_error("create container", req.id, "--preserve-fds is not supported with VM isolation"));
  RuntimeSpec spec = req.spec;
  std::string netns = network_to_take_over(spec);
  // What the guest would refuse at start is refused at create, as for a
  // process container (the guest's agent runs the same code).
  TRYV(check_command(spec));
  TRYV(check_rlimits(spec.process.rlimits));
  if (spec.linux.seccomp) TRY(compile_seccomp(*spec.linux.seccomp));
  TRYV(adapt_spec_for_guest(spec));
  ContainerStore store = TRY(ContainerStore::open(path_join(req.state_dir, "vm")));
  ContainerRecord rec;
  rec.isolation = Isolation::vm;
  rec.command = spec.process.args;
  rec.tty = spec.process.terminal;
  rec.interactive = true;
  rec.keep_log = false;
  rec.created_ns = now_ns();
  if (auto boot = spec.annotations.find(kVmBootAnnotation); boot != spec.annotations.end()) {
    if (boot->second != "cold" && boot->second != "auto")
      return fail(make_error("annotation", kVmBootAnnotation, "\"" + boot->second + "\" is not a boot mode: use auto or cold"));
    rec.options = Json{{"VmBoot", boot->second == "cold" ? "cold" : ""}};
  }
  if (!rec.options.is_object()) rec.options = Json::object();
  rec.options["KeeperCgroup"] = req.cgroup_path;
  if (!netns.empty()) {
    rec.options["NetnsPath"] = netns;
    rec.options["NetnsRecord"] = req.takeover_record;
  }
  rec = TRY(store.create(rec));
  std::string etc = store.etc_dir(rec.id);
  TRYV(mkdir_p(etc, 0755));
  VmPlan plan = TRY(plan_vm(spec, etc));
  if (pod_container_type(req.spec) == "sandbox") {
    // The pod's further containers come in through it (pod_member.h).
    std::string share = pod_share_dir(ContainerStore::socket_path(rec.id));
    TRYV(mkdir_p(share, 0700));
    plan.shares.push_back({kPodShareTag, share, kPodShareGuestPath, false});
    size_pod_vm(req.spec, plan);
  }
  TRYV(write_file_atomic(store.vm_path(rec.id), plan.to_json().dump(2) + "\n", 0600));
  TRYV(write_file_atomic(store.spec_path(rec.id), spec.to_json().dump(2) + "\n", 0600));
  Prepared p;
  if (spec.process.terminal) p.terminal = TRY(make_host_terminal(req.console_socket, spec.process));
  MonitorRequest mr;
  mr.root = store.root();
  mr.id = rec.id;
  mr.wait_for_attach = true;
  mr.child_of_caller = true;
  if (auto launched = launch_monitor(mr); !launched) {
    (void)remove_tree(ContainerStore::run_dir(rec.id));
    return fail(launched.error());
  }
  p.monitor_socket = ContainerStore::socket_path(rec.id);
  return p;
}

// A pod's further container: the pod's VM runs already.
Result<Prepared> prepare_member(const KeeperRequest& req) {
  TRYV(TRY(Cgroup::open(req.cgroup_path)).add_process(::getpid()));
  if (req.preserve_fds > 0)
    return fail(make_error("create container", req.id, "--preserve-fds is not supported with VM isolation"));
  TRYV(check_command(req.spec));
  TRYV(check_rlimits(req.spec.process.rlimits));
  Prepared p;
  if (req.spec.process.terminal) p.terminal = TRY(make_host_terminal(req.console_socket, req.spec.process));
  p.monitor_socket = req.pod_socket;
  return p;
}

// Waits (briefly) for the monitor to power the VM off and exit.
void reap_monitor() {
  for (int i = 0; i < 100; ++i) {
    pid_t r = ::waitpid(-1, nullptr, WNOHANG);
    if (r < 0 && errno == ECHILD) return;
    if (r == 0) ::usleep(50000);
  }
}

[[noreturn]] void keeper_main(const KeeperRequest& req, int report_fd, int listener) {
  ::prctl(PR_SET_NAME, "isola-keeper");
  close_fds_except({report_fd, listener, req.console_socket});
  const bool member = !req.pod_socket.empty();
  auto prepared = member ? prepare_member(req) : prepare_vm(req);
  if (!prepared) {
    (void)write_all(report_fd, error_json(prepared.error()).dump());
    ::_exit(1);
  }
  (void)write_all(report_fd, Json{{"ok", true}, {"socket", prepared->monitor_socket}}.dump());
  ::close(report_fd);
  if (req.console_socket >= 0) ::close(req.console_socket);
  int term = prepared->terminal.get();
  become_relay(term);
  // As the init of its pid namespace the keeper only gets the signals it
  // handles: until the guest process runs, a stop signal ends it.
  for (int sig : kForwarded) ::signal(sig, [](int s) { ::_exit(128 + s); });
  const std::string socket = prepared->monitor_socket;
  std::optional<SessionClient> session;
  auto started = serve_start(listener, [&]() -> Result<void> {
    SessionOptions so = member ? relay_options("member", {{"id", req.id}, {"spec", req.member_spec}}, term)
                               : relay_options("attach", Json::object(), term);
    so.signals.assign(std::begin(kForwarded), std::end(kForwarded));
    std::string target = member ? req.id : "";
    so.on_signal = [socket, target](int sig) {
      Json call = {{"op", "signal"}, {"signal", sig}};
      if (!target.empty()) call["member"] = target;
      (void)monitor_call(socket, call, 5000);
    };
    session.emplace(TRY(SessionClient::open(socket, std::move(so))));
    return session->wait_started();
  });
  ::close(listener);
  int code;
  if (!started) {
    code = started.error().exit_code ? started.error().exit_code : 125;
  } else if (auto r = session->run(); r) {
    code = *r;
  } else {
    std::string msg = "isola-runtime: " + r.error().message() + "\n";
    (void)write_all(2, msg);
    code = 137;
  }
  reap_monitor();
  ::_exit(code & 0xff);
}

// A VM never takes over the network namespace of the host or of its
// caller (the engine's): only a namespace made for the container.
Result<void> check_not_host_network(const std::string& path) {
  struct stat target {};
  if (::stat(path.c_str(), &target) != 0) return fail(sys_error("join network namespace", path));
  for (const char* own : {"/proc/1/ns/net", "/proc/self/ns/net"}) {
    struct stat s {};
    if (::stat(own, &s) == 0 && s.st_dev == target.st_dev && s.st_ino == target.st_ino)
      return fail(make_error("join network namespace", path,
                             "it is the host's (or the engine's) network namespace, which a VM cannot take over"));
  }
  return {};
}

Result<void> lend_host_namespaces(KeeperRequest& req) {
  RuntimeSpec& spec = req.spec;
  for (NamespaceSpec& ns : spec.linux.namespaces) {
    if (ns.type == "uts" && !ns.path.empty() && spec.hostname.empty()) spec.hostname = TRY(hostname_in(ns.path));
    if (ns.type != "network" || ns.path.empty()) continue;
    TRYV(check_not_host_network(ns.path));
    // The keeper's /proc is its own: a namespace named there is pinned to
    // a file of the container's first.
    if (ns.path.starts_with("/proc/")) {
      TRYV(write_file_atomic(req.netns_pin, "", 0600));
      if (::mount(ns.path.c_str(), req.netns_pin.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return fail(sys_error("join network namespace", ns.path));
      ns.path = req.netns_pin;
    }
  }
  return {};
}

// The keeper stands in for the guest process in the host's view of
// namespaces too: it lives in the network namespace the spec joins, and in
// a UTS namespace of its own named as the spec says. An engine names a
// pod's namespaces for the pod's other containers by the sandbox process's
// /proc entries (containerd: /proc/PID/ns/net), and that process is this
// keeper. (A UTS namespace the spec joins lends the guest its name; the
// keeper stays out of it, whoever's it is.)
struct KeeperNamespaces {
  UniqueFd net;
  bool new_uts = false;

  static Result<KeeperNamespaces> of(const RuntimeSpec& spec) {
    KeeperNamespaces k;
    for (const NamespaceSpec& ns : spec.linux.namespaces) {
      if (ns.type == "network" && !ns.path.empty()) k.net = TRY(open_path(ns.path, O_RDONLY));
      if (ns.type == "uts" && ns.path.empty()) k.new_uts = true;
    }
    return k;
  }
  // In the keeper, a new process (no threads) made with clone_flags().
  Result<void> enter(const std::string& hostname) const {
    if (net && ::setns(net.get(), CLONE_NEWNET) != 0) return fail(sys_error("join network namespace", "VM keeper"));
    if (new_uts && !hostname.empty() && ::sethostname(hostname.data(), hostname.size()) != 0)
      return fail(sys_error("sethostname", hostname));
    return {};
  }
  unsigned long clone_flags() const { return new_uts ? CLONE_NEWUTS : 0; }
};

}  // namespace

Result<Keeper> launch_vm_keeper(KeeperRequest req) {
  TRYV(check_pod_network(req.spec));
  TRYV(lend_host_namespaces(req));
  KeeperNamespaces namespaces = TRY(KeeperNamespaces::of(req.spec));
  UniqueFd listener = TRY(unix_listen(req.start_socket, SOCK_SEQPACKET));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd rd(p[0]), wr(p[1]);
  // Its own pid and mount namespaces, with a /proc of its own: what an
  // engine reads there (podman top) are the keeper, the monitor and QEMU,
  // not the host's processes; and when the keeper goes, so do they.
  pid_t pid = static_cast<pid_t>(
      ::syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | namespaces.clone_flags() | SIGCHLD, 0, 0, 0, 0));
  if (pid < 0) return fail(sys_error("clone", "VM keeper"));
  if (pid == 0) {
    rd.reset();
    if (auto entered = namespaces.enter(req.spec.hostname); !entered) {
      (void)write_all(wr.get(), error_json(entered.error()).dump());
      ::_exit(1);
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      (void)write_all(wr.get(), error_json(sys_error("mount /proc", "VM keeper")).dump());
      ::_exit(1);
    }
    keeper_main(req, wr.release(), listener.release());
  }
  wr.reset();
  auto text = read_fd(rd.get(), "keeper report", 1u << 20);
  auto j = text ? parse_json(*text, "keeper report") : std::unexpected(text.error());
  if (!j || !j->value("ok", false)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::unlink(req.start_socket.c_str());
    if (!j) return fail(make_error("create container", req.id, "the VM keeper died before it reported"));
    return fail(plain_error(json_string_or(*j, "message", "the VM did not start")));
  }
  return Keeper{pid, json_string_or(*j, "socket")};
}

Result<int> exec_in_vm(const VmExec& req, pid_t* relay_pid) {
  Json process = process_to_json(req.process);
  UniqueFd term;
  if (req.process.terminal) {
    if (req.console_socket < 0)
      return fail(make_error("exec", "process.terminal", "a terminal was asked for but no --console-socket given"));
    term = TRY(make_host_terminal(req.console_socket, req.process));
  }
  Json extra = {{"process", process}};
  if (!req.pod_member.empty()) extra["member"] = req.pod_member;
  if (!req.detach) {
    SessionClient s = TRY(SessionClient::open(req.monitor_socket, relay_options("exec", extra, term.get())));
    TRYV(s.wait_started());
    return s.run();
  }
  // Detached: the relay reports once the guest process runs, then carries on.
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t pid = ::fork();
  if (pid < 0) return fail(sys_error("fork"));
  if (pid == 0) {
    rd.reset();
    ::prctl(PR_SET_NAME, "isola-exec");
    close_fds_except({wr.get(), term.get()});
    become_relay(term.get());
    auto s = SessionClient::open(req.monitor_socket, relay_options("exec", extra, term.get()));
    auto started = s ? s->wait_started() : std::unexpected(s.error());
    if (!started) {
      (void)write_all(wr.get(), error_json(started.error()).dump());
      ::_exit(started.error().exit_code ? started.error().exit_code : 125);
    }
    (void)write_all(wr.get(), Json{{"ok", true}}.dump());
    wr.reset();
    auto code = s->run();
    ::_exit(code ? (*code & 0xff) : 137);
  }
  wr.reset();
  auto text = read_fd(rd.get(), "exec report", 1u << 20);
  auto j = text ? parse_json(*text, "exec report") : std::unexpected(text.error());
  if (!j || !j->value("ok", false)) {
    ::waitpid(pid, nullptr, 0);
    Error e = plain_error(j ? json_string_or(*j, "message", "exec failed") : "the exec relay died");
    if (j) e.exit_code = j->value("exit_code", 0);
    return fail(e);
  }
  *relay_pid = pid;
  return 0;
}

}  // namespace isola::oci
