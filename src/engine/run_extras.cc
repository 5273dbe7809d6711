#include "engine/run_extras.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "common/fs.h"

namespace isola {

void add_extra_options_json(const RunOptions& o, Json& j) {
  Json hosts = Json::array();
  for (const auto& [name, addr] : o.add_hosts) hosts.push_back(name + ":" + addr);
  Json ulimits = Json::array();
  for (const UlimitOption& u : o.ulimits) ulimits.push_back({{"Name", u.name}, {"Soft", u.soft}, {"Hard", u.hard}});
  Json devices = Json::array();
  for (const DeviceOption& d : o.devices)
    devices.push_back({{"PathOnHost", d.host}, {"PathInContainer", d.container}, {"CgroupPermissions", d.access}});
  j["ExtraHosts"] = hosts;
  j["Dns"] = o.dns;
  j["DnsSearch"] = o.dns_search;
  j["DnsOptions"] = o.dns_options;
  j["Ulimits"] = ulimits;
  j["GroupAdd"] = o.group_add;
  j["Sysctls"] = o.sysctls;
  j["Devices"] = devices;
  j["CpusetCpus"] = o.cpuset_cpus;
  j["OomKillDisable"] = o.oom_kill_disable;
  if (o.shm_size) j["ShmSize"] = *o.shm_size;
  if (o.memory_swap) j["MemorySwap"] = *o.memory_swap;
  if (o.memory_reservation) j["MemoryReservation"] = *o.memory_reservation;
  if (o.stop_timeout) j["StopTimeout"] = *o.stop_timeout;
  j["AttachStdin"] = o.attach.empty() ? o.interactive : std::count(o.attach.begin(), o.attach.end(), "stdin") > 0;
  j["AttachStdout"] = o.attach.empty() || std::count(o.attach.begin(), o.attach.end(), "stdout") > 0;
  j["AttachStderr"] = o.attach.empty() || std::count(o.attach.begin(), o.attach.end(), "stderr") > 0;
}

Result<void> resolve_host_gateway(NetworkStore& networks, RunOptions& o) {
  for (auto& [name, addr] : o.add_hosts) {
    if (addr != "host-gateway") continue;
    auto bridge = networks.get(kDefaultNetwork);
    if (!bridge)
      return fail(make_error("--add-host", "", "host-gateway needs the default bridge network, which is missing; "
                                               "give the host's address instead"));
    addr = bridge->gateway.str();
  }
  return {};
}

std::string extra_host_lines(const ContainerRecord& rec) {
  std::string out;
  auto hosts = rec.options.find("ExtraHosts");
  if (hosts == rec.options.end() || !hosts->is_array()) return out;
  for (const Json& h : *hosts) {
    if (!h.is_string()) continue;
    std::string s = h.get<std::string>();
    size_t sep = s.find(':');
    if (sep != std::string::npos) out += s.substr(sep + 1) + "\t" + s.substr(0, sep) + "\n";
  }
  return out;
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

// The base file's lines, less those the flags replace, then the flags'.
std::string custom_resolv_conf(const std::string& base, const RunOptions& o) {
  std::istringstream in(base);
  std::string line, out;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    if ((key == "nameserver" && !o.dns.empty()) || ((key == "search" || key == "domain") && !o.dns_search.empty()) ||
        (key == "options" && !o.dns_options.empty()))
      continue;
    out += line + "\n";
  }
  for (const std::string& d : o.dns) out += "nameserver " + d + "\n";
  // --dns-search . means no search domain at all, as in docker.
  bool no_search = o.dns_search.size() == 1 && o.dns_search[0] == ".";
  if (!o.dns_search.empty() && !no_search) out += "search " + join(o.dns_search) + "\n";
  if (!o.dns_options.empty()) out += "options " + join(o.dns_options) + "\n";
  return out;
}

}  // namespace

Result<void> apply_dns_flags(const std::string& etc_dir, const ContainerRecord& rec, const RunOptions& o,
                             const std::string& network_mode) {
  if (network_mode != "bridge" && !o.add_hosts.empty()) {
    std::string path = path_join(etc_dir, "hosts");
    auto hosts = read_file(path, 1u << 20);
    TRYV(write_file_atomic(path, (hosts ? *hosts : std::string()) + extra_host_lines(rec), 0644));
  }
  if (!o.dns.empty() || !o.dns_search.empty() || !o.dns_options.empty()) {
    std::string path = path_join(etc_dir, "resolv.conf");
    auto resolv = read_file(path, 1u << 20);
    TRYV(write_file_atomic(path, custom_resolv_conf(resolv ? *resolv : std::string(), o), 0644));
  }
  return {};
}

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 11 && s.find_first_not_of("0123456789") == std::string::npos;
}

