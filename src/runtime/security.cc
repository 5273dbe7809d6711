// Capabilities (raw capget/capset/prctl, no libcap), rlimits, no_new_privs
// and seccomp (libseccomp) for the container's process, plus the defaults
// that match docker's.
#include "runtime/security.h"

#include <cstdlib>

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <optional>

#include "common/fs.h"
#include "common/log.h"

namespace isola {
namespace {

// Indexed by capability number (the kernel ABI; these never change).
constexpr const char* kCapNames[] = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",         "CAP_KILL",          "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",      "CAP_NET_RAW",       "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",   "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",          "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",   "CAP_MAC_ADMIN",     "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",    "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
constexpr int kKnownCaps = static_cast<int>(std::size(kCapNames));

constexpr const char* kDockerCaps[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",  "CAP_FOWNER",           "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",  "CAP_SETFCAP",          "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};

// What follows runs between clone and exec, possibly under a seccomp filter
// already: no allocation on success paths (raw reads into stack buffers).

// Reads a small /proc file into `buf`; returns the length or -1.
ssize_t read_small(const char* path, char* buf, size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, buf, size);
  ::close(fd);
  return n;
}

// The highest capability the running kernel knows, capped to the names we know.
int last_cap() {
  int last = -1;
  char buf[16];
  if (ssize_t n = read_small("/proc/sys/kernel/cap_last_cap", buf, sizeof buf); n > 0) {
    auto [end, ec] = std::from_chars(buf, buf + n, last);
    if (ec != std::errc()) last = -1;
  }
  if (last < 0) {  // no /proc: probe the bounding set
    last = 0;
    while (last + 1 < 64 && ::prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) ++last;
  }
  return std::min(last, kKnownCaps - 1);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

bool is_all(std::string_view name) { return iequals(name, "ALL"); }

// "CAP_NET_ADMIN", "net_admin", "Net_Admin" → 12; -1 when unknown.
int cap_number(std::string_view name) {
  if (name.size() > 4 && iequals(name.substr(0, 4), "CAP_")) name.remove_prefix(4);
  for (int i = 0; i < kKnownCaps; ++i)
    if (iequals(name, std::string_view(kCapNames[i]).substr(4))) return i;
  return -1;
}

Result<uint64_t> cap_mask(const std::vector<std::string>& names, const char* set) {
  uint64_t mask = 0;
  for (const auto& n : names) {
    int c = cap_number(n);
    if (c < 0) return fail(make_error("capabilities", n, std::string("unknown capability in the ") + set + " set"));
    mask |= uint64_t{1} << c;
  }
  return mask;
}


struct CapMasks {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

Result<CapMasks> cap_masks(const Capabilities& c) {
  CapMasks m;
  m.bounding = TRY(cap_mask(c.bounding, "bounding"));
  m.effective = TRY(cap_mask(c.effective, "effective"));
  m.inheritable = TRY(cap_mask(c.inheritable, "inheritable"));
  m.permitted = TRY(cap_mask(c.permitted, "permitted"));
  m.ambient = TRY(cap_mask(c.ambient, "ambient"));
  return m;
}


// In a user namespace whose setgroups is "deny" an empty list is moot.
bool setgroups_denied() {
  char buf[8];
  ssize_t n = read_small("/proc/self/setgroups", buf, sizeof buf);
  return n >= 4 && std::string_view(buf, 4) == "deny";
}

struct RlimitName {
  const char* name;
  int resource;
};
constexpr RlimitName kRlimits[] = {
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_FSIZE", RLIMIT_FSIZE},       {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};


}  // namespace

std::vector<std::string> cap_names(uint64_t mask) {
  std::vector<std::string> out;
  for (int i = 0; i < kKnownCaps; ++i)
    if (mask & (uint64_t{1} << i)) out.emplace_back(kCapNames[i]);
  return out;
}

Result<void> capset_masks(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(inheritable >> (32 * i));
  }
  if (::syscall(SYS_capset, &header, data) != 0) return fail(sys_error("capset", "effective/permitted/inheritable"));
  return {};
}

Capabilities default_capabilities() {
  Capabilities c;
  for (const char* n : kDockerCaps) c.bounding.emplace_back(n);
  c.effective = c.bounding;
  c.permitted = c.bounding;
  return c;
}

// The capabilities this process may still hand out: its bounding set. A
// sandboxed host (or a nested engine) can lack some, and asking for them
// would make capset fail.
static uint64_t own_bounding_set() {
  uint64_t mask = ~uint64_t{0};
  auto status = read_file("/proc/self/status", 1u << 16);
  if (!status) return mask;
  size_t pos = status->find("CapBnd:");
  if (pos == std::string::npos) return mask;
  return std::strtoull(status->c_str() + pos + 7, nullptr, 16);
}

Capabilities all_capabilities() {
  Capabilities c;
  int last = last_cap();
  uint64_t allowed = own_bounding_set();
  for (int i = 0; i <= last; ++i)
    if (allowed & (uint64_t{1} << i)) c.bounding.emplace_back(kCapNames[i]);
  c.effective = c.bounding;
  c.permitted = c.bounding;
  return c;
}

// Docker's rules: --cap-add ALL gives every capability but the dropped ones;
// --cap-drop ALL keeps only the added ones; otherwise drop, then add. Adding
// grows bounding/effective/permitted; dropping also shrinks inheritable and
// ambient.
Result<Capabilities> adjust_capabilities(Capabilities caps, const std::vector<std::string>& add,
                                         const std::vector<std::string>& drop) {
  uint64_t add_mask = 0, drop_mask = 0;
  bool add_all = false, drop_all = false;
  for (const auto& n : add) {
    if (is_all(n)) add_all = true;
    else if (int c = cap_number(n); c >= 0) add_mask |= uint64_t{1} << c;
    else return fail(make_error("--cap-add", n, "unknown capability"));
  }
  for (const auto& n : drop) {
    if (is_all(n)) drop_all = true;
    else if (int c = cap_number(n); c >= 0) drop_mask |= uint64_t{1} << c;
    else return fail(make_error("--cap-drop", n, "unknown capability"));
  }
  // "ALL" is everything this process can still grant (see all_capabilities).
  const uint64_t every = ((uint64_t{2} << last_cap()) - 1) & own_bounding_set();  // last_cap() <= 40
  auto adjust = [&](std::vector<std::string>& set, bool grows) -> Result<void> {
    uint64_t mask = TRY(cap_mask(set, "given"));
    if (add_all && grows) mask = every & ~drop_mask;
    else if (drop_all) mask = grows ? add_mask : 0;
    else mask = (mask & ~drop_mask) | (grows ? add_mask : 0);
    set = cap_names(mask);
    return {};
  };
  TRYV(adjust(caps.bounding, true));
  TRYV(adjust(caps.effective, true));
  TRYV(adjust(caps.permitted, true));
  TRYV(adjust(caps.inheritable, false));
  TRYV(adjust(caps.ambient, false));
  return caps;
}

namespace {
int resource_of(const std::string& type) {
  for (const auto& n : kRlimits)
    if (type == n.name) return n.resource;
  return -1;
}
}  // namespace

Result<void> check_rlimits(const std::vector<Rlimit>& rlimits) {
  for (const auto& r : rlimits) {
    if (resource_of(r.type) < 0) return fail(make_error("rlimit", r.type, "unknown resource limit"));
    if (r.soft > r.hard)
      return fail(make_error("rlimit", r.type, "soft limit " + std::to_string(r.soft) + " exceeds hard limit " +
                                                   std::to_string(r.hard)));
  }
  return {};
}

Result<void> apply_rlimits(const std::vector<Rlimit>& rlimits) {
  // All or nothing: check every entry before changing any limit.
  TRYV(check_rlimits(rlimits));
  for (const auto& r : rlimits) {
    struct rlimit rl{static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
    if (::setrlimit(static_cast<__rlimit_resource_t>(resource_of(r.type)), &rl) != 0)
      return fail(sys_error("setrlimit", r.type));
  }
  return {};
}

Result<void> switch_user_and_capabilities(const ProcessSpec& process) {
  std::optional<CapMasks> caps;
  if (process.capabilities) caps = TRY(cap_masks(*process.capabilities));
  const int last = last_cap();
  const uint64_t known = (uint64_t{2} << last) - 1;

  if (caps) {
    // The bounding set can only shrink, and needs CAP_SETPCAP to: do it while still root.
    for (int c = 0; c <= last; ++c) {
      if ((caps->bounding & (uint64_t{1} << c)) || ::prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;
      if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
        return fail(sys_error("drop from the bounding set", kCapNames[c]));
    }
    // Keep the permitted set across setresuid; capset below decides what stays.
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_KEEPCAPS"));
  }

  const auto& gids = process.additional_gids;
  if (::setgroups(gids.size(), gids.data()) != 0 && !(errno == EPERM && gids.empty() && setgroups_denied()))
    return fail(sys_error("setgroups", "additional gids of uid " + std::to_string(process.uid)));
  if (::setresgid(process.gid, process.gid, process.gid) != 0)
    return fail(sys_error("setresgid", std::to_string(process.gid)));
  if (::setresuid(process.uid, process.uid, process.uid) != 0)
    return fail(sys_error("setresuid", std::to_string(process.uid)));

  if (!caps) return {};  // root keeps everything; the kernel cleared a non-root user's sets
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_KEEPCAPS"));
  uint64_t effective = caps->effective & known, permitted = caps->permitted & known;
  uint64_t inheritable = caps->inheritable & known;
  // The kernel raises an ambient capability only if it is also permitted
  // and inheritable; runc leaves the others out (the front end warns).
  const uint64_t ambient = caps->ambient & permitted & inheritable;
  // Like docker: a non-root user runs without capabilities unless the spec
  // gives ambient ones.
  if (process.uid != 0 && ambient == 0) effective = permitted = inheritable = 0;
  TRYV(capset_masks(effective, permitted, inheritable));
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return fail(sys_error("prctl", "PR_CAP_AMBIENT_CLEAR_ALL"));
  for (int c = 0; c <= last; ++c) {
    if (!(ambient & (uint64_t{1} << c))) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0)
      return fail(sys_error("raise ambient capability", kCapNames[c]));
  }
  return {};
}

std::vector<std::string> unraisable_ambient(const Capabilities& caps) {
  auto has = [](const std::vector<std::string>& set, int c) {
    return std::any_of(set.begin(), set.end(), [&](const std::string& n) { return cap_number(n) == c; });
  };
  std::vector<std::string> out;
  for (const std::string& name : caps.ambient) {
    int c = cap_number(name);
    if (c >= 0 && !(has(caps.permitted, c) && has(caps.inheritable, c))) out.push_back(name);
  }
  return out;
}

Result<void> set_no_new_privileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(sys_error("prctl", "PR_SET_NO_NEW_PRIVS"));
  return {};
}

}  // namespace isola
