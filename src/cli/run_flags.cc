#include "cli/run_flags.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

#include "common/fs.h"
#include "engine/engine.h"
#include "engine/limit_checks.h"
#include "engine/spec_builder.h"

namespace isola::cli {

namespace {

Error flag_error(const std::string& flag, const std::string& what_and_fix) { return make_error(flag, "", what_and_fix); }

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::optional<int64_t> parse_int(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  size_t start = s[0] == '-' ? 1 : 0;
  if (start == s.size() || s.find_first_not_of("0123456789", start) != std::string::npos) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;  // out of range
  return value;
}

Result<void> parse_add_host(const std::string& text, RunOptions& o) {
  size_t sep = text.find_first_of(":=");
  std::string name = sep == std::string::npos ? "" : text.substr(0, sep);
  std::string addr = sep == std::string::npos ? "" : text.substr(sep + 1);
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  if (name.empty() || (addr != "host-gateway" && !is_ip(addr)))
    return fail(flag_error("--add-host", "invalid value " + quoted(text) +
                                             "; use HOST:IP (an IPv4 or IPv6 address) or HOST:host-gateway"));
  o.add_hosts.emplace_back(name, addr);
  return {};
}

constexpr const char* kUlimitNames[] = {"as",     "core",   "cpu",    "data",       "fsize", "locks",
                                        "memlock", "msgqueue", "nice", "nofile",     "nproc", "rss",
                                        "rtprio", "rttime", "sigpending", "stack"};

Result<UlimitOption> parse_ulimit(const std::string& text) {
  size_t eq = text.find('=');
  std::string name = text.substr(0, eq);
  bool known = std::any_of(std::begin(kUlimitNames), std::end(kUlimitNames), [&](const char* n) { return name == n; });
  if (eq == std::string::npos || !known)
    return fail(flag_error("--ulimit", "invalid value " + quoted(text) +
                                           "; use NAME=SOFT[:HARD] with NAME one of nofile, nproc, core, "
                                           "memlock, stack, cpu, fsize, data, as, locks, msgqueue, nice, rss, "
                                           "rtprio, rttime, sigpending"));
  std::string limits = text.substr(eq + 1);
  size_t colon = limits.find(':');
  auto soft = parse_int(limits.substr(0, colon));
  auto hard = colon == std::string::npos ? soft : parse_int(limits.substr(colon + 1));
  if (!soft || !hard || *soft < -1 || *hard < -1)
    return fail(flag_error("--ulimit", "invalid limit in " + quoted(text) + "; give whole numbers (-1: unlimited)"));
  auto rank = [](int64_t v) { return v == -1 ? INT64_MAX : v; };
  if (rank(*soft) > rank(*hard))
    return fail(flag_error("--ulimit", "the soft limit of " + quoted(text) +
                                           " is above its hard limit; give SOFT <= HARD"));
  return UlimitOption{name, *soft, *hard};
}

// Only sysctls of a namespace the container owns, as docker allows.
Result<void> check_sysctl(const std::string& key, const RunOptions& o) {
  static const std::set<std::string> ipc = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                                            "kernel.sem",    "kernel.shmall", "kernel.shmmax",
                                            "kernel.shmmni", "kernel.shm_rmid_forced"};
  if (ipc.contains(key) || key.starts_with("fs.mqueue.")) return {};
  if (key.starts_with("net.")) {
    if (o.network == "host")
      return fail(flag_error("--sysctl", quoted(key) + " would change the host's network (--network host); "
                                                        "drop it or give the container a network of its own"));
    if (o.network.starts_with("container:"))
      return fail(flag_error("--sysctl", quoted(key) + " would change the network of the container it shares; "
                                                        "set it on that container"));
    return {};
  }
  return fail(flag_error("--sysctl", quoted(key) + " is not namespaced: it would change the host; only net.*, "
                                                    "kernel.msg*, kernel.sem, kernel.shm* and fs.mqueue.* may be set"));
}

Result<DeviceOption> parse_device(const std::string& text, const RunOptions& o) {
  auto parts = std::vector<std::string>{};
  for (size_t pos = 0;;) {
    size_t next = text.find(':', pos);
    parts.push_back(text.substr(pos, next - pos));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  auto is_access = [](const std::string& s) {
    return !s.empty() && s.size() <= 3 && s.find_first_not_of("rwm") == std::string::npos;
  };
  DeviceOption d;
  d.host = parts[0];
  bool ok = parts.size() <= 3;
  if (parts.size() == 2) (is_access(parts[1]) ? d.access : d.container) = parts[1];
  if (parts.size() == 3) d.container = parts[1], d.access = parts[2], ok = is_access(parts[2]);
  if (d.container.empty()) d.container = d.host;
  if (!ok || d.host.empty() || d.host[0] != '/' || d.container[0] != '/')
    return fail(flag_error("--device", "invalid value " + quoted(text) +
                                           "; use /dev/HOST[:/dev/CONTAINER][:PERMISSIONS] with permissions of r, w, m"));
  if (o.isolation == Isolation::vm)
    return fail(flag_error("--device", d.host + " is a host device and a VM has no such device; "
                                                "drop --device or use process isolation"));
  struct stat st;
  if (::stat(d.host.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
    return fail(flag_error("--device", d.host + " is not a device node on this host; give an existing /dev node"));
  return d;
}

Result<void> finish_memory(const ExtraRunArgs& a, RunOptions& o) {
  if (!a.memory_swap.empty()) {
    if (a.memory_swap == "-1") {
      o.memory_swap = -1;
    } else {
      auto swap = parse_size(a.memory_swap);
      if (!swap) return fail(flag_error("--memory-swap", "invalid size " + quoted(a.memory_swap) +
                                                             "; give a size like 1g, or -1 for unlimited swap"));
      o.memory_swap = *swap;
    }
  }
  if (!a.memory_reservation.empty()) {
    auto r = parse_size(a.memory_reservation);
    if (!r || *r == 0)
      return fail(flag_error("--memory-reservation", "invalid size " + quoted(a.memory_reservation) +
                                                         "; give a size like 256m"));
    o.memory_reservation = *r;
  }
  return check_memory_limits(o.memory.value_or(0), o.memory_swap.value_or(0), o.memory_reservation.value_or(0),
                             "--memory-reservation");
}

Result<void> finish_lifecycle(const ExtraRunArgs& a, RunOptions& o) {
  if (!a.stop_signal.empty()) {
    if (!parse_signal(a.stop_signal))
      return fail(flag_error("--stop-signal", "unknown signal " + quoted(a.stop_signal) +
                                                  "; use a name like SIGTERM, SIGINT or a number"));
    o.stop_signal = a.stop_signal;
  }
  if (!a.stop_timeout.empty()) {
    auto t = parse_int(a.stop_timeout);
    if (!t || *t < -1 || *t > 1000000)
      return fail(flag_error("--stop-timeout", "invalid value " + quoted(a.stop_timeout) +
                                                   "; give whole seconds (-1: wait for ever)"));
    o.stop_timeout = static_cast<int>(*t);
  }
  for (const std::string& s : a.attach) {
    std::string lower = s;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != "stdin" && lower != "stdout" && lower != "stderr")
      return fail(flag_error("--attach", "invalid stream " + quoted(s) + "; use stdin, stdout or stderr"));
    o.attach.push_back(lower);
  }
  if (!o.attach.empty() && o.detach)
    return fail(flag_error("--attach", "cannot be combined with -d; drop one of them"));
  o.sig_proxy = a.sig_proxy;
  if (!o.cidfile.empty()) TRYV(check_cidfile(o.cidfile));
  return {};
}

}  // namespace

void add_extra_run_flags(CLI::App* cmd, ExtraRunArgs& a, RunOptions& o) {
  auto list = [&](const char* name, std::vector<std::string>& into, const char* help) {
    cmd->add_option(name, into, help)->allow_extra_args(false);
  };
  list("--add-host", a.add_hosts, "Add a line to /etc/hosts: HOST:IP or HOST:host-gateway");
  list("--dns", o.dns, "Name server for /etc/resolv.conf");
  list("--dns-search", o.dns_search, "Search domain for /etc/resolv.conf");
  list("--dns-option,--dns-opt", o.dns_options, "Option line for /etc/resolv.conf");
  list("--ulimit", a.ulimits, "Resource limit: NAME=SOFT[:HARD] (nofile, nproc, core, ...)");
  list("--group-add", o.group_add, "Add a supplementary group (name or number)");
  list("--sysctl", a.sysctls, "Namespaced kernel parameter: KEY=VALUE (net.*, kernel.shm*, ...)");
  list("--device", a.devices, "Give the container a host device: /dev/HOST[:/dev/CONTAINER][:rwm]");
  list("-a,--attach", a.attach, "Attach to stdin, stdout or stderr (default: stdout and stderr)");
  cmd->add_option("--shm-size", a.shm_size, "Size of /dev/shm (default 64m)");
  cmd->add_option("--cidfile", o.cidfile, "Write the container ID to this file (it must not exist)");
  cmd->add_option("--stop-signal", a.stop_signal, "Signal that stops the container (default: the image's, or SIGTERM)");
  cmd->add_option("--stop-timeout", a.stop_timeout, "Seconds to wait after the stop signal before SIGKILL (default 10)");
  cmd->add_option("--cpuset-cpus", o.cpuset_cpus, "CPUs the container may run on (0-3, 0,1)");
  cmd->add_option("--memory-swap", a.memory_swap, "Memory plus swap limit (-1: unlimited swap)");
  cmd->add_option("--memory-reservation", a.memory_reservation, "Memory soft limit");
  cmd->add_flag("--oom-kill-disable", o.oom_kill_disable, "Do not OOM-kill the container's processes");
  cmd->add_flag("--sig-proxy", a.sig_proxy, "Forward signals to an attached container (default true)");
}

Result<void> finish_extra_run_flags(const ExtraRunArgs& a, RunOptions& o) {
  for (const std::string& h : a.add_hosts) TRYV(parse_add_host(h, o));
  for (const std::string& d : o.dns)
    if (!is_ip(d)) return fail(flag_error("--dns", quoted(d) + " is not an IP address; give a name server's address"));
  bool dns = !o.dns.empty() || !o.dns_search.empty() || !o.dns_options.empty();
  if (o.network.starts_with("container:") && (dns || !o.add_hosts.empty()))
    return fail(flag_error(dns ? "--dns" : "--add-host",
                           "the container shares another container's /etc files (--network container:); "
                           "set them on that container"));
  for (const std::string& u : a.ulimits) {
    UlimitOption ul = TRY(parse_ulimit(u));
    std::erase_if(o.ulimits, [&](const UlimitOption& x) { return x.name == ul.name; });
    o.ulimits.push_back(ul);
  }
  for (const std::string& s : a.sysctls) {
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(flag_error("--sysctl", "invalid value " + quoted(s) + "; use KEY=VALUE"));
    TRYV(check_sysctl(s.substr(0, eq), o));
    o.sysctls[s.substr(0, eq)] = s.substr(eq + 1);
  }
  for (const std::string& g : o.group_add)
    if (g.empty() || g.find(':') != std::string::npos)
      return fail(flag_error("--group-add", "invalid group " + quoted(g) + "; give one group's name or number"));
  if (!a.shm_size.empty()) {
    auto size = parse_size(a.shm_size);
    if (!size || *size <= 0)
      return fail(flag_error("--shm-size", "invalid size " + quoted(a.shm_size) + "; give a size like 64m or 1g"));
    o.shm_size = *size;
  }
  if (!o.cpuset_cpus.empty() && o.isolation == Isolation::vm)
    return fail(flag_error("--cpuset-cpus", "a VM's CPUs are not the host's; size the VM with --cpus instead"));
  if (!o.cpuset_cpus.empty()) TRYV(check_cpuset(o.cpuset_cpus));
  TRYV(finish_memory(a, o));
  for (const std::string& d : a.devices) o.devices.push_back(TRY(parse_device(d, o)));
  return finish_lifecycle(a, o);
}

Result<void> check_cidfile(const std::string& path) {
  if (path_exists(path))
    return fail(flag_error("--cidfile", path + " already exists; remove it, or choose another file"));
  return {};
}

Result<void> write_cidfile(const std::string& path, const std::string& id) {
  auto fd = open_path(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!fd)
    return fail(flag_error("--cidfile", "cannot create " + quoted(path) + ": " + std::strerror(fd.error().err) +
                                            "; give a file in an existing directory"));
  if (::write(fd->get(), id.data(), id.size()) != static_cast<ssize_t>(id.size()))
    return fail(sys_error("write", path).context("--cidfile"));
  return {};
}

}  // namespace isola::cli
