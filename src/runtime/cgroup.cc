// cgroups for process isolation. The layout is read from
// /proc/self/mountinfo on every call (the agent mounts cgroupfs after it
// starts, so nothing is cached). A group path is relative to the root of
// each hierarchy, like docker's cgroupfs driver, so every process that opens
// "isola/<id>" finds the same directories whatever cgroup it runs in.
//
// v1 / hybrid: one directory per controller mount (memory, cpu, cpuacct,
// pids, freezer, cpuset; devices, name=systemd and the empty unified v2
// hierarchy best-effort, for tracking only). v2: one directory, with the
// controllers enabled in cgroup.subtree_control of every ancestor.
#include "runtime/cgroup.h"
#include "runtime/device_filter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <string_view>

#include "common/fs.h"
#include "common/log.h"

namespace isola {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// v1 memory.limit_in_bytes reads back as LONG_MAX rounded to a page when
// unlimited; anything this large means "no limit".
constexpr uint64_t kUnlimitedThreshold = uint64_t{1} << 62;

struct Layout {
  CgroupMode mode = CgroupMode::v2;
  std::string unified = "/sys/fs/cgroup";     // cgroup2 mount; empty when none (v1)
  std::map<std::string, std::string> v1;      // "memory", "name=systemd", ... → mount point

  std::string mount_of(const std::string& controller) const {
    if (mode == CgroupMode::v2) return unified;
    auto it = v1.find(controller);
    return it == v1.end() ? std::string() : it->second;
  }
};

struct Hierarchy {
  std::string mount;
  bool optional = false;  // failures to create or join are logged, not fatal
  bool cpuset = false;    // v1 cpuset: cpus/mems must be copied from the parent
  bool v2 = false;        // controllers must be enabled in the ancestors
};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && is_octal(s[i + 1]) && is_octal(s[i + 2]) && is_octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool is_v1_controller(std::string_view opt) {
  static constexpr std::string_view kControllers[] = {"memory", "cpu",     "cpuacct", "cpuset",
                                                      "pids",   "freezer", "devices", "blkio"};
  return std::find(std::begin(kControllers), std::end(kControllers), opt) != std::end(kControllers);
}

// The same hierarchy can be mounted more than once (bind mounts into a
// rootfs): keep the first mount, unless a later one is the canonical one.
void keep_mount(std::string& current, const std::string& candidate) {
  auto canonical = [](const std::string& m) { return m == "/sys/fs/cgroup" || m.starts_with("/sys/fs/cgroup/"); };
  if (current.empty() || (!canonical(current) && canonical(candidate))) current = candidate;
}

Layout load_layout() {
  Layout layout;
  auto text = read_file("/proc/self/mountinfo", 4u << 20);
  if (!text) return layout;  // no /proc: assume pure v2 at the usual place
  std::string unified;
  bool v1_controllers = false;
  for (std::string_view line : split(*text, '\n')) {
    auto fields = split(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), std::string_view("-"));
    if (dash == fields.end() || fields.end() - dash < 4 || dash - fields.begin() < 5) continue;
    std::string_view fstype = dash[1];
    std::string mount_point = unescape_mountinfo(fields[4]);
    if (fstype == "cgroup2") {
      keep_mount(unified, mount_point);
    } else if (fstype == "cgroup") {
      for (std::string_view opt : split(dash[3], ',')) {
        if (opt == "rw" || opt == "ro") continue;
        keep_mount(layout.v1[std::string(opt)], mount_point);
        if (is_v1_controller(opt)) v1_controllers = true;
      }
    }
  }
  if (v1_controllers) {
    layout.mode = unified.empty() ? CgroupMode::v1 : CgroupMode::hybrid;
    layout.unified = unified;
  } else if (!unified.empty()) {
    layout.unified = unified;
  }
  return layout;
}

std::vector<Hierarchy> hierarchies(const Layout& layout) {
  if (layout.mode == CgroupMode::v2) return {Hierarchy{layout.unified, false, false, true}};
  std::vector<Hierarchy> out;
  auto add = [&](const std::string& mount, bool optional) {
    if (mount.empty()) return;
    for (const auto& h : out)
      if (h.mount == mount) return;  // co-mounted controllers (cpu,cpuacct) share a directory
    out.push_back(Hierarchy{mount, optional, mount == layout.mount_of("cpuset"), false});
  };
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer", "cpuset"}) add(layout.mount_of(c), false);
  for (const char* c : {"devices", "name=systemd"}) add(layout.mount_of(c), true);
  if (layout.mode == CgroupMode::hybrid) add(layout.unified, true);
  return out;
}

