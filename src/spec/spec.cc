// Reading and writing the OCI runtime spec (config.json). The document may
// come from another engine through isola-runtime, so every field is checked
// for its type and a mistake names the field ("process.user.uid"); fields
// isola does not know are ignored, as the OCI spec asks.
#include "spec/spec.h"

#include <limits>
#include <set>
#include <type_traits>

namespace isola {

namespace {

Error field_error(const std::string& field, const char* want) {
  return make_error("parse runtime spec", field, std::string("must be ") + want);
}

std::string sub(const std::string& parent, const char* key) {
  return parent.empty() ? std::string(key) : parent + "." + key;
}

std::string item(const std::string& parent, size_t i) { return parent + "[" + std::to_string(i) + "]"; }

// The member `key` of `obj`, or nullptr when it is absent or null.
const Json* member(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// An optional object member: nullptr when absent, an error when mistyped.
Result<const Json*> object_field(const Json& obj, const char* key, const std::string& field) {
  const Json* v = member(obj, key);
  if (v && !v->is_object()) return fail(field_error(field, "an object"));
  return v;
}

Result<const Json*> array_field(const Json& obj, const char* key, const std::string& field) {
  const Json* v = member(obj, key);
  if (v && !v->is_array()) return fail(field_error(field, "an array"));
  return v;
}

Result<void> read_string(const Json& obj, const char* key, const std::string& field, std::string& out) {
  const Json* v = member(obj, key);
  if (!v) return {};
  if (!v->is_string()) return fail(field_error(field, "a string"));
  out = v->get<std::string>();
  return {};
}

Result<void> read_bool(const Json& obj, const char* key, const std::string& field, bool& out) {
  const Json* v = member(obj, key);
  if (!v) return {};
  if (!v->is_boolean()) return fail(field_error(field, "true or false"));
  out = v->get<bool>();
  return {};
}

// An integer that must fit T; floats, strings and out-of-range values fail.
template <class T>
Result<T> to_integer(const Json& v, const std::string& field) {
  static_assert(std::is_integral_v<T>);
  if (!v.is_number_integer()) return fail(field_error(field, "an integer"));
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return fail(field_error(field, "in range"));
    return static_cast<T>(u);
  }
  int64_t s = v.get<int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (s < 0) return fail(field_error(field, "a non-negative integer"));
    if (static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
      return fail(field_error(field, "in range"));
  } else {
    if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        s > static_cast<int64_t>(std::numeric_limits<T>::max()))
      return fail(field_error(field, "in range"));
  }
  return static_cast<T>(s);
}

template <class T>
Result<void> read_int(const Json& obj, const char* key, const std::string& field, T& out) {
  const Json* v = member(obj, key);
  if (v) out = TRY(to_integer<T>(*v, field));
  return {};
}

template <class T>
Result<void> read_int(const Json& obj, const char* key, const std::string& field, std::optional<T>& out) {
  const Json* v = member(obj, key);
  if (v) out = TRY(to_integer<T>(*v, field));
  return {};
}

Result<void> read_strings(const Json& obj, const char* key, const std::string& field,
                          std::vector<std::string>& out) {
  const Json* arr = TRY(array_field(obj, key, field));
  if (!arr) return {};
  out.clear();
  for (size_t i = 0; i < arr->size(); ++i) {
    const Json& v = (*arr)[i];
    if (!v.is_string()) return fail(field_error(item(field, i), "a string"));
    out.push_back(v.get<std::string>());
  }
  return {};
}

Result<void> read_string_map(const Json& obj, const char* key, const std::string& field,
                             std::map<std::string, std::string>& out) {
  const Json* map = TRY(object_field(obj, key, field));
  if (!map) return {};
  out.clear();
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->is_string()) return fail(field_error(field + "." + it.key(), "a string"));
    out[it.key()] = it->get<std::string>();
  }
  return {};
}