Result<gid_t> find_group(const std::string& rootfs, const std::string& group) {
  std::string text;
  if (auto root = open_dir(rootfs); root)
    if (auto t = read_regular_in_root(root->get(), "etc/group", 4u << 20); t) text = *t;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, ':');) f.push_back(x);
    if (f.size() >= 3 && (f[0] == group || f[2] == group) && all_digits(f[2]) && f[2].size() <= 9)
      return static_cast<gid_t>(std::stoul(f[2]));
  }
  if (all_digits(group) && group.size() <= 9) return static_cast<gid_t>(std::stoul(group));
  return fail(make_error("--group-add", "", "no group \"" + group + "\" in the image's /etc/group; give a group number"));
}

// Docker creates a missing working directory, owned by the container's root.
Result<void> make_workdir(const std::string& rootfs, const std::string& cwd, uid_t owner) {
  UniqueFd root = TRY(open_dir(rootfs));
  std::string rel;
  std::istringstream in(cwd);
  for (std::string part; std::getline(in, part, '/');) {
    if (part.empty() || part == ".") continue;
    std::string parent = rel;
    rel += (rel.empty() ? "" : "/") + part;
    if (open_in_root(root.get(), rel, O_PATH | O_DIRECTORY)) continue;
    UniqueFd dir = TRY(open_in_root(root.get(), parent, O_PATH | O_DIRECTORY));
    if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
      return fail(sys_error("create the working directory", cwd));
    if (owner != 0 && ::fchownat(dir.get(), part.c_str(), owner, owner, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(sys_error("chown the working directory", cwd));
  }
  return {};
}

void apply_ulimits(ProcessSpec& process, const std::vector<UlimitOption>& ulimits) {
  auto value = [](int64_t v) { return v < 0 ? UINT64_MAX : static_cast<uint64_t>(v); };
  for (const UlimitOption& u : ulimits) {
    std::string type = "RLIMIT_" + u.name;
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::toupper(c); });
    std::erase_if(process.rlimits, [&](const Rlimit& r) { return r.type == type; });
    process.rlimits.push_back({type, value(u.soft), value(u.hard)});
  }
}

Result<void> apply_devices(RuntimeSpec& spec, const std::vector<DeviceOption>& devices) {
  for (const DeviceOption& d : devices) {
    struct stat st;
    if (::stat(d.host.c_str(), &st) != 0) return fail(sys_error("--device", d.host));
    char type = S_ISBLK(st.st_mode) ? 'b' : 'c';
    spec.mounts.push_back(MountSpec{d.container, "bind", d.host, {"bind"}});
    spec.linux.resources.devices.push_back(
        DeviceRule{true, type, static_cast<int64_t>(major(st.st_rdev)), static_cast<int64_t>(minor(st.st_rdev)), d.access});
  }
  return {};
}

}  // namespace

Result<void> apply_extra_flags(RuntimeSpec& spec, const RunOptions& o, const SpecInputs& in) {
  apply_ulimits(spec.process, o.ulimits);
  if (o.shm_size)
    for (MountSpec& m : spec.mounts)
      if (m.destination == "/dev/shm")
        for (std::string& opt : m.options)
          if (opt.starts_with("size=")) opt = "size=" + std::to_string(*o.shm_size);
  for (const std::string& g : o.group_add) {
    gid_t gid = TRY(find_group(in.rootfs, g));
    if (std::find(spec.process.additional_gids.begin(), spec.process.additional_gids.end(), gid) ==
        spec.process.additional_gids.end())
      spec.process.additional_gids.push_back(gid);
  }
  for (const auto& [k, v] : o.sysctls) spec.linux.sysctl[k] = v;
  TRYV(apply_devices(spec, o.devices));
  if (o.memory_swap) spec.linux.resources.memory_swap = *o.memory_swap;
  if (o.memory_reservation) spec.linux.resources.memory_reservation = *o.memory_reservation;
  spec.linux.resources.disable_oom_killer = o.oom_kill_disable;
  spec.linux.resources.cpuset_cpus = o.cpuset_cpus;
  return make_workdir(in.rootfs, spec.process.cwd, in.userns_base);
}

}  // namespace isola