bool optional_dir(const Layout& layout, const std::string& path, const std::string& dir) {
  for (const auto& h : hierarchies(layout))
    if (h.optional && path_join(h.mount, path) == dir) return true;
  return false;
}

// "isola/<id>" → {"isola", "<id>"}. A leading '/' means the same thing (the
// OCI form); anything that could leave the hierarchy or name an interface
// file is refused.
Result<std::vector<std::string>> split_path(const std::string& path) {
  std::string_view p = path;
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  if (p.empty()) return fail(make_error("cgroup path", path, "must name a group below the root"));
  if (p.size() > 1024) return fail(make_error("cgroup path", path, "too long"));
  std::vector<std::string> out;
  for (std::string_view c : split(p, '/')) {
    if (c.empty() || c == "." || c == "..")
      return fail(make_error("cgroup path", path, "must not contain empty, '.' or '..' components"));
    if (c.size() > 255) return fail(make_error("cgroup path", path, "component longer than 255 bytes"));
    if (c.find_first_of(std::string_view("\0\n", 2)) != std::string_view::npos)
      return fail(make_error("cgroup path", path, "contains a NUL or newline"));
    if (c.starts_with("cgroup."))
      return fail(make_error("cgroup path", path, "component must not start with 'cgroup.'"));
    out.emplace_back(c);
  }
  return out;
}

std::string join_path(const std::vector<std::string>& comps) {
  std::string out;
  for (const auto& c : comps) out = out.empty() ? c : out + "/" + c;
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

Result<std::string> read_value(const std::string& file) {
  return trim(TRY(read_file(file, 1u << 20)));
}

Result<void> write_value(const std::string& file, std::string_view value) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(sys_error("open", file));
  UniqueFd owner(fd);
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    Error e = sys_error("write", file);
    e.detail = "value \"" + std::string(value) + "\"";
    return fail(std::move(e));
  }
  return {};
}

bool file_exists(const std::string& file) { return ::access(file.c_str(), F_OK) == 0; }

Result<uint64_t> parse_u64(std::string_view s, const std::string& file) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    return fail(make_error("parse", file, "not a number: \"" + std::string(s) + "\""));
  return v;
}

// A counter or limit file; a missing file (controller not there) reads as 0,
// "max" and v1's huge "unlimited" values read as 0.
Result<uint64_t> read_number(const std::string& file) {
  auto text = read_value(file);
  if (!text) {
    if (text.error().err == ENOENT) return uint64_t{0};
    return fail(text.error());
  }
  if (*text == "max") return uint64_t{0};
  uint64_t v = TRY(parse_u64(*text, file));
  return v >= kUnlimitedThreshold ? 0 : v;
}

// The value of `key` in a flat-keyed file ("oom_kill 3"); nullopt when the
// key or the file is absent.
Result<std::optional<uint64_t>> read_keyed(const std::string& file, std::string_view key) {
  auto text = read_value(file);
  if (!text) {
    if (text.error().err == ENOENT) return std::optional<uint64_t>();
    return fail(text.error());
  }
  for (std::string_view line : split(*text, '\n')) {
    auto sp = line.find(' ');
    if (sp == std::string_view::npos || line.substr(0, sp) != key) continue;
    return std::optional<uint64_t>(TRY(parse_u64(line.substr(sp + 1), file)));
  }
  return std::optional<uint64_t>();
}

// v2: makes the controllers we limit available to the children of `dir`.
// Best effort: a controller the host does not offer, or a parent with
// processes of its own (EBUSY), surfaces later as a missing limit file.
void enable_controllers(const std::string& dir) {
  auto available = read_value(path_join(dir, "cgroup.controllers"));
  auto enabled = read_value(path_join(dir, "cgroup.subtree_control"));
  if (!available || !enabled) return;
  auto avail = split(*available, ' ');
  auto on = split(*enabled, ' ');
  for (std::string_view c : {"cpu", "cpuset", "io", "memory", "pids"}) {
    if (std::find(avail.begin(), avail.end(), c) == avail.end()) continue;
    if (std::find(on.begin(), on.end(), c) != on.end()) continue;
    auto r = write_value(path_join(dir, "cgroup.subtree_control"), "+" + std::string(c));
    if (!r) log_debug("cgroup: cannot enable {}: {}", c, r.error().message());
  }
}