Result<Capabilities> parse_capabilities(const Json& j, const std::string& field) {
  Capabilities caps;
  TRYV(read_strings(j, "bounding", sub(field, "bounding"), caps.bounding));
  TRYV(read_strings(j, "effective", sub(field, "effective"), caps.effective));
  TRYV(read_strings(j, "inheritable", sub(field, "inheritable"), caps.inheritable));
  TRYV(read_strings(j, "permitted", sub(field, "permitted"), caps.permitted));
  TRYV(read_strings(j, "ambient", sub(field, "ambient"), caps.ambient));
  return caps;
}

Result<ProcessSpec> parse_process(const Json& j) {
  ProcessSpec p;
  TRYV(read_bool(j, "terminal", "process.terminal", p.terminal));
  TRYV(read_strings(j, "args", "process.args", p.args));
  if (p.args.empty()) return fail(field_error("process.args", "a non-empty array"));
  TRYV(read_strings(j, "env", "process.env", p.env));
  TRYV(read_string(j, "cwd", "process.cwd", p.cwd));
  if (p.cwd.empty()) p.cwd = "/";
  if (const Json* user = TRY(object_field(j, "user", "process.user"))) {
    TRYV(read_int(*user, "uid", "process.user.uid", p.uid));
    TRYV(read_int(*user, "gid", "process.user.gid", p.gid));
    if (const Json* gids = TRY(array_field(*user, "additionalGids", "process.user.additionalGids"))) {
      for (size_t i = 0; i < gids->size(); ++i)
        p.additional_gids.push_back(TRY(to_integer<gid_t>((*gids)[i], item("process.user.additionalGids", i))));
    }
    std::optional<uint32_t> umask;
    TRYV(read_int(*user, "umask", "process.user.umask", umask));
    if (umask && *umask > 0777) return fail(field_error("process.user.umask", "at most 0777"));
    if (umask) p.umask = static_cast<mode_t>(*umask);
  }
  TRYV(read_int(j, "oomScoreAdj", "process.oomScoreAdj", p.oom_score_adj));
  if (p.oom_score_adj && (*p.oom_score_adj < -1000 || *p.oom_score_adj > 1000))
    return fail(field_error("process.oomScoreAdj", "between -1000 and 1000"));
  if (const Json* size = TRY(object_field(j, "consoleSize", "process.consoleSize"))) {
    TRYV(read_int(*size, "height", "process.consoleSize.height", p.console_rows));
    TRYV(read_int(*size, "width", "process.consoleSize.width", p.console_cols));
  }
  if (const Json* caps = TRY(object_field(j, "capabilities", "process.capabilities")))
    p.capabilities = TRY(parse_capabilities(*caps, "process.capabilities"));
  if (const Json* limits = TRY(array_field(j, "rlimits", "process.rlimits"))) {
    for (size_t i = 0; i < limits->size(); ++i) {
      const Json& l = (*limits)[i];
      std::string f = item("process.rlimits", i);
      if (!l.is_object()) return fail(field_error(f, "an object"));
      Rlimit r;
      TRYV(read_string(l, "type", f + ".type", r.type));
      if (r.type.empty()) return fail(field_error(f + ".type", "a limit name like RLIMIT_NOFILE"));
      TRYV(read_int(l, "hard", f + ".hard", r.hard));
      TRYV(read_int(l, "soft", f + ".soft", r.soft));
      p.rlimits.push_back(std::move(r));
    }
  }
  TRYV(read_bool(j, "noNewPrivileges", "process.noNewPrivileges", p.no_new_privileges));
  return p;
}

Result<std::vector<MountSpec>> parse_mounts(const Json& arr) {
  std::vector<MountSpec> mounts;
  for (size_t i = 0; i < arr.size(); ++i) {
    const Json& m = arr[i];
    std::string f = item("mounts", i);
    if (!m.is_object()) return fail(field_error(f, "an object"));
    MountSpec ms;
    TRYV(read_string(m, "destination", f + ".destination", ms.destination));
    if (ms.destination.empty()) return fail(field_error(f + ".destination", "a path"));
    TRYV(read_string(m, "type", f + ".type", ms.type));
    TRYV(read_string(m, "source", f + ".source", ms.source));
    TRYV(read_strings(m, "options", f + ".options", ms.options));
    mounts.push_back(std::move(ms));
  }
  return mounts;
}

