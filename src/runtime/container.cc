// Process isolation: the container's process, from clone to exec, and
// `exec` into a running container.
//
// Everything the child needs is worked out in the parent first (a "plan":
// mount flags, exec candidates, sysctl paths), so the code between clone and
// exec only makes system calls. The child reports a failure as {errno, step,
// object} over a CLOEXEC SOCK_SEQPACKET socket and exits; a successful exec
// closes the socket, which the parent reads as "started".
//
//   parent                                  child (pid 1 of the new pid ns)
//   create cgroup, clone ───────────────►   PR_SET_DUMPABLE 0, wait
//   add to cgroup, write id maps, "go" ─►   setns/unshare, mounts, pivot_root,
//                                           sysctl, ro/masked paths, stdio,
//                                           rlimits, user, caps, seccomp
//   (wait_for_start) ◄──────── "ready" ──   wait for the start byte
//   start byte ────────────────────────►    execve
//   EOF = exec'd, or {errno, step} ◄─────
#include "runtime/container.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include "common/fs.h"
#include "common/log.h"
#include "common/ns_switch.h"
#include "common/unix_socket.h"
#include "runtime/cgroup.h"
#include "runtime/device_nodes.h"
#include "runtime/mount_options.h"
#include "runtime/security.h"

namespace isola {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------
// The sync socket. The parent sends single bytes ("go", then "start"); the
// child sends Reports. EOF means the child exec'd (or died).

enum : int32_t { kReady = 1, kFailed = 2 };

struct Report {
  int32_t kind = 0;
  int32_t err = 0;
  char op[64] = {};
  char object[1024] = {};
  char detail[512] = {};
};

void copy_text(char* dst, size_t size, std::string_view s) {
  size_t n = std::min(size - 1, s.size());
  if (n > 0) std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

Result<void> send_byte(int fd, const std::string& what) {
  char b = 1;
  for (;;) {
    if (::send(fd, &b, 1, MSG_NOSIGNAL) == 1) return {};
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET)
      return fail(make_error("start", what, "the container process exited before it could start"));
    return fail(sys_error("write sync socket", what));
  }
}

enum class Outcome { execd, ready };

// Waits for the child's next report; a failure report becomes the Error.
Result<Outcome> await_child(int fd, const std::string& what) {
  Report r;
  ssize_t n;
  do {
    n = ::recv(fd, &r, sizeof r, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(sys_error("read sync socket", what));
  if (n == 0) return Outcome::execd;
  if (n != static_cast<ssize_t>(sizeof r)) return fail(make_error("read sync socket", what, "truncated message"));
  if (r.kind == kReady) return Outcome::ready;
  r.op[sizeof r.op - 1] = r.object[sizeof r.object - 1] = r.detail[sizeof r.detail - 1] = '\0';
  Error e{r.err, r.op, r.object, r.detail};
  if (e.op == "exec") e.exit_code = (e.err == ENOENT || e.err == ENOTDIR) ? 127 : 126;
  return fail(std::move(e));
}

// Kills and reaps a child process unless released: "on failure nothing is left".
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_t release() { return std::exchange(pid_, -1); }

 private:
  pid_t pid_;
};

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Result<std::pair<UniqueFd, UniqueFd>> sync_socketpair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return fail(sys_error("socketpair"));
  return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// ---------------------------------------------------------------------------
// cgroup hierarchies as mounted in the caller's mount namespace.

struct Hierarchy {
  std::string mountpoint;            // /sys/fs/cgroup/memory
  bool v2 = false;
  std::vector<std::string> options;  // v1: controllers, name=..., xattr
};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string unescape_octal(std::string_view s) {
  auto octal = [](char ch) { return ch >= '0' && ch <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<std::vector<Hierarchy>> cgroup_hierarchies() {
  std::string text = TRY(read_file("/proc/self/mountinfo"));
  std::vector<Hierarchy> out;
  for (const std::string& line : split(text, '\n')) {
    std::vector<std::string> f = split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
    const std::string& fstype = dash[1];
    if ((fstype != "cgroup" && fstype != "cgroup2") || f[3] != "/") continue;
    Hierarchy h;
    h.mountpoint = unescape_octal(f[4]);
    h.v2 = fstype == "cgroup2";
    for (std::string& o : split(dash[3], ','))
      if (o != "rw" && o != "ro") h.options.push_back(std::move(o));
    out.push_back(std::move(h));
  }
  return out;
}

// Matches a /proc/PID/cgroup line ("4:memory:/isola/x", "0::/x") to a
// hierarchy; returns the group's path in it.
const Hierarchy* match_cgroup_line(const std::vector<Hierarchy>& hs, std::string_view line, std::string& path) {
  size_t a = line.find(':'), b = a == std::string_view::npos ? a : line.find(':', a + 1);
  if (b == std::string_view::npos) return nullptr;
  std::string_view controllers = line.substr(a + 1, b - a - 1);
  path = std::string(line.substr(b + 1));
  for (const Hierarchy& h : hs) {
    if (controllers.empty() != h.v2) continue;
    bool all = true;
    for (const std::string& c : split(controllers, ','))
      all = all && std::find(h.options.begin(), h.options.end(), c) != h.options.end();
    if (all) return &h;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The plan: the spec turned into what the child does, checked up front.

struct ProcessPlan {
  ProcessSpec process;
  std::optional<SeccompProgram> seccomp;  // compiled before clone
  StdioFds stdio;
  std::vector<std::string> candidates;  // the paths execve tries, in order
  bool searched = false;                // args[0] had no '/' and was looked up in PATH
  std::vector<char*> argv, envp;        // into process.args / process.env
  int start_listener = -1;              // see SpawnOptions

  // Call once the plan sits where the child will read it.
  void point_args() {
    argv.clear();
    envp.clear();
    for (std::string& a : process.args) argv.push_back(a.data());
    for (std::string& e : process.env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
  }
};

struct MountPlan {
  std::string source, type, data;
  std::string dest;    // as the user wrote it, for messages
  std::string target;  // relative to the rootfs
  unsigned long flags = 0;  // MS_RDONLY, MS_NOSUID, ... (no MS_BIND/MS_REC)
  std::vector<unsigned long> propagation;
  uint64_t attr_set = 0, attr_clear = 0;  // mount_setattr(AT_RECURSIVE): rro, rnosuid, ...
  bool bind = false, recursive = false;
  bool dir = true;  // create a missing target as a directory, else as a file
  bool cgroup = false;
};

struct NsJoin {
  int type;
  std::string path;
};

struct ContainerPlan {
  ProcessPlan proc;
  std::string rootfs;
  bool readonly_root = false;
  std::vector<MountPlan> mounts;
  int clone_flags = 0;    // namespaces created by clone
  int unshare_flags = 0;  // created after joining a user namespace by path
  bool cgroup_ns = false;
  std::vector<NsJoin> joins;  // user first
  std::string pid_ns_path;    // joined by the parent around clone
  // Also joined by the parent around clone: a network namespace owned by
  // the caller's user namespace, which a child in a new user namespace
  // could no longer enter (a container with --userns=auto on a bridge).
  std::string net_ns_path;
  bool user_ns = false;       // created: the parent writes the id maps
  bool joins_user = false;
  std::string hostname, domainname;
  bool loopback = false;
  std::vector<std::pair<std::string, std::string>> sysctls;  // /proc/sys/... file, value
  std::vector<std::string> masked, readonly_paths;
  bool cgroup_v2_host = false;
  std::vector<Hierarchy> hierarchies;  // for "cgroup" mounts
  std::string console_path;            // the pty slave as our mount namespace names it
  unsigned long root_propagation = 0;  // linux.rootfsPropagation, for "/" after pivot_root
  std::vector<DeviceNodePlan> devices;  // the default nodes, then linux.devices
};

Error spec_error(const std::string& field, std::string detail) {
  return make_error("invalid runtime spec", field, std::move(detail));
}

Result<ProcessPlan> plan_process(const ProcessSpec& process, const std::optional<SeccompSpec>& seccomp,
                                 const StdioFds& stdio) {
  ProcessPlan p;
  if (process.args.empty()) return fail(spec_error("process.args", "no command to run"));
  if (process.cwd.empty() || process.cwd[0] != '/') return fail(spec_error("process.cwd", "must be an absolute path"));
  if (process.terminal && stdio.console < 0 && stdio.console_socket < 0)
    return fail(spec_error("process.terminal", "a terminal was asked for but no console was given"));
  p.process = process;
  if (seccomp) p.seccomp = TRY(compile_seccomp(*seccomp, seccomp_cache_dir()));
  p.stdio = stdio;
  const std::string& cmd = process.args[0];
  if (cmd.empty()) return fail(spec_error("process.args[0]", "the command is empty"));
  if (cmd.find('/') != std::string::npos) {
    p.candidates.push_back(cmd);
    return p;
  }
  // PATH comes from the container's environment, never from ours.
  std::string path = kDefaultPath;
  for (const std::string& e : process.env)
    if (e.starts_with("PATH=")) {
      path = e.substr(5);
      break;
    }
  p.searched = true;
  size_t start = 0;
  for (;;) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    p.candidates.push_back(path_join(dir.empty() ? "." : dir, cmd));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return p;
}

Result<MountPlan> plan_mount(const MountSpec& m, size_t index) {
  std::string field = "mounts[" + std::to_string(index) + "]";
  MountPlan p;
  p.dest = m.destination;
  p.source = m.source;
  p.type = m.type;
  if (m.destination.empty() || m.destination[0] != '/')
    return fail(spec_error(field + ".destination", "must be an absolute path"));
  size_t first = m.destination.find_first_not_of('/');
  if (first == std::string::npos) return fail(spec_error(field + ".destination", "cannot mount over the root"));
  p.target = m.destination.substr(first);
  MountOptions o = TRY(parse_mount_options(m.options, field + ".options"));
  p.bind = m.type == "bind" || o.bind;
  p.recursive = o.recursive;
  p.flags = o.flags;
  p.propagation = std::move(o.propagation);
  p.attr_set = o.attr_set;
  p.attr_clear = o.attr_clear;
  // A bind mount has no file system to take data options (size=, mode=):
  // they are ignored, as runc does.
  if (!p.bind) p.data = std::move(o.data);
  if (p.bind) {
    if (m.source.empty() || m.source[0] != '/')
      return fail(spec_error(field + ".source", "a bind mount needs an absolute source path"));
    struct stat st;
    if (::stat(m.source.c_str(), &st) != 0) return fail(sys_error("bind mount source", m.source));
    p.dir = S_ISDIR(st.st_mode);
  } else if (m.type.empty()) {
    return fail(spec_error(field + ".type", "missing (and the mount is not a bind mount)"));
  }
  p.cgroup = !p.bind && (m.type == "cgroup" || m.type == "cgroup2");
  return p;
}

int namespace_flag(const std::string& type) {
  if (type == "pid") return CLONE_NEWPID;
  if (type == "network") return CLONE_NEWNET;
  if (type == "mount") return CLONE_NEWNS;
  if (type == "ipc") return CLONE_NEWIPC;
  if (type == "uts") return CLONE_NEWUTS;
  if (type == "user") return CLONE_NEWUSER;
  if (type == "cgroup") return CLONE_NEWCGROUP;
  return 0;
}

Result<void> plan_namespaces(const LinuxSpec& linux, ContainerPlan& plan) {
  int created = 0, joined = 0;
  bool join_user = false;
  for (const NamespaceSpec& ns : linux.namespaces) {
    int flag = namespace_flag(ns.type);
    if (flag == 0) return fail(spec_error("linux.namespaces", "unknown namespace type \"" + ns.type + "\""));
    if (ns.path.empty()) {
      created |= flag;
    } else if (flag == CLONE_NEWPID) {
      joined |= flag;
      plan.pid_ns_path = ns.path;
    } else if (flag == CLONE_NEWNET) {
      joined |= flag;
      plan.net_ns_path = ns.path;
    } else {
      joined |= flag;
      if (flag == CLONE_NEWUSER) {
        join_user = true;
        plan.joins.insert(plan.joins.begin(), NsJoin{flag, ns.path});
      } else {
        plan.joins.push_back(NsJoin{flag, ns.path});
      }
    }
  }
  // Without one, the container's mounts and the change of root would be
  // made in the host's own mount namespace (runc then mounts there, makes
  // the host's / a slave and chroots; the mounts outlive the container).
  if (!((created | joined) & CLONE_NEWNS))
    return fail(spec_error("linux.namespaces",
                           "process isolation needs a mount namespace: without one the container's mounts would be "
                           "made in the host's; add {\"type\": \"mount\"}"));
  plan.cgroup_ns = created & CLONE_NEWCGROUP;
  plan.user_ns = created & CLONE_NEWUSER;
  int rest = created & ~CLONE_NEWCGROUP;
  plan.joins_user = join_user;
  if (join_user) {
    // Namespaces made after setns(user) belong to that user namespace, as a
    // container joining a pod's user namespace expects. Only the pid
    // namespace must come from clone itself.
    plan.clone_flags = rest & CLONE_NEWPID;
    plan.unshare_flags = rest & ~CLONE_NEWPID;
  } else {
    plan.clone_flags = rest;
  }
  plan.loopback = created & CLONE_NEWNET;
  if (plan.user_ns && (linux.uid_mappings.empty() || linux.gid_mappings.empty()))
    return fail(spec_error("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings"));
  return {};
}

bool same_namespace(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// True when the container has a namespace of type `flag` (net, ipc or uts)
// other than ours: made for it, or joined and not the host's.
bool owns_namespace(const ContainerPlan& plan, int flag) {
  if ((plan.clone_flags | plan.unshare_flags) & flag) return true;
  if (flag == CLONE_NEWNET && !plan.net_ns_path.empty()) return !same_namespace(plan.net_ns_path, "/proc/self/ns/net");
  for (const NsJoin& j : plan.joins) {
    if (j.type != flag) continue;
    const char* name = flag == CLONE_NEWNET ? "net" : flag == CLONE_NEWIPC ? "ipc" : "uts";
    return !same_namespace(j.path, std::string("/proc/self/ns/") + name);
  }
  return false;
}

bool owns_uts_namespace(const ContainerPlan& plan) { return owns_namespace(plan, CLONE_NEWUTS); }

// A sysctl is set only where it belongs to one of the container's own
// namespaces; any other would change the host (as runc decides).
Result<void> check_sysctl_namespaced(const std::string& key, const ContainerPlan& plan) {
  auto own = [&](int flag) { return owns_namespace(plan, flag); };
  static const char* const kIpc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                     "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  bool ipc = key.starts_with("fs.mqueue.") || std::find(std::begin(kIpc), std::end(kIpc), key) != std::end(kIpc);
  if (ipc && own(CLONE_NEWIPC)) return {};
  if (key.starts_with("net.") && own(CLONE_NEWNET)) return {};
  if ((key == "kernel.hostname" || key == "kernel.domainname") && own(CLONE_NEWUTS)) return {};
  std::string why = ipc                       ? "needs the container's own ipc namespace"
                    : key.starts_with("net.") ? "needs the container's own network namespace"
                                              : "is not namespaced: setting it would change the host";
  return fail(spec_error("linux.sysctl", "\"" + key + "\" " + why));
}

Result<ContainerPlan> plan_container(const RuntimeSpec& spec, const StdioFds& stdio) {
  ContainerPlan plan;
  plan.proc = TRY(plan_process(spec.process, spec.linux.seccomp, stdio));
  if (spec.root_path.empty() || spec.root_path[0] != '/')
    return fail(spec_error("root.path", "must be an absolute path"));
  if (!is_directory(spec.root_path)) return fail(make_error("open rootfs", spec.root_path, "not a directory"));
  plan.rootfs = spec.root_path;
  plan.readonly_root = spec.root_readonly;
  TRYV(plan_namespaces(spec.linux, plan));
  if (const std::string& prop = spec.linux.rootfs_propagation; !prop.empty()) {
    auto flags = propagation_flags(prop);
    if (!flags)
      return fail(spec_error("linux.rootfsPropagation", "\"" + prop + "\" is not a propagation type (private, "
                                                        "shared, slave, unbindable, or the same with r)"));
    plan.root_propagation = *flags;
  }
  plan.devices = TRY(plan_device_nodes(spec.linux.devices));

  bool any_cgroup_mount = false;
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    plan.mounts.push_back(TRY(plan_mount(spec.mounts[i], i)));
    any_cgroup_mount = any_cgroup_mount || plan.mounts.back().cgroup;
  }
  if (any_cgroup_mount) {
    struct statfs sf;
    plan.cgroup_v2_host = ::statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
    for (Hierarchy& h : TRY(cgroup_hierarchies()))
      if (h.mountpoint.starts_with("/sys/fs/cgroup/")) plan.hierarchies.push_back(std::move(h));
  }

  // As runc: set in the container's uts namespace, new or joined; never in
  // the host's (runc would set it there too).
  if (!spec.hostname.empty()) {
    if (!owns_uts_namespace(plan))
      return fail(spec_error("hostname", "setting a hostname needs a uts namespace other than the host's"));
    plan.hostname = spec.hostname;
  }
  if (!spec.domainname.empty()) {
    if (!owns_uts_namespace(plan))
      return fail(spec_error("domainname", "setting a domain name needs a uts namespace other than the host's"));
    plan.domainname = spec.domainname;
  }
  for (const auto& [key, value] : spec.linux.sysctl) {
    TRYV(check_sysctl_namespaced(key, plan));
    bool bad = key.empty() || key.find('/') != std::string::npos;
    std::string rel = key;
    std::replace(rel.begin(), rel.end(), '.', '/');
    for (const std::string& part : split(rel, '/')) bad = bad || part == "..";
    if (bad || rel.front() == '/' || rel.find("//") != std::string::npos)
      return fail(spec_error("linux.sysctl", "invalid key \"" + key + "\""));
    plan.sysctls.emplace_back("/proc/sys/" + rel, value);
  }
  for (const std::string& p : spec.linux.masked_paths) {
    if (p.empty() || p[0] != '/') return fail(spec_error("linux.maskedPaths", "\"" + p + "\" is not absolute"));
    plan.masked.push_back(p);
  }
  for (const std::string& p : spec.linux.readonly_paths) {
    if (p.empty() || p[0] != '/') return fail(spec_error("linux.readonlyPaths", "\"" + p + "\" is not absolute"));
    plan.readonly_paths.push_back(p);
  }
  if (spec.process.terminal && stdio.console >= 0) {
    // A mount cannot be bound from a descriptor opened in another mount
    // namespace (EINVAL), so /dev/console is bound from the slave's path in
    // the child's copy of our tree; the child checks it is the same device.
    char buf[PATH_MAX];
    std::string link = fd_path(stdio.console);
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n <= 0 || buf[0] != '/') return fail(make_error("find the console", link, "it has no path"));
    plan.console_path.assign(buf, static_cast<size_t>(n));
  }
  return plan;
}

Result<void> write_id_maps(pid_t pid, const LinuxSpec& linux) {
  // The parent is root in the parent user namespace (CAP_SETGID there), so
  // gid_map can be written without "setgroups deny" and the container keeps
  // setgroups(2) for its additional groups.
  for (auto [file, maps] : {std::pair{"uid_map", &linux.uid_mappings}, std::pair{"gid_map", &linux.gid_mappings}}) {
    std::string text;
    for (const IdMapping& m : *maps)
      text += std::to_string(m.container_id) + ' ' + std::to_string(m.host_id) + ' ' + std::to_string(m.size) + '\n';
    std::string path = "/proc/" + std::to_string(pid) + "/" + file;
    UniqueFd fd = TRY(open_path(path, O_WRONLY));
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      return fail(sys_error("write", path));
  }
  return {};
}

// ---------------------------------------------------------------------------
// The child. No exceptions, no iostream; every failure goes to the parent.

struct Child {
  int sync;

  [[noreturn]] void fail(int err, std::string_view op, std::string_view object = {},
                         std::string_view detail = {}) const {
    Report r;
    r.kind = kFailed;
    r.err = err;
    copy_text(r.op, sizeof r.op, op);
    copy_text(r.object, sizeof r.object, object);
    copy_text(r.detail, sizeof r.detail, detail);
    ssize_t ignored = ::send(sync, &r, sizeof r, MSG_NOSIGNAL);
    (void)ignored;
    ::_exit(1);
  }
  [[noreturn]] void fail(const Error& e) const { fail(e.err, e.op, e.object, e.detail); }
  void check(long rc, std::string_view op, std::string_view object = {}) const {
    if (rc < 0) fail(errno, op, object);
  }
  template <class T>
  void check(const Result<T>& r) const {
    if (!r) fail(r.error());
  }
  // Blocks for one byte from the parent; EOF means the parent is gone.
  void wait_for_byte() const {
    char b;
    ssize_t n;
    do {
      n = ::recv(sync, &b, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) ::_exit(0);
  }
};

// The caller's handlers, ignored signals and mask must not leak into the
// container (a monitor that ignores SIGPIPE or blocks SIGCHLD for signalfd).
void reset_signals() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

int open_in_root_raw(int root_fd, const std::string& rel, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, root_fd, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

// An O_PATH descriptor of `rel` inside the rootfs, creating what is missing
// (directories; the last component as a file unless `dir`). Every lookup is
// openat2(RESOLVE_IN_ROOT), so a symlink planted in the image resolves inside
// the rootfs, never onto the host; a dangling symlink is followed by
// rewriting the path through it, and creation happens with *at calls on a
// parent that was itself resolved in the root. Returns -1 with errno.
int make_target(int root_fd, std::string rel, bool dir) {
  for (int hops = 0; hops < 40; ++hops) {
    int fd = open_in_root_raw(root_fd, rel, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;
    std::vector<std::string> parts = split(rel, '/');
    std::string prefix;
    bool rewritten = false;
    for (size_t i = 0; i < parts.size() && !rewritten; ++i) {
      std::string next = prefix.empty() ? parts[i] : prefix + "/" + parts[i];
      int probe = open_in_root_raw(root_fd, next, O_PATH);
      if (probe >= 0) {
        ::close(probe);
        prefix = std::move(next);
        continue;
      }
      if (errno != ENOENT) return -1;
      int parent = open_in_root_raw(root_fd, prefix, O_PATH | O_DIRECTORY);
      if (parent < 0) return -1;
      const char* name = parts[i].c_str();
      struct stat st;
      int rc;
      if (::fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = ::readlinkat(parent, name, buf, sizeof buf);
        ::close(parent);
        if (n < 0 || n == static_cast<ssize_t>(sizeof buf)) return -1;
        std::string link(buf, static_cast<size_t>(n));
        // Relative links continue from the link's directory (`prefix`, which
        // the kernel resolves again); absolute ones from the rootfs.
        rel = link[0] == '/' || prefix.empty() ? link : prefix + "/" + link;
        for (size_t k = i + 1; k < parts.size(); ++k) rel += "/" + parts[k];
        rewritten = true;
        break;
      }
      if (i + 1 == parts.size() && !dir) {
        rc = ::openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (rc >= 0) ::close(rc);
      } else {
        rc = ::mkdirat(parent, name, 0755);
      }
      int saved = errno;
      ::close(parent);
      if (rc < 0 && saved != EEXIST) {
        errno = saved;
        return -1;
      }
      prefix = std::move(next);
    }
  }
  errno = ELOOP;
  return -1;
}

// Flags a remount must keep: a mount made in a user namespace, or over one
// from a more privileged namespace, has locked nosuid/nodev/noexec/atime.
unsigned long kept_flags(int fd) {
  struct statvfs sv;
  if (::fstatvfs(fd, &sv) != 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

// Applies `flags` to the mount now on top of `rel` (a fresh lookup, since the
// descriptor used to mount still points at what is underneath).
void remount_bind(const Child& c, int root_fd, const std::string& rel, unsigned long flags, std::string_view dest) {
  int fd = open_in_root_raw(root_fd, rel, O_PATH);
  c.check(fd, "open mount", dest);
  c.check(::mount(nullptr, fd_path(fd).c_str(), nullptr, MS_BIND | MS_REMOUNT | flags | kept_flags(fd), nullptr),
          "remount", dest);
  ::close(fd);
}

int target_or_fail(const Child& c, int root_fd, const std::string& rel, bool dir, std::string_view dest) {
  int fd = make_target(root_fd, rel, dir);
  c.check(fd, "create mount point", dest);
  return fd;
}

// The group this process is in, in the hierarchy mounted at `h`, read from
// the host's /proc (we have not pivoted yet).
std::optional<std::string> own_cgroup(const Hierarchy& h) {
  auto text = read_file("/proc/self/cgroup");
  if (!text) return std::nullopt;
  std::vector<Hierarchy> one{h};
  for (const std::string& line : split(*text, '\n')) {
    std::string path;
    if (match_cgroup_line(one, line, path)) return path;
  }
  return std::nullopt;
}

// A "cgroup" mount, as docker lays it out: cgroup2 on a v2 host, otherwise a
// tmpfs with one directory per v1 hierarchy. With a cgroup namespace the
// file systems are mounted (their root is the container's group); without,
// the container's own groups are bind-mounted.
void mount_cgroups(const Child& c, const ContainerPlan& plan, const MountPlan& m, int root_fd) {
  auto bind_group = [&](const Hierarchy& h, const std::string& rel) {
    auto own = own_cgroup(h);
    if (!own) return;
    int fd = target_or_fail(c, root_fd, rel, true, m.dest);
    std::string src = path_join(h.mountpoint, *own);
    c.check(::mount(src.c_str(), fd_path(fd).c_str(), nullptr, MS_BIND, nullptr), "mount", m.dest);
    ::close(fd);
    remount_bind(c, root_fd, rel, m.flags, m.dest);
  };
  if (plan.cgroup_v2_host) {
    if (plan.cgroup_ns) {
      int fd = target_or_fail(c, root_fd, m.target, true, m.dest);
      c.check(::mount("cgroup2", fd_path(fd).c_str(), "cgroup2", m.flags, nullptr), "mount cgroup2", m.dest);
      ::close(fd);
    } else {
      bind_group(Hierarchy{"/sys/fs/cgroup", true, {}}, m.target);
    }
    return;
  }
  int fd = target_or_fail(c, root_fd, m.target, true, m.dest);
  c.check(::mount("tmpfs", fd_path(fd).c_str(), "tmpfs", (m.flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=755"),
          "mount tmpfs", m.dest);
  ::close(fd);
  for (const Hierarchy& h : plan.hierarchies) {
    std::string rel = m.target + "/" + h.mountpoint.substr(h.mountpoint.rfind('/') + 1);
    if (!plan.cgroup_ns) {
      bind_group(h, rel);
      continue;
    }
    std::string data;
    for (const std::string& o : h.options) data += (data.empty() ? "" : ",") + o;
    int sub = target_or_fail(c, root_fd, rel, true, m.dest);
    c.check(::mount("cgroup", fd_path(sub).c_str(), h.v2 ? "cgroup2" : "cgroup", m.flags,
                    h.v2 ? nullptr : data.c_str()),
            "mount cgroup", "/" + rel);
    ::close(sub);
  }
  if (m.flags & MS_RDONLY) {
    fd = open_in_root_raw(root_fd, m.target, O_PATH);
    c.check(fd, "open mount", m.dest);
    c.check(::mount(nullptr, fd_path(fd).c_str(), nullptr, MS_REMOUNT | m.flags | kept_flags(fd), "mode=755"),
            "remount", m.dest);
    ::close(fd);
  }
}

void do_mount(const Child& c, const ContainerPlan& plan, const MountPlan& m, int root_fd) {
  if (m.cgroup) {
    mount_cgroups(c, plan, m, root_fd);
  } else {
    int fd = target_or_fail(c, root_fd, m.target, m.dir, m.dest);
    std::string target = fd_path(fd);
    if (m.bind) {
      c.check(::mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | (m.recursive ? MS_REC : 0), nullptr),
              "mount", m.dest);
      ::close(fd);
      // Bind mounts ignore flags on the first call; they need a remount.
      if (m.flags) remount_bind(c, root_fd, m.target, m.flags, m.dest);
    } else {
      const char* source = m.source.empty() ? m.type.c_str() : m.source.c_str();
      c.check(::mount(source, target.c_str(), m.type.c_str(), m.flags, m.data.empty() ? nullptr : m.data.c_str()),
              "mount " + m.type, m.dest);
      ::close(fd);
    }
  }
  for (unsigned long prop : m.propagation) {
    int fd = open_in_root_raw(root_fd, m.target, O_PATH);
    c.check(fd, "open mount", m.dest);
    c.check(::mount(nullptr, fd_path(fd).c_str(), nullptr, prop, nullptr), "set mount propagation", m.dest);
    ::close(fd);
  }
  if (m.attr_set || m.attr_clear) {
    int fd = open_in_root_raw(root_fd, m.target, O_PATH);
    c.check(fd, "open mount", m.dest);
    struct mount_attr attr {};
    attr.attr_set = m.attr_set;
    attr.attr_clr = m.attr_clear;
    c.check(::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr), "set recursive mount options",
            m.dest);
    ::close(fd);
  }
}

void create_devices(const Child& c, const ContainerPlan& plan, int root_fd) {
  int dev = make_target(root_fd, "dev", true);
  c.check(dev, "create", "/dev");
  for (const DeviceNodePlan& d : plan.devices) {
    int dir = d.dir == "dev" ? dev : make_target(root_fd, d.dir, true);
    c.check(dir, "create", "/" + d.dir);
    const char* step = "";
    int err = make_device_node(dir, d, &step);
    if (dir != dev) ::close(dir);
    if (err != 0) c.fail(err, step, "/" + (d.dir.empty() ? d.name : d.dir + "/" + d.name));
  }
  const std::pair<const char*, const char*> links[] = {{"/proc/self/fd", "fd"},
                                                       {"/proc/self/fd/0", "stdin"},
                                                       {"/proc/self/fd/1", "stdout"},
                                                       {"/proc/self/fd/2", "stderr"},
                                                       {"pts/ptmx", "ptmx"}};
  for (const auto& [to, name] : links)
    if (::symlinkat(to, dev, name) != 0 && errno != EEXIST) c.fail(errno, "symlink", std::string("/dev/") + name);
  ::close(dev);
}

void pivot(const Child& c, int root_fd, const std::string& rootfs) {
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching
  // it leaves only the container's tree, with no directory to put it in.
  c.check(::fchdir(root_fd), "chdir", rootfs);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) {
    // The root of a VM's guest is the initramfs, which pivot_root cannot
    // leave (EINVAL). There the new root is moved over "/" instead: the
    // initramfs beneath it is no longer reachable by any path.
    if (errno != EINVAL) c.fail(errno, "pivot_root", rootfs);
    c.check(::mount(".", "/", nullptr, MS_MOVE, nullptr), "move the rootfs over /", rootfs);
    c.check(::chroot("."), "chroot", rootfs);
    c.check(::chdir("/"), "chdir", "/");
    return;
  }
  c.check(::umount2(".", MNT_DETACH), "unmount the old root", rootfs);
  c.check(::chdir("/"), "chdir", "/");
}

void set_readonly_path(const Child& c, const std::string& path) {
  if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    if (errno == ENOENT) return;
    c.fail(errno, "bind mount read-only path", path);
  }
  struct statvfs sv;
  unsigned long keep = 0;
  if (::statvfs(path.c_str(), &sv) == 0) {
    if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
  }
  c.check(::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr),
          "remount read-only", path);
}

void mask_path(const Child& c, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    c.fail(errno, "stat masked path", path);
  }
  int rc = S_ISDIR(st.st_mode) ? ::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, nullptr)
                               : ::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr);
  if (rc != 0 && errno != ENOENT) c.fail(errno, "mask", path);
}

void setup_rootfs(const Child& c, const ContainerPlan& plan) {
  const ProcessSpec& proc = plan.proc.process;
  // Nothing we mount may propagate back to the host. A slave still
  // receives the host's mounts, which is what rootfsPropagation slave asks;
  // shared makes the container's root a peer group of its own (after pivot).
  const bool slave = plan.root_propagation & MS_SLAVE;
  c.check(::mount(nullptr, "/", nullptr, MS_REC | (slave ? MS_SLAVE : MS_PRIVATE), nullptr),
          slave ? "make / a slave" : "make / private");
  // pivot_root needs the new root to be a mount point.
  c.check(::mount(plan.rootfs.c_str(), plan.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr), "bind mount rootfs",
          plan.rootfs);
  int root_fd = ::open(plan.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  c.check(root_fd, "open rootfs", plan.rootfs);
  ::umask(0);  // device nodes are 0666
  for (const MountPlan& m : plan.mounts) do_mount(c, plan, m, root_fd);
  trace("child: mounts made");
  create_devices(c, plan, root_fd);
  if (proc.terminal && plan.proc.stdio.console >= 0) {
    struct stat by_fd, by_path;
    c.check(::fstat(plan.proc.stdio.console, &by_fd), "stat the console");
    c.check(::stat(plan.console_path.c_str(), &by_path), "stat the console", plan.console_path);
    if (by_fd.st_rdev != by_path.st_rdev || !S_ISCHR(by_path.st_mode))
      c.fail(0, "bind mount the console", plan.console_path, "the path no longer names the terminal");
    int console = make_target(root_fd, "dev/console", false);
    c.check(console, "create", "/dev/console");
    c.check(::mount(plan.console_path.c_str(), fd_path(console).c_str(), nullptr, MS_BIND, nullptr),
            "bind mount the console", "/dev/console");
    ::close(console);
  }
  pivot(c, root_fd, plan.rootfs);
  ::close(root_fd);
  ::umask(022);
  trace("child: pivoted");
  if (plan.root_propagation)
    c.check(::mount(nullptr, "/", nullptr, plan.root_propagation, nullptr), "set the propagation of /");

  // From here "/" is the container's root: plain paths cannot leave it.
  struct stat st;
  if (::stat(proc.cwd.c_str(), &st) != 0) c.check(mkdir_p(proc.cwd));  // like docker's WORKDIR
  for (const auto& [file, value] : plan.sysctls) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    c.check(fd, "open sysctl", file);
    if (::write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size()))
      c.fail(errno, "write sysctl", file);
    ::close(fd);
  }
  for (const std::string& p : plan.readonly_paths) set_readonly_path(c, p);
  for (const std::string& p : plan.masked) mask_path(c, p);
  trace("child: paths masked");
  if (plan.readonly_root) {
    int fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    c.check(fd, "open", "/");
    c.check(::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(fd), nullptr),
            "remount / read-only");
    ::close(fd);
  }
}

void loopback_up(const Child& c) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  c.check(s, "socket");
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  c.check(::ioctl(s, SIOCGIFFLAGS, &ifr), "get flags", "lo");
  ifr.ifr_flags |= IFF_UP;
  c.check(::ioctl(s, SIOCSIFFLAGS, &ifr), "bring up", "lo");
  ::close(s);
}

// fds 0-2 from the plan. Sources are first copied above 2 so that any order
// of numbers (the caller's out being our 0, say) survives the dup2s.
// Makes a pty from the container's /dev/ptmx, sends its master over
// `sock` and returns the slave.
int make_console(const Child& c, int sock, const ProcessSpec& proc) {
  int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  c.check(master, "open", "/dev/ptmx");
  int unlock = 0;
  c.check(::ioctl(master, TIOCSPTLCK, &unlock), "unlock the pty");
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  c.check(slave, "open the pty slave");
  if (proc.console_rows && proc.console_cols) {
    // Sized before the engine gets it: the first instruction sees it.
    struct winsize ws {};
    ws.ws_row = static_cast<unsigned short>(proc.console_rows);
    ws.ws_col = static_cast<unsigned short>(proc.console_cols);
    c.check(::ioctl(slave, TIOCSWINSZ, &ws), "set the terminal size");
  }
  c.check(send_fd(sock, master, ""));
  ::close(master);
  ::close(sock);
  return slave;
}

void setup_stdio(const Child& c, const ProcessPlan& p, int devnull) {
  int src[3];
  if (p.process.terminal) {
    int console = p.stdio.console >= 0 ? p.stdio.console : make_console(c, p.stdio.console_socket, p.process);
    c.check(::setsid(), "setsid");
    c.check(::ioctl(console, TIOCSCTTY, 0), "set the controlling terminal");
    src[0] = src[1] = src[2] = console;
  } else {
    src[0] = p.stdio.in >= 0 ? p.stdio.in : devnull;
    src[1] = p.stdio.out >= 0 ? p.stdio.out : devnull;
    src[2] = p.stdio.err >= 0 ? p.stdio.err : devnull;
  }
  int high[3];
  for (int i = 0; i < 3; ++i) {
    high[i] = ::fcntl(src[i], F_DUPFD_CLOEXEC, 3);
    c.check(high[i], "dup stdio");
  }
  for (int i = 0; i < 3; ++i) c.check(::dup2(high[i], i), "dup2 stdio");  // dup2 clears CLOEXEC
}

// Nothing of the host leaks in: every descriptor from 3 up is closed but
// the sync socket (CLOEXEC), the start listener (CLOEXEC) and the ones the
// caller asked to preserve.
void close_other_fds(const ProcessPlan& p, int sync) {
  std::vector<int> keep = {sync};
  if (p.start_listener >= 0) keep.push_back(p.start_listener);
  for (int i = 0; i < p.stdio.preserve_fds; ++i) keep.push_back(3 + i);
  std::sort(keep.begin(), keep.end());
  int next = 3;
  for (int fd : keep) {
    if (fd > next) ::close_range(static_cast<unsigned>(next), static_cast<unsigned>(fd - 1), 0);
    next = std::max(next, fd + 1);
  }
  ::close_range(static_cast<unsigned>(next), ~0u, 0);
}

// Waits for `start` to connect to the listener; from then on failures are
// reported to that connection, and its byte lets the process exec.
Child accept_start(const Child& c, int listener) {
  int conn;
  do {
    conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (conn < 0 && errno == EINTR);
  if (conn < 0) c.fail(errno, "wait for start");
  ::close(listener);
  ::close(c.sync);
  Child started{conn};
  started.wait_for_byte();
  return started;
}

// The last steps, shared by the container's init and exec.
//
// Order of the security steps (as runc does it):
//   rlimits first: raising a hard limit needs CAP_SYS_RESOURCE.
//   seccomp before the user switch when no_new_privs is off: loading a
//     filter without no_new_privs needs CAP_SYS_ADMIN, which the switch
//     drops (the profile must then allow setresuid/capset/prctl, as
//     docker's does).
//   user + capabilities, then no_new_privs (needs no privilege).
//   wait for start, after everything that can fail for a reason in the
//     spec, so "create" reports those errors.
//   seccomp last when no_new_privs is on: then it needs no privilege and as
//     few syscalls as possible run under the filter (only send/recv, execve).
// 0 when one of the candidates is an executable file (any x bit: stat is
// the one call every seccomp profile allows); else EACCES when one exists
// but is not executable, ENOENT when none exists. Finer reasons (ENOEXEC,
// a user without the x bit) are left to execve.
int lookup_executable(const ProcessPlan& p) {
  int err = ENOENT;
  for (const std::string& path : p.candidates) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISREG(st.st_mode) && (st.st_mode & 0111)) return 0;
      err = EACCES;
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return 0;
    }
  }
  return err;
}