// v1 cpuset: a new group starts with empty cpus/mems and refuses tasks
// until they are set.
Result<void> inherit_cpuset(const std::string& parent, const std::string& child) {
  for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
    std::string file = path_join(child, f);
    auto mine = read_value(file);
    if (!mine) {
      if (mine.error().err == ENOENT) continue;
      return fail(mine.error());
    }
    if (!mine->empty()) continue;
    std::string theirs = TRY(read_value(path_join(parent, f)));
    TRYV(write_value(file, theirs));
  }
  return {};
}

// Creates the group's directory and any missing parents; true when the leaf
// is new (rather than a group that already existed).
Result<bool> make_group(const Hierarchy& h, const std::vector<std::string>& comps) {
  // A sibling removing an empty shared parent ("isola") between our mkdirs
  // makes the next mkdir fail with ENOENT: start again from the top.
  for (int attempt = 0;; ++attempt) {
    std::string cur = h.mount;
    bool restart = false, created = false;
    for (size_t i = 0; i < comps.size() && !restart; ++i) {
      if (h.v2) enable_controllers(cur);
      std::string next = path_join(cur, comps[i]);
      if (::mkdir(next.c_str(), 0755) != 0) {
        if (errno == ENOENT && i > 0 && attempt < 3) {
          restart = true;
          continue;
        }
        if (errno != EEXIST) return fail(sys_error("mkdir", next));
        if (!is_directory(next)) return fail(make_error("mkdir", next, "exists and is not a cgroup"));
      } else if (i + 1 == comps.size()) {
        created = true;
      }
      if (h.cpuset) TRYV(inherit_cpuset(cur, next));
      cur = std::move(next);
    }
    if (!restart) return created;
  }
}

void collect_procs(const std::string& dir, std::vector<pid_t>& out, Result<void>& status) {
  auto text = read_value(path_join(dir, "cgroup.procs"));
  if (!text) {
    if (text.error().err != ENOENT && status) status = fail(text.error());
    return;
  }
  for (std::string_view line : split(*text, '\n')) {
    if (line.empty()) continue;
    auto v = parse_u64(line, path_join(dir, "cgroup.procs"));
    if (v && *v > 0) out.push_back(static_cast<pid_t>(*v));
  }
  auto entries = list_dir(dir);
  if (!entries) return;
  for (const auto& name : *entries) {
    std::string sub = path_join(dir, name);
    if (is_directory(sub)) collect_procs(sub, out, status);
  }
}

// Removes `dir` and any groups below it, deepest first. EBUSY right after a
// kill is the kernel still tearing tasks down: retry for a while.
Result<void> remove_group(const std::string& dir) {
  if (auto entries = list_dir(dir)) {
    for (const auto& name : *entries) {
      std::string sub = path_join(dir, name);
      if (is_directory(sub)) TRYV(remove_group(sub));
    }
  }
  auto deadline = Clock::now() + 3s;
  useconds_t pause = 1000;
  while (::rmdir(dir.c_str()) != 0) {
    if (errno == ENOENT) return {};
    if (errno != EBUSY || Clock::now() > deadline) return fail(sys_error("rmdir", dir));
    ::usleep(pause);
    pause = std::min<useconds_t>(pause * 2, 50000);
  }
  return {};
}

std::string number(int64_t v) { return std::to_string(v); }

// Docker's mapping of cgroup v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000].
uint64_t shares_to_weight(uint64_t shares) {
  shares = std::clamp<uint64_t>(shares, 2, 262144);
  return 1 + ((shares - 2) * 9999) / 262142;
}

struct MemoryPlan {
  std::optional<int64_t> limit;  // -1 unlimited
  std::optional<int64_t> total;  // memory+swap, -1 unlimited
};