Result<std::vector<IdMapping>> parse_id_mappings(const Json& obj, const char* key, const std::string& field) {
  std::vector<IdMapping> out;
  const Json* arr = TRY(array_field(obj, key, field));
  if (!arr) return out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const Json& m = (*arr)[i];
    std::string f = item(field, i);
    if (!m.is_object()) return fail(field_error(f, "an object"));
    IdMapping id;
    TRYV(read_int(m, "containerID", f + ".containerID", id.container_id));
    TRYV(read_int(m, "hostID", f + ".hostID", id.host_id));
    TRYV(read_int(m, "size", f + ".size", id.size));
    if (id.size == 0) return fail(field_error(f + ".size", "at least 1"));
    out.push_back(id);
  }
  return out;
}

Result<Resources> parse_resources(const Json& j) {
  Resources r;
  if (const Json* mem = TRY(object_field(j, "memory", "linux.resources.memory"))) {
    TRYV(read_int(*mem, "limit", "linux.resources.memory.limit", r.memory_limit));
    TRYV(read_int(*mem, "swap", "linux.resources.memory.swap", r.memory_swap));
    TRYV(read_int(*mem, "reservation", "linux.resources.memory.reservation", r.memory_reservation));
    TRYV(read_int(*mem, "swappiness", "linux.resources.memory.swappiness", r.memory_swappiness));
    if (r.memory_swappiness && *r.memory_swappiness > 100)
      return fail(field_error("linux.resources.memory.swappiness", "between 0 and 100"));
    TRYV(read_bool(*mem, "disableOOMKiller", "linux.resources.memory.disableOOMKiller", r.disable_oom_killer));
  }
  if (const Json* cpu = TRY(object_field(j, "cpu", "linux.resources.cpu"))) {
    TRYV(read_int(*cpu, "shares", "linux.resources.cpu.shares", r.cpu_shares));
    TRYV(read_int(*cpu, "quota", "linux.resources.cpu.quota", r.cpu_quota));
    TRYV(read_int(*cpu, "period", "linux.resources.cpu.period", r.cpu_period));
    TRYV(read_string(*cpu, "cpus", "linux.resources.cpu.cpus", r.cpuset_cpus));
    TRYV(read_string(*cpu, "mems", "linux.resources.cpu.mems", r.cpuset_mems));
  }
  if (const Json* pids = TRY(object_field(j, "pids", "linux.resources.pids")))
    TRYV(read_int(*pids, "limit", "linux.resources.pids.limit", r.pids_limit));
  if (const Json* devs = TRY(array_field(j, "devices", "linux.resources.devices"))) {
    for (size_t i = 0; i < devs->size(); ++i) {
      const Json& d = (*devs)[i];
      std::string f = item("linux.resources.devices", i);
      if (!d.is_object()) return fail(field_error(f, "an object"));
      DeviceRule rule;
      TRYV(read_bool(d, "allow", f + ".allow", rule.allow));
      std::string type = "a";
      TRYV(read_string(d, "type", f + ".type", type));
      if (type != "a" && type != "c" && type != "b") return fail(field_error(f + ".type", "a, c or b"));
      rule.type = type[0];
      TRYV(read_int(d, "major", f + ".major", rule.major));
      TRYV(read_int(d, "minor", f + ".minor", rule.minor));
      TRYV(read_string(d, "access", f + ".access", rule.access));
      if (rule.access.empty() || rule.access.find_first_not_of("rwm") != std::string::npos)
        return fail(field_error(f + ".access", "letters from rwm"));
      r.devices.push_back(std::move(rule));
    }
  }
  return r;
}