// The working directory must lie under the container's root. A descriptor
// of a host directory, leaked by mistake or passed on purpose, given as the
// cwd (/proc/self/fd/N) would let ".." walk the host's tree (runc's
// CVE-2024-21626). The kernel tells: getcwd fails with ENOENT, or names a
// path that does not start with '/', for a directory the root cannot reach.
void check_cwd_inside_root(const Child& c, const std::string& cwd) {
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf) != nullptr ? buf[0] == '/' : errno != ENOENT) return;
  c.fail(0, "chdir to the working directory", cwd,
         "it lies outside the container's root filesystem (a descriptor of a host directory?)");
}

[[noreturn]] void finish_process(Child c, const ProcessPlan& p, bool wait_for_start, int devnull) {
  const ProcessSpec& proc = p.process;
  setup_stdio(c, p, devnull);
  // A non-root user may not reach cwd through directories only root can
  // search; then it is entered after the switch.
  bool in_cwd = ::chdir(proc.cwd.c_str()) == 0;
  if (!in_cwd && errno != EACCES) c.fail(errno, "chdir to the working directory", proc.cwd);
  close_other_fds(p, c.sync);
  ::umask(proc.umask.value_or(022));
  if (proc.oom_score_adj) {
    // Before the user switch: lowering the score needs CAP_SYS_RESOURCE.
    std::string value = std::to_string(*proc.oom_score_adj);
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    c.check(fd, "open", "/proc/self/oom_score_adj");
    if (::write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size()))
      c.fail(errno, "write", "/proc/self/oom_score_adj", "oomScoreAdj " + value);
    ::close(fd);
  }
  c.check(apply_rlimits(proc.rlimits));
  const bool nnp = proc.no_new_privileges;
  if (p.seccomp && !nnp) c.check(load_seccomp(*p.seccomp));
  c.check(switch_user_and_capabilities(proc));
  if (nnp) c.check(set_no_new_privileges());
  if (!in_cwd) c.check(::chdir(proc.cwd.c_str()), "chdir to the working directory", proc.cwd);
  check_cwd_inside_root(c, proc.cwd);
  if (wait_for_start) {
    // As runc does: a command that cannot be found fails create, not start.
    if (int err = lookup_executable(p); err != 0)
      c.fail(err, "exec", proc.args[0], p.searched && err == ENOENT ? "executable file not found in $PATH" : "");
    Report ready;
    ready.kind = kReady;
    c.check(::send(c.sync, &ready, sizeof ready, MSG_NOSIGNAL), "report ready");
    if (p.start_listener >= 0) c = accept_start(c, p.start_listener);
    else c.wait_for_byte();
  }
  if (p.seccomp && nnp) c.check(load_seccomp(*p.seccomp));

  int err = ENOENT;
  for (const std::string& path : p.candidates) {
    ::execve(path.c_str(), p.argv.data(), p.envp.data());
    if (!p.searched) {
      err = errno;
      break;
    }
    if (errno == EACCES) {
      err = EACCES;
    } else if (errno != ENOENT && errno != ENOTDIR) {
      err = errno;
      break;
    }
  }
  c.fail(err, "exec", proc.args[0], p.searched && err == ENOENT ? "executable file not found in $PATH" : "");
}