// OCI/runc treat 0 as "not set". Without an explicit memory_swap a memory
// limit also caps swap (total == limit), so --memory really limits memory.
Result<MemoryPlan> plan_memory(const Resources& r) {
  MemoryPlan p;
  if (r.memory_limit && *r.memory_limit != 0) {
    if (*r.memory_limit < -1)
      return fail(make_error("cgroup memory limit", number(*r.memory_limit), "must be > 0 or -1"));
    p.limit = *r.memory_limit;
  }
  if (r.memory_swap && *r.memory_swap != 0) {
    if (*r.memory_swap < -1)
      return fail(make_error("cgroup memory+swap limit", number(*r.memory_swap), "must be > 0 or -1"));
    if (*r.memory_swap != -1 && p.limit && (*p.limit == -1 || *r.memory_swap < *p.limit))
      return fail(make_error("cgroup memory+swap limit", number(*r.memory_swap),
                             "must be at least the memory limit " + number(*p.limit) + " (or -1)"));
    p.total = *r.memory_swap;
  } else if (p.limit) {
    p.total = *p.limit;
  }
  return p;
}

Result<void> check_cpu(const Resources& r) {
  if (r.cpu_quota && *r.cpu_quota < -1)
    return fail(make_error("cgroup cpu quota", number(*r.cpu_quota), "must be > 0 or -1"));
  if (r.cpu_period && (*r.cpu_period == 0 || *r.cpu_period > 1000000))
    return fail(make_error("cgroup cpu period", std::to_string(*r.cpu_period), "must be in 1..1000000 microseconds"));
  if (r.cpu_shares && *r.cpu_shares > 262144)
    return fail(make_error("cgroup cpu shares", std::to_string(*r.cpu_shares), "must be at most 262144"));
  return {};
}

Result<std::string> need_dir(const Layout& layout, const std::string& controller, const std::string& path) {
  std::string mount = layout.mount_of(controller);
  if (mount.empty())
    return fail(make_error("cgroup", path, "the " + controller + " controller is not mounted on this host"));
  return path_join(mount, path);
}

// Writes a limit, explaining the usual reason for a missing file.
Result<void> write_limit(const std::string& dir, const char* file, std::string_view value, const char* controller) {
  std::string full = path_join(dir, file);
  if (!file_exists(full))
    return fail(make_error("cgroup", dir, std::string("the ") + controller +
                                              " controller is not available (no " + file + ")"));
  return write_value(full, value);
}

Result<void> update_v1(const Layout& layout, const std::string& path, const Resources& r) {
  MemoryPlan mem = TRY(plan_memory(r));
  if (mem.limit || mem.total) {
    std::string dir = TRY(need_dir(layout, "memory", path));
    std::string limit_file = path_join(dir, "memory.limit_in_bytes");
    std::string total_file = path_join(dir, "memory.memsw.limit_in_bytes");
    bool swap_accounting = file_exists(total_file);
    if (!swap_accounting && mem.total && r.memory_swap)
      log_debug("cgroup: no swap accounting on this kernel; memory_swap ignored");
    // The kernel keeps limit <= memsw at every step; order the writes so it holds.
    bool total_first = false;
    if (swap_accounting && mem.total) {
      uint64_t cur_limit = TRY(parse_u64(TRY(read_value(limit_file)), limit_file));
      total_first = *mem.total == -1 || static_cast<uint64_t>(*mem.total) >= cur_limit;
    }
    if (total_first) TRYV(write_value(total_file, number(*mem.total)));
    if (mem.limit) TRYV(write_value(limit_file, number(*mem.limit)));
    if (swap_accounting && mem.total && !total_first) TRYV(write_value(total_file, number(*mem.total)));
  }
  if (r.memory_reservation || r.memory_swappiness) {
    std::string dir = TRY(need_dir(layout, "memory", path));
    if (r.memory_reservation)
      TRYV(write_limit(dir, "memory.soft_limit_in_bytes", number(*r.memory_reservation), "memory"));
    if (r.memory_swappiness)
      TRYV(write_limit(dir, "memory.swappiness", std::to_string(*r.memory_swappiness), "memory"));
  }
  if (r.disable_oom_killer)
    TRYV(write_limit(TRY(need_dir(layout, "memory", path)), "memory.oom_control", "1", "memory"));
  if (!r.cpuset_cpus.empty())
    TRYV(write_limit(TRY(need_dir(layout, "cpuset", path)), "cpuset.cpus", r.cpuset_cpus, "cpuset"));
  if (!r.cpuset_mems.empty())
    TRYV(write_limit(TRY(need_dir(layout, "cpuset", path)), "cpuset.mems", r.cpuset_mems, "cpuset"));
  TRYV(check_cpu(r));
  if (r.cpu_shares && *r.cpu_shares != 0) {
    std::string dir = TRY(need_dir(layout, "cpu", path));
    TRYV(write_limit(dir, "cpu.shares", std::to_string(*r.cpu_shares), "cpu"));
  }
  bool quota = r.cpu_quota && *r.cpu_quota != 0;
  if (r.cpu_period || quota) {
    std::string dir = TRY(need_dir(layout, "cpu", path));
    // A new period can be invalid against the old quota (and vice versa):
    // if the period is refused, set the quota first and try again.
    Result<void> period_set;
    if (r.cpu_period) period_set = write_limit(dir, "cpu.cfs_period_us", std::to_string(*r.cpu_period), "cpu");
    if (quota) TRYV(write_limit(dir, "cpu.cfs_quota_us", number(*r.cpu_quota), "cpu"));
    if (!period_set) {
      if (period_set.error().err != EINVAL || !quota) return period_set;
      TRYV(write_limit(dir, "cpu.cfs_period_us", std::to_string(*r.cpu_period), "cpu"));
    }
  }
  if (r.pids_limit) {
    std::string dir = TRY(need_dir(layout, "pids", path));
    TRYV(write_limit(dir, "pids.max", *r.pids_limit > 0 ? number(*r.pids_limit) : "max", "pids"));
  }
  return {};
}