Result<SeccompSpec> parse_seccomp(const Json& j) {
  SeccompSpec s;
  TRYV(read_string(j, "defaultAction", "linux.seccomp.defaultAction", s.default_action));
  if (s.default_action.empty())
    return fail(field_error("linux.seccomp.defaultAction", "an action like SCMP_ACT_ERRNO"));
  TRYV(read_int(j, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet", s.default_errno_ret));
  TRYV(read_strings(j, "architectures", "linux.seccomp.architectures", s.architectures));
  const Json* rules = TRY(array_field(j, "syscalls", "linux.seccomp.syscalls"));
  if (!rules) return s;
  for (size_t i = 0; i < rules->size(); ++i) {
    const Json& r = (*rules)[i];
    std::string f = item("linux.seccomp.syscalls", i);
    if (!r.is_object()) return fail(field_error(f, "an object"));
    SeccompRule rule;
    TRYV(read_strings(r, "names", f + ".names", rule.names));
    TRYV(read_string(r, "action", f + ".action", rule.action));
    if (rule.action.empty()) return fail(field_error(f + ".action", "an action like SCMP_ACT_ALLOW"));
    TRYV(read_int(r, "errnoRet", f + ".errnoRet", rule.errno_ret));
    if (const Json* args = TRY(array_field(r, "args", f + ".args"))) {
      for (size_t k = 0; k < args->size(); ++k) {
        const Json& a = (*args)[k];
        std::string af = item(f + ".args", k);
        if (!a.is_object()) return fail(field_error(af, "an object"));
        SeccompRule::Arg arg;
        TRYV(read_int(a, "index", af + ".index", arg.index));
        TRYV(read_int(a, "value", af + ".value", arg.value));
        TRYV(read_int(a, "valueTwo", af + ".valueTwo", arg.value_two));
        TRYV(read_string(a, "op", af + ".op", arg.op));
        if (arg.op.empty()) return fail(field_error(af + ".op", "an operator like SCMP_CMP_EQ"));
        rule.args.push_back(std::move(arg));
      }
    }
    s.syscalls.push_back(std::move(rule));
  }
  return s;
}

Result<std::vector<DeviceNodeSpec>> parse_devices(const Json& arr) {
  std::vector<DeviceNodeSpec> out;
  for (size_t i = 0; i < arr.size(); ++i) {
    const Json& d = arr[i];
    std::string f = item("linux.devices", i);
    if (!d.is_object()) return fail(field_error(f, "an object"));
    DeviceNodeSpec dev;
    TRYV(read_string(d, "path", f + ".path", dev.path));
    if (dev.path.empty() || dev.path[0] != '/') return fail(field_error(f + ".path", "an absolute path"));
    std::string type;
    TRYV(read_string(d, "type", f + ".type", type));
    if (type != "c" && type != "u" && type != "b" && type != "p") return fail(field_error(f + ".type", "c, u, b or p"));
    dev.type = type[0];
    TRYV(read_int(d, "major", f + ".major", dev.major));
    TRYV(read_int(d, "minor", f + ".minor", dev.minor));
    if (dev.major < 0 || dev.minor < 0 || dev.major > 0xfff || dev.minor > 0xfffff)
      return fail(field_error(f, "device numbers in range (major 0-4095, minor 0-1048575)"));
    TRYV(read_int(d, "fileMode", f + ".fileMode", dev.file_mode));
    if (dev.file_mode && *dev.file_mode > 07777) return fail(field_error(f + ".fileMode", "at most 07777"));
    TRYV(read_int(d, "uid", f + ".uid", dev.uid));
    TRYV(read_int(d, "gid", f + ".gid", dev.gid));
    out.push_back(std::move(dev));
  }
  return out;
}

Json devices_json(const std::vector<DeviceNodeSpec>& devices) {
  Json arr = Json::array();
  for (const DeviceNodeSpec& d : devices) {
    Json j = {{"path", d.path}, {"type", std::string(1, d.type)}, {"major", d.major}, {"minor", d.minor}};
    if (d.file_mode) j["fileMode"] = *d.file_mode;
    if (d.uid) j["uid"] = *d.uid;
    if (d.gid) j["gid"] = *d.gid;
    arr.push_back(std::move(j));
  }
  return arr;
}

Result<LinuxSpec> parse_linux(const Json& j) {
  LinuxSpec l;
  if (const Json* nss = TRY(array_field(j, "namespaces", "linux.namespaces"))) {
    static const std::set<std::string> known = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"};
    std::set<std::string> seen;
    for (size_t i = 0; i < nss->size(); ++i) {
      const Json& n = (*nss)[i];
      std::string f = item("linux.namespaces", i);
      if (!n.is_object()) return fail(field_error(f, "an object"));
      NamespaceSpec ns;
      TRYV(read_string(n, "type", f + ".type", ns.type));
      TRYV(read_string(n, "path", f + ".path", ns.path));
      // Silently skipping a namespace would run the container less isolated
      // than asked, so an unknown or repeated one is an error.
      if (!known.contains(ns.type))
        return fail(field_error(f + ".type", "one of pid, network, mount, ipc, uts, user, cgroup"));
      if (!seen.insert(ns.type).second)
        return fail(make_error("parse runtime spec", f + ".type", "namespace \"" + ns.type + "\" is listed twice"));
      l.namespaces.push_back(std::move(ns));
    }
  }
  l.uid_mappings = TRY(parse_id_mappings(j, "uidMappings", "linux.uidMappings"));
  l.gid_mappings = TRY(parse_id_mappings(j, "gidMappings", "linux.gidMappings"));
  if (const Json* res = TRY(object_field(j, "resources", "linux.resources"))) l.resources = TRY(parse_resources(*res));
  TRYV(read_string(j, "cgroupsPath", "linux.cgroupsPath", l.cgroups_path));
  TRYV(read_strings(j, "maskedPaths", "linux.maskedPaths", l.masked_paths));
  TRYV(read_strings(j, "readonlyPaths", "linux.readonlyPaths", l.readonly_paths));
  if (const Json* sc = TRY(object_field(j, "seccomp", "linux.seccomp"))) l.seccomp = TRY(parse_seccomp(*sc));
  TRYV(read_string_map(j, "sysctl", "linux.sysctl", l.sysctl));
  if (const Json* devs = TRY(array_field(j, "devices", "linux.devices"))) l.devices = TRY(parse_devices(*devs));
  TRYV(read_string(j, "rootfsPropagation", "linux.rootfsPropagation", l.rootfs_propagation));
  return l;
}

Json strings_json(const std::vector<std::string>& v) {
  Json arr = Json::array();
  for (const auto& s : v) arr.push_back(s);
  return arr;
}

Json map_json(const std::map<std::string, std::string>& m) {
  Json obj = Json::object();
  for (const auto& [k, v] : m) obj[k] = v;
  return obj;
}

Json id_mappings_json(const std::vector<IdMapping>& maps) {
  Json arr = Json::array();
  for (const auto& m : maps) arr.push_back({{"containerID", m.container_id}, {"hostID", m.host_id}, {"size", m.size}});
  return arr;
}

Json process_json(const ProcessSpec& p) {
  Json j = Json::object();
  j["terminal"] = p.terminal;
  Json user = {{"uid", p.uid}, {"gid", p.gid}};
  if (!p.additional_gids.empty()) user["additionalGids"] = p.additional_gids;
  j["user"] = std::move(user);
  j["args"] = strings_json(p.args);
  j["env"] = strings_json(p.env);
  j["cwd"] = p.cwd;
  if (p.capabilities) {
    const Capabilities& c = *p.capabilities;
    j["capabilities"] = {{"bounding", strings_json(c.bounding)},   {"effective", strings_json(c.effective)},
                         {"inheritable", strings_json(c.inheritable)}, {"permitted", strings_json(c.permitted)},
                         {"ambient", strings_json(c.ambient)}};
  }
  if (!p.rlimits.empty()) {
    Json limits = Json::array();
    for (const auto& r : p.rlimits) limits.push_back({{"type", r.type}, {"hard", r.hard}, {"soft", r.soft}});
    j["rlimits"] = std::move(limits);
  }
  j["noNewPrivileges"] = p.no_new_privileges;
  if (p.umask) j["user"]["umask"] = *p.umask;
  if (p.oom_score_adj) j["oomScoreAdj"] = *p.oom_score_adj;
  if (p.console_rows && p.console_cols) j["consoleSize"] = {{"height", p.console_rows}, {"width", p.console_cols}};
  return j;
}

Json resources_json(const Resources& r) {
  Json j = Json::object();
  Json mem = Json::object();
  if (r.memory_limit) mem["limit"] = *r.memory_limit;
  if (r.memory_swap) mem["swap"] = *r.memory_swap;
  if (r.memory_reservation) mem["reservation"] = *r.memory_reservation;
  if (r.memory_swappiness) mem["swappiness"] = *r.memory_swappiness;
  if (r.disable_oom_killer) mem["disableOOMKiller"] = true;
  if (!mem.empty()) j["memory"] = std::move(mem);
  Json cpu = Json::object();
  if (r.cpu_shares) cpu["shares"] = *r.cpu_shares;
  if (r.cpu_quota) cpu["quota"] = *r.cpu_quota;
  if (r.cpu_period) cpu["period"] = *r.cpu_period;
  if (!r.cpuset_cpus.empty()) cpu["cpus"] = r.cpuset_cpus;
  if (!r.cpuset_mems.empty()) cpu["mems"] = r.cpuset_mems;
  if (!cpu.empty()) j["cpu"] = std::move(cpu);
  if (r.pids_limit) j["pids"] = {{"limit", *r.pids_limit}};
  if (!r.devices.empty()) {
    Json devs = Json::array();
    for (const DeviceRule& d : r.devices) {
      Json dj = {{"allow", d.allow}, {"type", std::string(1, d.type)}, {"access", d.access}};
      if (d.major) dj["major"] = *d.major;
      if (d.minor) dj["minor"] = *d.minor;
      devs.push_back(std::move(dj));
    }
    j["devices"] = std::move(devs);
  }
  return j;
}

Json seccomp_json(const SeccompSpec& s) {
  Json j = {{"defaultAction", s.default_action}};
  if (s.default_errno_ret) j["defaultErrnoRet"] = *s.default_errno_ret;
  if (!s.architectures.empty()) j["architectures"] = strings_json(s.architectures);
  Json rules = Json::array();
  for (const auto& r : s.syscalls) {
    Json rule = {{"names", strings_json(r.names)}, {"action", r.action}};
    if (r.errno_ret) rule["errnoRet"] = *r.errno_ret;
    if (!r.args.empty()) {
      Json args = Json::array();
      for (const auto& a : r.args)
        args.push_back({{"index", a.index}, {"value", a.value}, {"valueTwo", a.value_two}, {"op", a.op}});
      rule["args"] = std::move(args);
    }
    rules.push_back(std::move(rule));
  }
  j["syscalls"] = std::move(rules);
  return j;
}

Json linux_json(const LinuxSpec& l) {
  Json j = Json::object();
  Json nss = Json::array();
  for (const auto& n : l.namespaces) {
    Json ns = {{"type", n.type}};
    if (!n.path.empty()) ns["path"] = n.path;
    nss.push_back(std::move(ns));
  }
  j["namespaces"] = std::move(nss);
  if (!l.uid_mappings.empty()) j["uidMappings"] = id_mappings_json(l.uid_mappings);
  if (!l.gid_mappings.empty()) j["gidMappings"] = id_mappings_json(l.gid_mappings);
  Json res = resources_json(l.resources);
  if (!res.empty()) j["resources"] = std::move(res);
  if (!l.cgroups_path.empty()) j["cgroupsPath"] = l.cgroups_path;
  if (!l.masked_paths.empty()) j["maskedPaths"] = strings_json(l.masked_paths);
  if (!l.readonly_paths.empty()) j["readonlyPaths"] = strings_json(l.readonly_paths);
  if (l.seccomp) j["seccomp"] = seccomp_json(*l.seccomp);
  if (!l.sysctl.empty()) j["sysctl"] = map_json(l.sysctl);
  if (!l.devices.empty()) j["devices"] = devices_json(l.devices);
  if (!l.rootfs_propagation.empty()) j["rootfsPropagation"] = l.rootfs_propagation;
  return j;
}

}  // namespace

Result<ProcessSpec> process_from_json(const Json& j) {
  if (!j.is_object()) return fail(make_error("parse process", "", "the document is not a JSON object"));
  return parse_process(j);
}

Json process_to_json(const ProcessSpec& p) { return process_json(p); }

Result<Resources> resources_from_json(const Json& j) {
  if (!j.is_object()) return fail(make_error("parse resources", "", "the document is not a JSON object"));
  return parse_resources(j);
}

Json resources_to_json(const Resources& r) { return resources_json(r); }

Json seccomp_to_json(const SeccompSpec& s) { return seccomp_json(s); }

Result<RuntimeSpec> RuntimeSpec::from_json(const Json& j) {
  if (!j.is_object()) return fail(make_error("parse runtime spec", "", "the document is not a JSON object"));
  RuntimeSpec spec;
  TRYV(read_string(j, "ociVersion", "ociVersion", spec.oci_version));
  if (const Json* p = TRY(object_field(j, "process", "process"))) spec.process = TRY(parse_process(*p));
  // root.path may be relative to the bundle; the caller that knows the
  // bundle (isola-runtime) makes it absolute.
  const Json* root = TRY(object_field(j, "root", "root"));
  if (!root) return fail(make_error("parse runtime spec", "root", "is missing"));
  TRYV(read_string(*root, "path", "root.path", spec.root_path));
  if (spec.root_path.empty()) return fail(field_error("root.path", "a non-empty path"));
  TRYV(read_bool(*root, "readonly", "root.readonly", spec.root_readonly));
  TRYV(read_string(j, "hostname", "hostname", spec.hostname));
  TRYV(read_string(j, "domainname", "domainname", spec.domainname));
  if (const Json* mounts = TRY(array_field(j, "mounts", "mounts"))) spec.mounts = TRY(parse_mounts(*mounts));
  if (const Json* l = TRY(object_field(j, "linux", "linux"))) spec.linux = TRY(parse_linux(*l));
  TRYV(read_string_map(j, "annotations", "annotations", spec.annotations));
  return spec;
}

Json RuntimeSpec::to_json() const {
  Json j = Json::object();
  j["ociVersion"] = oci_version;
  // A spec without a command is a template (no "process"); writing an empty
  // args array would make the output unreadable by from_json.
  if (!process.args.empty()) j["process"] = process_json(process);
  j["root"] = {{"path", root_path}, {"readonly", root_readonly}};
  if (!hostname.empty()) j["hostname"] = hostname;
  if (!domainname.empty()) j["domainname"] = domainname;
  Json ms = Json::array();
  for (const auto& m : mounts) {
    Json mj = {{"destination", m.destination}};
    if (!m.type.empty()) mj["type"] = m.type;
    if (!m.source.empty()) mj["source"] = m.source;
    if (!m.options.empty()) mj["options"] = strings_json(m.options);
    ms.push_back(std::move(mj));
  }
  j["mounts"] = std::move(ms);
  j["linux"] = linux_json(linux);
  if (!annotations.empty()) j["annotations"] = map_json(annotations);
  return j;
}

}  // namespace isola