// Moves `fd` above 2 so setting up stdio cannot clobber it.
int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) ::_exit(1);  // cannot even report
  ::close(fd);
  return moved;
}

struct OpenedJoin {
  int type;
  int fd;
  const std::string* path;
};

// A new user namespace does not change our ids: we are still the host's
// root, unmapped there (the overflow uid), and files we create would fail
// with EOVERFLOW. Becoming uid/gid 0 of the namespace (mapped to hostID)
// keeps every capability in it; host supplementary groups go too.
void become_namespace_root(const Child& c) {
  if (::setgroups(0, nullptr) != 0 && errno != EPERM) c.fail(errno, "setgroups");
  c.check(::setresgid(0, 0, 0), "setresgid", "0 in the user namespace");
  c.check(::setresuid(0, 0, 0), "setresuid", "0 in the user namespace");
}

[[noreturn]] void container_child(const ContainerPlan& plan, const SpawnOptions& opts, int sync, int parent_end,
                                  int devnull, const std::vector<OpenedJoin>& joins) {
  ::close(parent_end);
  // First thing: while this is our code, a container process must not be
  // able to ptrace it or open /proc/PID/exe (the host binary) or its fds.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // The container lives no longer than its monitor: nobody else could record
  // its exit or serve its stdio. (A parent already gone shows as EOF below.)
  if (opts.die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  reset_signals();
  Child c{above_stdio(sync)};
  c.wait_for_byte();  // cgroup joined, id maps written
  trace("child: cloned");
  for (const OpenedJoin& j : joins) c.check(::setns(j.fd, j.type), "join namespace", *j.path);
  if (plan.user_ns || plan.joins_user) become_namespace_root(c);
  if (plan.unshare_flags) c.check(::unshare(plan.unshare_flags), "unshare namespaces");
  if (opts.new_keyring && ::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0 && errno != ENOSYS)
    c.fail(errno, "join a new session keyring");
  // After the parent moved us into the container's group, so that group is
  // the root of the container's cgroup view.
  if (plan.cgroup_ns) c.check(::unshare(CLONE_NEWCGROUP), "unshare cgroup namespace");
  if (!plan.hostname.empty())
    c.check(::sethostname(plan.hostname.data(), plan.hostname.size()), "sethostname", plan.hostname);
  if (!plan.domainname.empty())
    c.check(::setdomainname(plan.domainname.data(), plan.domainname.size()), "setdomainname", plan.domainname);
  if (plan.loopback) loopback_up(c);
  trace("child: namespaces made");
  setup_rootfs(c, plan);
  finish_process(c, plan.proc, opts.wait_for_start, devnull);
}


// Makes the caller non-dumpable while it forks, so the child is never
// ptrace-able or /proc-openable from inside the container, not even between
// fork and its own prctl (it may be born inside the container's pid ns).
class NotDumpable {
 public:
  NotDumpable() : was_(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) { ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }
  ~NotDumpable() {
    if (was_ > 0) ::prctl(PR_SET_DUMPABLE, was_, 0, 0, 0);
  }
  NotDumpable(const NotDumpable&) = delete;
  NotDumpable& operator=(const NotDumpable&) = delete;

 private:
  int was_;
};


// The cgroup.procs files, in every hierarchy mounted here, of the groups `pid` is in.
Result<std::vector<std::string>> cgroup_procs_files(pid_t pid) {
  std::vector<Hierarchy> hs = TRY(cgroup_hierarchies());
  std::string text = TRY(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  std::vector<std::string> files;
  for (const std::string& line : split(text, '\n')) {
    std::string path;
    const Hierarchy* h = match_cgroup_line(hs, line, path);
    if (!h) continue;
    std::string file = path_join(path_join(h->mountpoint, path), "cgroup.procs");
    if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(std::move(file));
  }
  return files;
}

[[noreturn]] void exec_child(const ProcessPlan& plan, int sync, int parent_end, int devnull,
                             const std::vector<OpenedJoin>& joins) {
  ::close(parent_end);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // before we are visible inside the container
  reset_signals();
  Child c{above_stdio(sync)};
  c.wait_for_byte();  // moved into the container's cgroups
  for (const OpenedJoin& j : joins) c.check(::setns(j.fd, j.type), "join namespace", *j.path);
  // Like the container's init, never the caller's keys (runc does the same).
  if (::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0 && errno != ENOSYS)
    c.fail(errno, "join a new session keyring");
  finish_process(c, plan, false, devnull);
}

}  // namespace

Result<Spawned> spawn_container(const RuntimeSpec& spec, const SpawnOptions& opts, const StdioFds& stdio) {
  const std::string what = opts.id.empty() ? spec.root_path : opts.id;
  trace("spawn: planning");
  ContainerPlan plan = TRY(plan_container(spec, stdio));
  trace("spawn: planned");
  if (opts.wait_for_start) plan.proc.start_listener = opts.start_listener;
  plan.proc.point_args();
  UniqueFd devnull = TRY(open_path("/dev/null", O_RDWR));
  std::vector<UniqueFd> join_fds;
  std::vector<OpenedJoin> joins;
  for (const NsJoin& j : plan.joins) {
    join_fds.push_back(TRY(open_path(j.path, O_RDONLY)));
    joins.push_back(OpenedJoin{j.type, join_fds.back().get(), &j.path});
  }
  UniqueFd pid_ns, net_ns;
  if (!plan.pid_ns_path.empty()) pid_ns = TRY(open_path(plan.pid_ns_path, O_RDONLY));
  if (!plan.net_ns_path.empty()) net_ns = TRY(open_path(plan.net_ns_path, O_RDONLY));
  auto [parent_end, child_end] = TRY(sync_socketpair());

  std::optional<Cgroup> cgroup;
  if (!spec.linux.cgroups_path.empty()) cgroup = TRY(Cgroup::create(spec.linux.cgroups_path, spec.linux.resources));
  trace("spawn: cgroup created");
  struct CgroupCleanup {
    std::optional<Cgroup>& cg;
    bool armed = true;
    ~CgroupCleanup() {
      if (armed && cg) (void)cg->destroy();
    }
  } cleanup{cgroup};

  pid_t pid;
  int clone_errno;
  {
    std::optional<NsSwitch> in_pid_ns, in_net_ns;
    if (pid_ns) in_pid_ns.emplace(TRY(NsSwitch::enter(pid_ns.get(), CLONE_NEWPID, plan.pid_ns_path)));
    if (net_ns) in_net_ns.emplace(TRY(NsSwitch::enter(net_ns.get(), CLONE_NEWNET, plan.net_ns_path)));
    NotDumpable not_dumpable;
    // A fork-like clone: the child runs on a copy of our stack, as pid 1 of
    // its new pid namespace, and never returns from container_child.
    pid = static_cast<pid_t>(::syscall(SYS_clone, plan.clone_flags | SIGCHLD, 0, 0, 0, 0));
    clone_errno = errno;
    if (pid == 0)
      container_child(plan, opts, child_end.get(), parent_end.get(), devnull.get(), joins);
  }
  if (pid < 0) return fail(sys_error(clone_errno, "clone", what));
  trace("spawn: cloned");
  ChildGuard child(pid);
  child_end.reset();

  if (cgroup) TRYV(cgroup->add_process(pid));
  if (plan.user_ns) TRYV(write_id_maps(pid, spec.linux));
  if (opts.on_namespaces) TRYV(opts.on_namespaces(pid));
  TRYV(send_byte(parent_end.get(), what));
  Outcome outcome = TRY(await_child(parent_end.get(), what));
  trace("spawn: the child reported");
  if (opts.wait_for_start && outcome != Outcome::ready)
    return fail(make_error("create container", what, "the container process exited during set-up"));

  cleanup.armed = false;
  Spawned spawned;
  spawned.pid = child.release();
  if (opts.wait_for_start) spawned.start_fd = std::move(parent_end);
  return spawned;
}

Result<void> start_container(Spawned& spawned) {
  const std::string what = "pid " + std::to_string(spawned.pid);
  if (!spawned.start_fd) return fail(make_error("start container", what, "it is not waiting to be started"));
  UniqueFd fd = std::move(spawned.start_fd);
  TRYV(send_byte(fd.get(), what));
  auto outcome = await_child(fd.get(), what);
  if (!outcome) {
    // It reported and exited; the caller reaps it as it reaps the init.
    ::kill(spawned.pid, SIGKILL);
    return fail(outcome.error());
  }
  return {};
}

Result<void> start_created(const std::string& socket_path, const std::string& what) {
  UniqueFd sock = TRY(unix_connect(socket_path, SOCK_SEQPACKET, "the created container " + what));
  TRYV(send_byte(sock.get(), what));
  if (auto outcome = await_child(sock.get(), what); !outcome) return fail(outcome.error());
  return {};
}

Result<void> serve_start(int listener, const std::function<Result<void>()>& run) {
  int conn;
  do {
    conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (conn < 0 && errno == EINTR);
  if (conn < 0) return fail(sys_error("wait for start"));
  UniqueFd starter(conn);
  char b;
  ssize_t n;
  do {
    n = ::recv(conn, &b, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return fail(make_error("wait for start", "", "the starter went away"));
  auto r = run();
  if (!r) {
    Report rep;
    rep.kind = kFailed;
    rep.err = r.error().err;
    copy_text(rep.op, sizeof rep.op, r.error().op);
    copy_text(rep.object, sizeof rep.object, r.error().object);
    copy_text(rep.detail, sizeof rep.detail, r.error().detail);
    (void)::send(conn, &rep, sizeof rep, MSG_NOSIGNAL);
  }
  return r;
}

// Design: the exec'd process must be a direct child of the caller (so the
// caller can waitpid it) and must live in the container's pid namespace.
// setns(CLONE_NEWPID) only affects children, so the *caller* enters the pid
// namespace for children for the duration of one fork() and then switches
// back: the forked child is already inside, with no intermediate process.
// The child then joins the other namespaces (user first, mount last, since
// setns(mnt) moves its root and cwd into the container) after the caller has
// moved it into init's cgroups, and finishes like the container's init.
Result<pid_t> exec_in_container(pid_t init_pid, const RuntimeSpec& spec, const ProcessSpec& process,
                                const StdioFds& stdio) {
  const std::string what = "pid " + std::to_string(init_pid);
  // What the exec does not say comes from the container: its capabilities
  // and rlimits; no_new_privs can only be added.
  ProcessSpec merged = process;
  if (!merged.capabilities) merged.capabilities = spec.process.capabilities;
  if (merged.rlimits.empty()) merged.rlimits = spec.process.rlimits;
  merged.no_new_privileges = merged.no_new_privileges || spec.process.no_new_privileges;
  ProcessPlan plan = TRY(plan_process(merged, spec.linux.seccomp, stdio));
  plan.point_args();
  UniqueFd devnull = TRY(open_path("/dev/null", O_RDWR));

  const std::string ns_dir = "/proc/" + std::to_string(init_pid) + "/ns/";
  static const std::pair<const char*, int> kOrder[] = {{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC},
                                                       {"uts", CLONE_NEWUTS},   {"net", CLONE_NEWNET},
                                                       {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}};
  std::vector<std::string> paths;
  paths.reserve(std::size(kOrder));  // `joins` points into it
  std::vector<UniqueFd> join_fds;
  std::vector<OpenedJoin> joins;
  for (const auto& [name, type] : kOrder) {
    std::string path = ns_dir + name;
    // Entering one's own user namespace is EINVAL; the others are cheap to skip too.
    if (same_namespace(path, std::string("/proc/self/ns/") + name)) continue;
    join_fds.push_back(TRY(open_path(path, O_RDONLY)));
    paths.push_back(std::move(path));
    joins.push_back(OpenedJoin{type, join_fds.back().get(), &paths.back()});
  }
  UniqueFd pid_ns;
  if (!same_namespace(ns_dir + "pid", "/proc/self/ns/pid")) pid_ns = TRY(open_path(ns_dir + "pid", O_RDONLY));
  std::vector<std::string> procs_files = TRY(cgroup_procs_files(init_pid));
  auto [parent_end, child_end] = TRY(sync_socketpair());

  pid_t pid;
  int fork_errno;
  {
    std::optional<NsSwitch> in_pid_ns;
    if (pid_ns) in_pid_ns.emplace(TRY(NsSwitch::enter(pid_ns.get(), CLONE_NEWPID, what)));
    NotDumpable not_dumpable;
    pid = ::fork();
    fork_errno = errno;
    if (pid == 0) exec_child(plan, child_end.get(), parent_end.get(), devnull.get(), joins);
  }
  if (pid < 0) return fail(sys_error(fork_errno, "fork", what));
  ChildGuard child(pid);
  child_end.reset();

  const std::string pid_text = std::to_string(pid);
  for (const std::string& file : procs_files) {
    UniqueFd fd = TRY(open_path(file, O_WRONLY));
    if (::write(fd.get(), pid_text.data(), pid_text.size()) != static_cast<ssize_t>(pid_text.size()))
      return fail(sys_error("join cgroup", file));
  }
  TRYV(send_byte(parent_end.get(), what));
  if (auto outcome = await_child(parent_end.get(), what); !outcome) return fail(outcome.error());
  return child.release();
}

}  // namespace isola