Result<void> update_v2(const std::string& dir, const Resources& r) {
  MemoryPlan mem = TRY(plan_memory(r));
  if (r.memory_swappiness)
    return fail(make_error("cgroup", "memory swappiness", "cgroup v2 has no per-group swappiness"));
  // v2 has no switch for the OOM killer; docker ignores the flag there too.
  if (r.disable_oom_killer) log_debug("cgroup: no way to disable the OOM killer on cgroup v2; ignored");
  if (!r.cpuset_cpus.empty()) TRYV(write_limit(dir, "cpuset.cpus", r.cpuset_cpus, "cpuset"));
  if (!r.cpuset_mems.empty()) TRYV(write_limit(dir, "cpuset.mems", r.cpuset_mems, "cpuset"));
  if (r.memory_reservation)
    TRYV(write_limit(dir, "memory.low", *r.memory_reservation == -1 ? "max" : number(*r.memory_reservation), "memory"));
  if (mem.limit) TRYV(write_limit(dir, "memory.max", *mem.limit == -1 ? "max" : number(*mem.limit), "memory"));
  if (mem.total) {
    // v2 limits swap alone: swap.max = (memory+swap) - memory.
    std::string swap_file = path_join(dir, "memory.swap.max");
    if (!file_exists(swap_file)) {
      log_debug("cgroup: no memory.swap.max in {}; swap limit ignored", dir);
    } else if (*mem.total == -1) {
      TRYV(write_value(swap_file, "max"));
    } else {
      int64_t limit = mem.limit.value_or(-1);
      if (limit == -1) {
        std::string cur = TRY(read_value(path_join(dir, "memory.max")));
        if (cur != "max") limit = static_cast<int64_t>(TRY(parse_u64(cur, path_join(dir, "memory.max"))));
      }
      if (limit == -1)
        return fail(make_error("cgroup", dir, "a memory+swap limit needs a memory limit"));
      TRYV(write_value(swap_file, number(*mem.total - limit)));
    }
  }
  TRYV(check_cpu(r));
  if (r.cpu_shares && *r.cpu_shares != 0)
    TRYV(write_limit(dir, "cpu.weight", std::to_string(shares_to_weight(*r.cpu_shares)), "cpu"));
  bool quota = r.cpu_quota && *r.cpu_quota != 0;
  if (r.cpu_period || quota) {
    std::string q;
    if (quota) {
      q = *r.cpu_quota == -1 ? "max" : number(*r.cpu_quota);
    } else {
      std::string cur = TRY(read_value(path_join(dir, "cpu.max")));
      q = std::string(split(cur, ' ')[0]);
    }
    // "quota" alone keeps the current period.
    TRYV(write_limit(dir, "cpu.max", r.cpu_period ? q + " " + std::to_string(*r.cpu_period) : q, "cpu"));
  }
  if (r.pids_limit) TRYV(write_limit(dir, "pids.max", *r.pids_limit > 0 ? number(*r.pids_limit) : "max", "pids"));
  return {};
}

