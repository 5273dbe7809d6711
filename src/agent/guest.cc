#include "agent/guest.h"

#include <fcntl.h>
#include <net/if.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "agent/netlink.h"
#include "runtime/cgroup.h"
#include "runtime/device_filter.h"
#include "common/fs.h"
#include "common/log.h"

namespace isola::agent {
namespace {

bool verbose = false;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

struct BasicMount {
  const char* source;
  const char* target;
  const char* type;
  unsigned long flags;
  const char* data;
  bool required;
};

constexpr unsigned long kNoDevSuidExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// In this order: each target's parent is mounted before it.
constexpr BasicMount kBasicMounts[] = {
    {"proc", "/proc", "proc", kNoDevSuidExec, nullptr, true},
    {"sysfs", "/sys", "sysfs", kNoDevSuidExec, nullptr, true},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666,gid=5", true},
    {"shm", "/dev/shm", "tmpfs", kNoDevSuidExec, "mode=1777", false},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", kNoDevSuidExec, nullptr, false},
};

bool is_mount_point(const std::string& path) {
  struct stat here, parent;
  if (::stat(path.c_str(), &here) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return here.st_dev != parent.st_dev || here.st_ino == parent.st_ino;
}

}  // namespace

void set_kmsg_verbose(bool on) { verbose = on; }

// The console's log level (the first number of /proc/sys/kernel/printk):
// the host may boot with loglevel=1, which hides KERN_ERR too.
int console_loglevel() {
  static int level = -1;
  if (level < 0) {
    auto text = read_file("/proc/sys/kernel/printk", 256);
    level = text && !text->empty() && (*text)[0] >= '0' && (*text)[0] <= '9' ? (*text)[0] - '0' : 7;
  }
  return level;
}

void kmsg(std::string_view text, bool error) {
  // KERN_INFO lines stay in the kernel's buffer (dmesg); the console shows
  // KERN_ERR ones unless its log level hides them, and then they are
  // written to it directly.
  bool loud = error || verbose;
  // Outside a guest (tests) the host's kernel log is none of our business.
  static const bool in_guest = ::getpid() == 1;
  if (!in_guest) {
    if (loud) log_line(error ? "error" : "info", text);
    return;
  }
  std::string line = loud ? "<3>" : "<6>";
  line += "isola-agent: ";
  line += text;
  line += '\n';
  static int fd = -2;
  if (fd == -2) fd = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
  bool logged = fd >= 0 && ::write(fd, line.data(), line.size()) >= 0;
  if (fd < 0) fd = -2;  // /dev may not be mounted yet: try again next time
  if (!logged || (loud && console_loglevel() <= 3)) {
    ssize_t ignored = ::write(STDERR_FILENO, line.data() + 3, line.size() - 3);
    (void)ignored;
  }
}

void fix_stdio() {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    int flags = fd == 0 ? O_RDONLY : O_WRONLY;
    int opened = ::open(fd == 0 ? "/dev/null" : "/dev/console", flags | O_NOCTTY);
    if (opened < 0) opened = ::open("/dev/null", O_RDWR | O_NOCTTY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

Result<void> mount_basics() {
  for (const BasicMount& m : kBasicMounts) {
    ::mkdir(m.target, 0755);
    if (is_mount_point(m.target) && std::strcmp(m.target, "/") != 0) continue;
    if (::mount(m.source, m.target, m.type, m.flags, m.data) == 0) continue;
    Error e = sys_error("mount " + std::string(m.type), m.target);
    if (m.required) return fail(std::move(e));
    kmsg(e.message(), true);
  }
  // The runtime creates the container's group below the root; the root's
  // subtree_control decides which controllers the group gets. One at a
  // time, so a controller this kernel lacks does not cost the others.
  for (const char* c : {"+memory", "+pids", "+cpu"}) {
    auto r = write_file_in_place("/sys/fs/cgroup/cgroup.subtree_control", c);
    if (!r) kmsg("enable cgroup controller " + std::string(c + 1) + ": " + r.error().message(), true);
  }
  return {};
}

std::vector<std::string> load_modules(const std::string& dir, std::string_view list) {
  std::vector<std::string> failed;
  auto order = read_file(path_join(dir, std::string(list)), 1u << 20);
  if (!order) {
    if (order.error().err != ENOENT) kmsg("read module order: " + order.error().message(), true);
    return failed;
  }
  size_t start = 0;
  while (start < order->size()) {
    size_t end = order->find('\n', start);
    if (end == std::string::npos) end = order->size();
    std::string name = trim(order->substr(start, end - start));
    start = end + 1;
    if (name.empty() || name[0] == '#') continue;
    std::string file = name.find('/') == std::string::npos ? path_join(dir, name) : name;
    if (!file.ends_with(".ko") && !path_exists(file)) file += ".ko";
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      kmsg(sys_error("open module", file).message(), true);
      failed.push_back(name);
      continue;
    }
    long rc = ::syscall(SYS_finit_module, fd, "", 0);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EEXIST) {
      kmsg(sys_error(err, "load module", file).message(), true);
      failed.push_back(name);
    }
  }
  return failed;
}

bool have_filesystem(std::string_view name) {
  auto text = read_file("/proc/filesystems", 1u << 20);
  if (!text) return false;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    std::string_view line = std::string_view(*text).substr(start, end - start);
    size_t tab = line.rfind('\t');
    if ((tab == std::string_view::npos ? line : line.substr(tab + 1)) == name) return true;
    start = end + 1;
  }
  return false;
}

Result<UniqueFd> open_port(std::string_view name, std::chrono::milliseconds wait) {
  const std::string dir = "/sys/class/virtio-ports";
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::string found;  // the /dev node, once the name matched
  for (;;) {
    if (found.empty()) {
      if (auto entries = list_dir(dir)) {
        for (const std::string& e : *entries) {
          auto port_name = read_file(path_join(path_join(dir, e), "name"), 4096);
          if (port_name && trim(*port_name) == name) found = "/dev/" + e;
        }
      }
    }
    if (!found.empty()) {
      int fd = ::open(found.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
      if (fd >= 0) return UniqueFd(fd);
      if (errno != ENOENT) return fail(sys_error("open", found));
    }
    // Without the driver no port will ever appear: no point in waiting.
    bool driver = path_exists("/sys/module/virtio_console");
    if (!driver || std::chrono::steady_clock::now() >= deadline) {
      if (!found.empty()) return fail(sys_error(ENOENT, "open", found));
      return fail(make_error("find virtio-serial port", std::string(name),
                             "no port of that name under " + dir + " (is virtio_console loaded?)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<void> mount_share(const Share& share) {
  TRYV(check_share(share));
  TRYV(mkdir_p(share.path));
  if (is_mount_point(share.path)) return {};
  if (::mount(share.tag.c_str(), share.path.c_str(), "9p", 0, kNinePOptions) != 0) {
    Error e = sys_error("mount 9p share", share.tag);
    e.detail = "at " + share.path + " (does QEMU export mount_tag=" + share.tag + "?)";
    return fail(std::move(e));
  }
  return {};
}

void loopback_up() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) kmsg(sys_error("bring up", "lo").message(), true);
  }
  ::close(s);
}

bool has_virtio_net() {
  const std::string dir = "/sys/bus/virtio/devices";
  auto entries = list_dir(dir);
  if (!entries) return false;
  for (const std::string& e : *entries) {
    auto id = read_file(path_join(path_join(dir, e), "device"), 64);
    if (id && trim(*id) == "0x0001") return true;
  }
  return false;
}

Result<void> load_network_modules() {
  if (path_exists("/sys/module/virtio_net")) return {};
  if (!path_exists(path_join(kModuleDir, "net-order")))
    return fail(make_error("configure the guest's network", "virtio_net",
                           "the initramfs has no network modules; run scripts/guest-kernel to update the guest cache"));
  std::vector<std::string> failed = load_modules(kModuleDir, "net-order");
  if (!failed.empty())
    return fail(make_error("configure the guest's network", failed.front(), "the module failed to load"));
  return {};
}

void prepare_for_container() {
  if (auto r = Cgroup::prepare(kPreparedCgroup); !r) kmsg(r.error().message(), true);
  // isola's specs have no device rules; podman's and containerd's deny all
  // first. Both are followed by the default list.
  for (const auto& rules : {std::vector<DeviceRule>{}, std::vector<DeviceRule>{DeviceRule{false, 'a', {}, {}, "rwm"}}})
    if (auto r = preload_device_filter(rules); !r) kmsg(r.error().message(), true);
  UniqueFd own(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!own || ::unshare(CLONE_NEWNET) != 0) return kmsg(sys_error("make a network namespace").message(), true);
  loopback_up();
  UniqueFd file(::open(kPreparedNetns, O_CREAT | O_RDONLY | O_CLOEXEC, 0444));
  if (!file || ::mount("/proc/self/ns/net", kPreparedNetns, nullptr, MS_BIND, nullptr) != 0)
    kmsg(sys_error("keep a network namespace", kPreparedNetns).message(), true);
  if (::setns(own.get(), CLONE_NEWNET) != 0) kmsg(sys_error("return to the guest's network namespace").message(), true);
}

void use_prepared(RuntimeSpec& spec) {
  if (!spec.linux.cgroups_path.empty() && is_directory(std::string("/sys/fs/cgroup/") + kPreparedCgroup))
    spec.linux.cgroups_path = kPreparedCgroup;
  if (!is_mount_point(kPreparedNetns)) return;
  for (NamespaceSpec& ns : spec.linux.namespaces)
    if (ns.type == "network" && ns.path.empty()) ns.path = kPreparedNetns;
}

Result<void> set_up_network(const NicConfig& nic) {
  int64_t t0 = boottime_ms();
  TRYV(load_network_modules());
  int64_t t1 = boottime_ms();
  // The driver probes the device as it loads; the wait covers a slow one.
  TRYV(configure_nic(nic, std::chrono::seconds(2)));
  kmsg("network: modules " + std::to_string(t1 - t0) + " ms, eth0 configured in " +
       std::to_string(boottime_ms() - t1) + " ms");
  return {};
}

Result<void> set_clock(int64_t realtime_ns) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(realtime_ns / 1000000000);
  ts.tv_nsec = static_cast<long>(realtime_ns % 1000000000);
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return fail(sys_error("set the clock"));
  return {};
}

Result<void> reseed_random(std::string_view bytes) {
  std::vector<uint32_t> buf(sizeof(rand_pool_info) / sizeof(uint32_t) + (bytes.size() + 3) / 4);
  auto* info = reinterpret_cast<rand_pool_info*>(buf.data());
  info->entropy_count = static_cast<int>(bytes.size() * 8);
  info->buf_size = static_cast<int>(bytes.size());
  std::memcpy(info->buf, bytes.data(), bytes.size());
  UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!fd) return fail(sys_error("open", "/dev/urandom"));
  if (::ioctl(fd.get(), RNDADDENTROPY, info) != 0) return fail(sys_error("add entropy", "/dev/urandom"));
  if (::ioctl(fd.get(), RNDRESEEDCRNG) != 0) return fail(sys_error("reseed", "/dev/urandom"));
  return {};
}

int64_t boottime_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string kernel_release() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

bool kernel_cmdline_has(std::string_view word) {
  auto text = read_file("/proc/cmdline", 64 * 1024);
  if (!text) return false;
  size_t start = 0;
  std::string_view s = *text;
  while (start < s.size()) {
    size_t end = s.find_first_of(" \n", start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view w = s.substr(start, end - start);
    if (w == word || (w.starts_with(word) && w.size() > word.size() && w[word.size()] == '=' &&
                      w.substr(word.size() + 1) != "0"))
      return true;
    start = end + 1;
  }
  return false;
}

[[noreturn]] void power_off() {
  ::sync();
  ::reboot(RB_POWER_OFF);
  // Without ACPI power-off, a reboot ends the VM too (QEMU runs with
  // -no-reboot).
  kmsg(sys_error("power off").message() + "; rebooting instead", true);
  ::reboot(RB_AUTOBOOT);
  for (;;) ::pause();
}

}  // namespace isola::agent
