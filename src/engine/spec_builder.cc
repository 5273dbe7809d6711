#include "engine/spec_builder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "common/fs.h"
#include "engine/container_store.h"
#include "engine/run_extras.h"
#include "engine/volumes.h"
#include "runtime/security.h"

namespace isola {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 11 && s.find_first_not_of("0123456789") == std::string::npos;
}

// Reads a file of the container's rootfs as the container would see it.
std::string read_in_rootfs(const std::string& rootfs, const std::string& rel) {
  auto root = open_dir(rootfs);
  if (!root) return {};
  auto text = read_regular_in_root(root->get(), rel, 4u << 20);
  return text ? *text : std::string();
}

std::vector<std::string> string_list(const Json& config, const char* key) {
  std::vector<std::string> out;
  auto it = config.find(key);
  if (it == config.end() || !it->is_array()) return out;
  for (const Json& v : *it)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

void set_env(std::vector<std::string>& env, const std::string& kv) {
  std::string key = kv.substr(0, kv.find('='));
  for (std::string& e : env)
    if (e.substr(0, e.find('=')) == key) {
      e = kv;
      return;
    }
  env.push_back(kv);
}

bool has_env(const std::vector<std::string>& env, const std::string& key) {
  for (const std::string& e : env)
    if (e.substr(0, e.find('=')) == key) return true;
  return false;
}

Result<std::vector<std::string>> read_env_file(const std::string& path) {
  std::string text = TRY(read_file(path, 1u << 20));
  std::vector<std::string> out;
  for (std::string line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.push_back(line);
  }
  return out;
}

// "-e KEY" takes the value from the caller's environment, as docker does.
std::optional<std::string> expand_env(const std::string& item) {
  if (item.find('=') != std::string::npos) return item;
  const char* v = std::getenv(item.c_str());
  if (!v) return std::nullopt;
  return item + "=" + v;
}

MountSpec mount(std::string dst, std::string type, std::string src, std::vector<std::string> options) {
  return MountSpec{std::move(dst), std::move(type), std::move(src), std::move(options)};
}

std::vector<MountSpec> default_mounts(bool privileged) {
  std::vector<MountSpec> m;
  m.push_back(mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  m.push_back(mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  m.push_back(mount("/dev/pts", "devpts", "devpts",
                    {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  m.push_back(mount("/sys", "sysfs", "sysfs",
                    privileged ? std::vector<std::string>{"nosuid", "noexec", "nodev"}
                               : std::vector<std::string>{"nosuid", "noexec", "nodev", "ro"}));
  m.push_back(mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  m.push_back(mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  return m;
}

}  // namespace

Result<int64_t> parse_size(const std::string& text) {
  if (text.empty()) return fail(make_error("parse size", text, "empty"));
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    return fail(make_error("parse size", text, "expected a number with an optional unit b, k, m or g"));
  }
  std::string unit = text.substr(pos);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'b' && unit.size() == 2) unit.pop_back();
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k") mult = 1024.0;
  else if (unit == "m") mult = 1024.0 * 1024;
  else if (unit == "g") mult = 1024.0 * 1024 * 1024;
  else return fail(make_error("parse size", text, "unknown unit; use b, k, m or g"));
  if (value < 0 || !std::isfinite(value)) return fail(make_error("parse size", text, "must be positive"));
  if (value * mult >= 9.2e18) return fail(make_error("parse size", text, "too large"));
  return static_cast<int64_t>(value * mult);
}

// -v SRC:DST[:MODES], -v NAME:DST[:MODES] or -v DST (an anonymous volume).
// MODES: ro, rw, nocopy, a propagation, z/Z (accepted, no SELinux here).
// Nothing is created here: the engine makes a missing host directory.
Result<VolumeOption> parse_volume(const std::string& text) {
  std::vector<std::string> parts = split(text, ':');
  if (parts.empty() || parts.size() > 3)
    return fail(make_error("-v", text, "expected [/host/path|NAME:]/container/path[:ro|rw]"));
  VolumeOption v;
  if (parts.size() == 1) {
    v.kind = MountKind::volume;
    v.anonymous = true;
    v.destination = parts[0];
  } else {
    v.source = parts[0];
    v.destination = parts[1];
    if (v.source.empty()) return fail(make_error("-v", text, "the source is empty; give a host path or a volume name"));
    if (v.source[0] != '/') {
      v.kind = MountKind::volume;
      TRYV(check_volume_name(v.source));
    }
  }
  if (parts.size() == 3)
    for (const std::string& mode : split(parts[2], ',')) {
      if (mode == "ro") v.readonly = true;
      else if (mode == "rw") v.readonly = false;
      else if (mode == "nocopy" && v.kind == MountKind::volume) v.nocopy = true;
      else if (mode == "z" || mode == "Z") continue;
      else if (v.kind == MountKind::bind && (mode == "private" || mode == "rprivate" || mode == "shared" ||
                                             mode == "rshared" || mode == "slave" || mode == "rslave"))
        v.propagation = mode;
      else
        return fail(make_error("-v", text, "unknown mode '" + mode + "'; use ro or rw (and nocopy for volumes, "
                                           "a propagation such as rshared for host paths)"));
    }
  if (v.destination.empty() || v.destination[0] != '/')
    return fail(make_error("-v", text, "the container path must be absolute"));
  return v;
}

Result<ResolvedUser> resolve_user(const std::string& rootfs, const std::string& spec) {
  ResolvedUser out;
  // No user: root, with root's home and groups from the image.
  std::string user = spec.empty() ? "0" : spec.substr(0, spec.find(':'));
  std::string group = spec.find(':') == std::string::npos ? "" : spec.substr(spec.find(':') + 1);
  std::string username;
  bool found = false;
  std::string passwd = read_in_rootfs(rootfs, "etc/passwd");
  for (const std::string& line : split(passwd, '\n')) {
    auto f = split(line, ':');
    if (f.size() < 7) continue;
    if (f[0] == user || (all_digits(user) && f[2] == user)) {
      if (!all_digits(f[2]) || !all_digits(f[3])) continue;
      out.uid = static_cast<uid_t>(std::stoul(f[2]));
      out.gid = static_cast<gid_t>(std::stoul(f[3]));
      out.home = f[5].empty() ? "/" : f[5];
      username = f[0];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!all_digits(user))
      return fail(make_error("find user", user, "no such user in the image's /etc/passwd; give a numeric uid"));
    out.uid = static_cast<uid_t>(std::stoul(user));
    out.gid = out.uid == 0 ? 0 : out.uid;
    out.home = out.uid == 0 ? "/root" : "/";
  }
  std::string groups = read_in_rootfs(rootfs, "etc/group");
  if (!group.empty()) {
    bool gfound = false;
    for (const std::string& line : split(groups, '\n')) {
      auto f = split(line, ':');
      if (f.size() >= 3 && (f[0] == group || (all_digits(group) && f[2] == group)) && all_digits(f[2])) {
        out.gid = static_cast<gid_t>(std::stoul(f[2]));
        gfound = true;
        break;
      }
    }
    if (!gfound) {
      if (!all_digits(group))
        return fail(make_error("find group", group, "no such group in the image's /etc/group; give a numeric gid"));
      out.gid = static_cast<gid_t>(std::stoul(group));
    }
  }
  // Like docker, the primary group is also a supplementary one.
  out.additional_gids.push_back(out.gid);
  if (!username.empty()) {
    for (const std::string& line : split(groups, '\n')) {
      auto f = split(line, ':');
      if (f.size() < 4 || !all_digits(f[2])) continue;
      for (const std::string& member : split(f[3], ','))
        if (member == username && static_cast<gid_t>(std::stoul(f[2])) != out.gid)
          out.additional_gids.push_back(static_cast<gid_t>(std::stoul(f[2])));
    }
  }
  return out;
}

Result<void> write_etc_files(const std::string& etc_dir, const std::string& hostname, const std::string& network) {
  TRYV(mkdir_p(etc_dir, 0755));
  TRYV(write_file_atomic(path_join(etc_dir, "hostname"), hostname + "\n", 0644));
  if (network == "bridge") return {};  // the network code writes hosts and resolv.conf
  bool host_network = network == "host";
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (host_network) {
    auto host_hosts = read_file("/etc/hosts", 1u << 20);
    if (host_hosts) hosts = *host_hosts;
  } else {
    hosts += "127.0.1.1\t" + hostname + "\n";
  }
  TRYV(write_file_atomic(path_join(etc_dir, "hosts"), hosts, 0644));
  auto resolv = read_file("/etc/resolv.conf", 1u << 20);
  TRYV(write_file_atomic(path_join(etc_dir, "resolv.conf"), resolv ? *resolv : std::string(), 0644));
  return {};
}

Result<RuntimeSpec> build_spec(const RunOptions& opts, const SpecInputs& in) {
  RuntimeSpec spec;
  const Json& cfg = in.image_config;
  spec.root_path = in.rootfs;
  spec.root_readonly = opts.read_only;
  spec.hostname = opts.hostname.empty() ? in.id.substr(0, 12) : opts.hostname;
  bool host_net = opts.network == "host";
  if (host_net && opts.hostname.empty()) {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    spec.hostname = buf;
  }

  // Command: entrypoint + cmd, with docker's override rules.
  std::vector<std::string> entrypoint = string_list(cfg, "Entrypoint");
  std::vector<std::string> cmd = string_list(cfg, "Cmd");
  if (opts.entrypoint) {
    entrypoint = *opts.entrypoint;
    if (opts.command.empty()) cmd.clear();
  }
  if (!opts.command.empty()) cmd = opts.command;
  if (opts.init && !in.init_path.empty()) spec.process.args.push_back("/dev/init"), spec.process.args.push_back("--");
  for (auto& a : entrypoint) spec.process.args.push_back(a);
  for (auto& a : cmd) spec.process.args.push_back(a);
  if (spec.process.args.empty() || (opts.init && spec.process.args.size() == 2))
    return fail(make_error("create container", opts.image, "no command given and the image has none"));

  // Environment: image, then --env-file, then -e.
  spec.process.env = string_list(cfg, "Env");
  if (!has_env(spec.process.env, "PATH"))
    spec.process.env.insert(spec.process.env.begin(),
                            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  set_env(spec.process.env, "HOSTNAME=" + spec.hostname);
  if (opts.tty) set_env(spec.process.env, "TERM=xterm");
  for (const std::string& file : opts.env_files)
    for (const std::string& kv : TRY(read_env_file(file)))
      if (auto e = expand_env(kv)) set_env(spec.process.env, *e);
  for (const std::string& kv : opts.env)
    if (auto e = expand_env(kv)) set_env(spec.process.env, *e);

  std::string user = opts.user.empty() ? json_string_or(cfg, "User") : opts.user;
  ResolvedUser ru = TRY(resolve_user(in.rootfs, user));
  spec.process.uid = ru.uid;
  spec.process.gid = ru.gid;
  spec.process.additional_gids = ru.additional_gids;
  if (!has_env(spec.process.env, "HOME")) set_env(spec.process.env, "HOME=" + ru.home);

  spec.process.cwd = opts.workdir.empty() ? json_string_or(cfg, "WorkingDir", "/") : opts.workdir;
  if (spec.process.cwd.empty()) spec.process.cwd = "/";
  if (spec.process.cwd[0] != '/')
    return fail(make_error("create container", spec.process.cwd, "the working directory must be absolute"));
  spec.process.terminal = opts.tty;
  spec.process.no_new_privileges = opts.no_new_privileges;

  Capabilities caps = opts.privileged ? all_capabilities() : default_capabilities();
  caps = TRY(adjust_capabilities(caps, opts.cap_add, opts.cap_drop));
  spec.process.capabilities = caps;
  spec.process.rlimits.push_back({"RLIMIT_NOFILE", 1024, 1024});

  spec.mounts = default_mounts(opts.privileged);
  for (const char* f : {"hostname", "hosts", "resolv.conf"})
    spec.mounts.push_back(mount(std::string("/etc/") + f, "bind", path_join(in.etc_dir, f), {"rbind", "rprivate"}));
  for (const VolumeOption& v : opts.volumes) {
    if (v.kind == MountKind::tmpfs) {
      std::vector<std::string> o = {"nosuid", "nodev", "noexec"};
      if (v.tmpfs_size) o.push_back("size=" + std::to_string(*v.tmpfs_size));
      if (v.tmpfs_mode) {
        std::ostringstream mode;
        mode << "mode=" << std::oct << *v.tmpfs_mode;
        o.push_back(mode.str());
      }
      if (v.readonly) o.push_back("ro");
      spec.mounts.push_back(mount(v.destination, "tmpfs", "tmpfs", o));
      continue;
    }
    // A volume is a bind mount of its _data directory (so VM isolation
    // shares it as any other bind mount).
    std::vector<std::string> o = {"rbind", v.propagation.empty() ? "rprivate" : v.propagation};
    if (v.readonly) o.push_back("ro");
    spec.mounts.push_back(mount(v.destination, "bind", v.kind == MountKind::volume ? v.host_path : v.source, o));
  }
  for (const std::string& t : opts.tmpfs) {
    std::string dst = t.substr(0, t.find(':'));
    if (dst.empty() || dst[0] != '/') return fail(make_error("parse --tmpfs", t, "the path must be absolute"));
    std::vector<std::string> o = {"nosuid", "nodev", "noexec"};
    if (t.find(':') != std::string::npos)
      for (const std::string& extra : split(t.substr(t.find(':') + 1), ','))
        if (!extra.empty()) o.push_back(extra);
    spec.mounts.push_back(mount(dst, "tmpfs", "tmpfs", o));
  }
  if (opts.init && !in.init_path.empty())
    spec.mounts.push_back(mount("/dev/init", "bind", in.init_path, {"bind", "ro"}));

  for (const char* ns : {"pid", "ipc", "uts", "mount", "cgroup"}) spec.linux.namespaces.push_back({ns, ""});
  if (in.userns_base != 0) {
    spec.linux.namespaces.push_back({"user", ""});
    spec.linux.uid_mappings.push_back({0, in.userns_base, kUsernsSize});
    spec.linux.gid_mappings.push_back({0, in.userns_base, kUsernsSize});
  }
  if (!host_net) spec.linux.namespaces.push_back({"network", ""});
  spec.linux.cgroups_path = "isola/" + in.id;
  if (opts.memory) {
    spec.linux.resources.memory_limit = *opts.memory;
    spec.linux.resources.memory_swap = *opts.memory;
  }
  if (opts.cpus) {
    spec.linux.resources.cpu_period = 100000;
    spec.linux.resources.cpu_quota = static_cast<int64_t>(*opts.cpus * 100000.0);
  }
  if (opts.pids_limit) spec.linux.resources.pids_limit = *opts.pids_limit;
  // Every device may be used with --privileged; otherwise the defaults only.
  if (opts.privileged) spec.linux.resources.devices.push_back(DeviceRule{true, 'a', {}, {}, "rwm"});

  if (!opts.privileged) {
    spec.linux.masked_paths = {"/proc/asound",        "/proc/acpi",          "/proc/kcore",
                               "/proc/keys",          "/proc/latency_stats", "/proc/timer_list",
                               "/proc/timer_stats",   "/proc/sched_debug",   "/proc/scsi",
                               "/sys/firmware",       "/sys/devices/virtual/powercap"};
    spec.linux.readonly_paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
    if (opts.seccomp.empty()) {
      spec.linux.seccomp = default_seccomp_profile();
    } else if (opts.seccomp != "unconfined") {
      std::string text = TRY(read_file(opts.seccomp, 4u << 20));
      Json j = TRY(parse_json(text, "seccomp profile " + opts.seccomp));
      spec.linux.seccomp = TRY(parse_seccomp_profile(j));
    }
  }
  for (const auto& [k, v] : opts.labels) spec.annotations["io.isola.label." + k] = v;
  TRYV(apply_extra_flags(spec, opts, in));
  return spec;
}

}  // namespace isola