// Polls `check` until it returns true or the deadline passes.
template <class F>
Result<bool> wait_until(F check, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  useconds_t pause = 500;
  for (;;) {
    bool done = TRY(check());
    if (done) return true;
    if (Clock::now() > deadline) return false;
    ::usleep(pause);
    pause = std::min<useconds_t>(pause * 2, 20000);
  }
}

}  // namespace

CgroupMode detect_cgroup_mode() { return load_layout().mode; }

// Device access, v1 devices controller (docker's default): no device may be
// read or written but the nodes a container gets (null, zero, full, random,
// urandom, tty, console, ptmx, the pts); creating nodes is allowed, as a
// node without access is useless. The spec's rules come first, in order.
Result<void> apply_device_rules(const std::string& dir, const std::vector<DeviceRule>& rules) {
  auto number = [](const std::optional<int64_t>& n) { return n && *n >= 0 ? std::to_string(*n) : std::string("*"); };
  auto write_rule = [&](bool allow, char type, const std::string& numbers, const std::string& access) {
    std::string rule = std::string(1, type) + (type == 'a' ? "" : " " + numbers + " " + access);
    return write_value(path_join(dir, allow ? "devices.allow" : "devices.deny"), rule);
  };
  TRYV(write_rule(false, 'a', "", ""));
  for (const DeviceRule& r : rules) {
    // "a" with all access is the whole list: deny-all is done, allow-all is --privileged.
    if (r.type == 'a' && !r.allow) continue;
    TRYV(write_rule(r.allow, r.type, number(r.major) + ":" + number(r.minor), r.access));
  }
  static const char* const kDefaults[] = {"c *:* m", "b *:* m",  "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                                          "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",
                                          "c 136:* rwm"};
  for (const char* rule : kDefaults) TRYV(write_value(path_join(dir, "devices.allow"), rule));
  return {};
}

Result<Cgroup> Cgroup::create(const std::string& path, const Resources& resources) {
  auto comps = TRY(split_path(path));
  Layout layout = load_layout();
  Cgroup cg;
  cg.path_ = join_path(comps);
  // On failure undo only what this call made: a group that already existed
  // (a container being re-created) may hold processes that are not ours to kill.
  bool existed = false;
  auto undo = [&](Error e) {
    if (!existed) (void)cg.destroy();
    return fail(std::move(e.context("create cgroup '" + cg.path_ + "'")));
  };
  for (const auto& h : hierarchies(layout)) {
    auto made = make_group(h, comps);
    if (!made) {
      if (h.optional) {
        log_debug("cgroup: skipping {}: {}", h.mount, made.error().message());
        continue;
      }
      return undo(std::move(made.error()));
    }
    if (!*made && !h.optional) existed = true;
    cg.dirs_.push_back(path_join(h.mount, cg.path_));
  }
  if (cg.dirs_.empty())
    return fail(make_error("create cgroup", cg.path_, "no cgroup hierarchy is mounted (see /proc/self/mountinfo)"));
  if (auto r = cg.update(resources); !r) return undo(std::move(r.error()));
  if (layout.mode != CgroupMode::v2 && !layout.mount_of("devices").empty()) {
    std::string dir = path_join(layout.mount_of("devices"), cg.path_);
    if (!is_directory(dir))
      return undo(make_error("restrict device access", dir, "the devices cgroup could not be created"));
    if (auto r = apply_device_rules(dir, resources.devices); !r) return undo(std::move(r.error()));
  }
  // The unified hierarchy has no devices controller: an eBPF program takes
  // its place. On a pure v2 host it is the only guard, so failing to attach
  // fails the container; on a hybrid one it backs up the v1 controller.
  if (!layout.unified.empty() && is_directory(path_join(layout.unified, cg.path_))) {
    auto attached = attach_device_filter(path_join(layout.unified, cg.path_), resources.devices);
    if (!attached && layout.mode == CgroupMode::v2)
      return undo(attached.error().context("restrict device access"));
    if (!attached) log_debug("cgroup: no device program on {}: {}", layout.unified, attached.error().message());
  }
  return cg;
}

Result<void> Cgroup::prepare(const std::string& path) {
  auto comps = TRY(split_path(path));
  Layout layout = load_layout();
  for (const auto& h : hierarchies(layout)) {
    auto made = make_group(h, comps);
    if (!made && !h.optional) return fail(made.error().context("prepare cgroup '" + join_path(comps) + "'"));
  }
  return {};
}

Result<Cgroup> Cgroup::open(const std::string& path) {
  auto comps = TRY(split_path(path));
  Layout layout = load_layout();
  Cgroup cg;
  cg.path_ = join_path(comps);
  for (const auto& h : hierarchies(layout)) {
    std::string dir = path_join(h.mount, cg.path_);
    if (is_directory(dir)) cg.dirs_.push_back(std::move(dir));
  }
  if (cg.dirs_.empty()) return fail(sys_error(ENOENT, "open cgroup", cg.path_));
  return cg;
}

Result<void> Cgroup::add_process(pid_t pid) {
  if (pid <= 0) return fail(make_error("add process to cgroup", path_, "invalid pid " + std::to_string(pid)));
  Layout layout = load_layout();
  for (const auto& dir : dirs_) {
    auto r = write_value(path_join(dir, "cgroup.procs"), std::to_string(pid));
    if (!r) {
      if (optional_dir(layout, path_, dir)) {
        log_debug("cgroup: cannot join {}: {}", dir, r.error().message());
        continue;
      }
      return fail(std::move(r.error().context("add process " + std::to_string(pid) + " to cgroup")));
    }
  }
  return {};
}

Result<void> Cgroup::update(const Resources& resources) {
  Layout layout = load_layout();
  if (layout.mode == CgroupMode::v2) return update_v2(path_join(layout.unified, path_), resources);
  return update_v1(layout, path_, resources);
}

Result<void> Cgroup::freeze(bool frozen) {
  Layout layout = load_layout();
  if (layout.mode == CgroupMode::v2) {
    std::string dir = path_join(layout.unified, path_);
    TRYV(write_limit(dir, "cgroup.freeze", frozen ? "1" : "0", "freezer (cgroup.freeze, Linux 5.2+)"));
    std::string events = path_join(dir, "cgroup.events");
    bool done = TRY(wait_until(
        [&]() -> Result<bool> {
          auto v = TRY(read_keyed(events, "frozen"));
          return v && *v == (frozen ? 1u : 0u);
        },
        10s));
    if (!done) return fail(sys_error(ETIMEDOUT, frozen ? "freeze cgroup" : "thaw cgroup", dir));
    return {};
  }
  std::string dir = TRY(need_dir(layout, "freezer", path_));
  std::string state_file = path_join(dir, "freezer.state");
  const char* want = frozen ? "FROZEN" : "THAWED";
  // Writing again while FREEZING retries tasks that were busy (forking).
  bool done = TRY(wait_until(
      [&]() -> Result<bool> {
        TRYV(write_value(state_file, want));
        return TRY(read_value(state_file)) == want;
      },
      10s));
  if (!done) {
    if (frozen) (void)write_value(state_file, "THAWED");
    return fail(sys_error(ETIMEDOUT, frozen ? "freeze cgroup" : "thaw cgroup", dir));
  }
  return {};
}

Result<bool> Cgroup::frozen() const {
  Layout layout = load_layout();
  if (layout.mode == CgroupMode::v2) {
    auto v = TRY(read_keyed(path_join(path_join(layout.unified, path_), "cgroup.events"), "frozen"));
    return v && *v == 1u;
  }
  std::string dir = TRY(need_dir(layout, "freezer", path_));
  return TRY(read_value(path_join(dir, "freezer.state"))) != "THAWED";
}

Result<CgroupStats> Cgroup::stats() const {
  Layout layout = load_layout();
  CgroupStats s;
  if (layout.mode == CgroupMode::v2) {
    std::string dir = path_join(layout.unified, path_);
    uint64_t usage = TRY(read_number(path_join(dir, "memory.current")));
    uint64_t inactive = TRY(read_keyed(path_join(dir, "memory.stat"), "inactive_file")).value_or(0);
    s.memory_usage = usage > inactive ? usage - inactive : usage;
    s.memory_limit = TRY(read_number(path_join(dir, "memory.max")));
    s.cpu_usage_ns = TRY(read_keyed(path_join(dir, "cpu.stat"), "usage_usec")).value_or(0) * 1000;
    s.pids_current = TRY(read_number(path_join(dir, "pids.current")));
    s.pids_limit = TRY(read_number(path_join(dir, "pids.max")));
    return s;
  }
  auto dir_of = [&](const char* controller) {
    std::string mount = layout.mount_of(controller);
    return mount.empty() ? std::string("/nonexistent") : path_join(mount, path_);
  };
  std::string mem = dir_of("memory");
  uint64_t usage = TRY(read_number(path_join(mem, "memory.usage_in_bytes")));
  uint64_t inactive = TRY(read_keyed(path_join(mem, "memory.stat"), "total_inactive_file")).value_or(0);
  s.memory_usage = usage > inactive ? usage - inactive : usage;
  s.memory_limit = TRY(read_number(path_join(mem, "memory.limit_in_bytes")));
  s.cpu_usage_ns = TRY(read_number(path_join(dir_of("cpuacct"), "cpuacct.usage")));
  s.pids_current = TRY(read_number(path_join(dir_of("pids"), "pids.current")));
  s.pids_limit = TRY(read_number(path_join(dir_of("pids"), "pids.max")));
  return s;
}

Result<std::vector<pid_t>> Cgroup::pids() const {
  std::vector<pid_t> out;
  if (dirs_.empty()) return out;
  Result<void> status;
  collect_procs(dirs_.front(), out, status);
  if (!status) return fail(status.error());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<bool> Cgroup::oom_killed() const {
  Layout layout = load_layout();
  if (layout.mode == CgroupMode::v2) {
    auto kills = TRY(read_keyed(path_join(path_join(layout.unified, path_), "memory.events"), "oom_kill"));
    return kills.value_or(0) > 0;
  }
  std::string mount = layout.mount_of("memory");
  if (mount.empty()) return false;
  std::string dir = path_join(mount, path_);
  // oom_kill appeared in Linux 4.13; before it, hitting the limit is the best hint.
  if (auto kills = TRY(read_keyed(path_join(dir, "memory.oom_control"), "oom_kill"))) return *kills > 0;
  return TRY(read_number(path_join(dir, "memory.failcnt"))) > 0;
}

Result<void> Cgroup::kill_all(int sig) {
  if (sig < 0 || sig >= NSIG) return fail(make_error("kill cgroup", path_, "invalid signal " + std::to_string(sig)));
  Layout layout = load_layout();
  std::string kill_file;
  if (layout.mode == CgroupMode::v2) kill_file = path_join(path_join(layout.unified, path_), "cgroup.kill");
  if (sig == SIGKILL && !kill_file.empty() && file_exists(kill_file)) {
    TRYV(write_value(kill_file, "1"));  // the kernel kills the whole subtree, forks included
  } else {
    // v1: freeze first so nothing forks between reading the list and the
    // kill; SIGKILL reaches frozen tasks once thawed.
    bool frozen = false;
    if (sig == SIGKILL && layout.mode != CgroupMode::v2 && !layout.mount_of("freezer").empty() &&
        is_directory(path_join(layout.mount_of("freezer"), path_)))
      frozen = freeze(true).has_value();
    auto pids_now = pids();
    if (pids_now)
      for (pid_t p : *pids_now) ::kill(p, sig);  // ESRCH: already gone
    if (frozen) TRYV(freeze(false));
    if (!pids_now) return fail(pids_now.error());
  }
  if (sig != SIGKILL) return {};
  bool empty = TRY(wait_until(
      [&]() -> Result<bool> {
        auto left = TRY(pids());
        for (pid_t p : left) ::kill(p, SIGKILL);  // children forked meanwhile
        return left.empty();
      },
      10s));
  if (!empty) return fail(sys_error(EBUSY, "kill cgroup", path_));
  return {};
}

Result<void> Cgroup::destroy() {
  bool any = std::any_of(dirs_.begin(), dirs_.end(), [](const std::string& d) { return is_directory(d); });
  if (!any) return {};
  auto left = pids();
  if (left && !left->empty()) {
    if (auto k = kill_all(SIGKILL); !k) log_debug("cgroup: {}", k.error().message());
  }
  Result<void> result;
  for (const auto& dir : dirs_) {
    auto r = remove_group(dir);
    if (!r && result) result = fail(std::move(r.error().context("destroy cgroup '" + path_ + "'")));
  }
  return result;
}

}  // namespace isola
