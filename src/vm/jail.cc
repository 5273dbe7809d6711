#include "vm/jail.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

#include "common/fs.h"
#include "runtime/security.h"

namespace isola {

namespace {

// What 9p's passthrough model needs to serve a container its files with
// their owners and modes: change owners, override permission bits, set
// modes and times of files it does not own, keep set-id bits. Held in the
// worker's own user namespace only; setuid and friends are also refused by
// QEMU's -sandbox elevateprivileges=deny.
constexpr int kWorkerCaps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID};
constexpr const char* kWorkerCapNames[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
                                           "CAP_FSETID"};

// QEMU's own RAM and 9p buffers, its TCG translation buffer (capped with
// tb-size, vm/qemu.cc) and some slack.
constexpr uint64_t kWorkerOverheadMb = 320;

Result<void> check(long rc, const char* call, const std::string& what) {
  if (rc < 0) return fail(sys_error(call, what));
  return {};
}

// Makes `path` (a directory, or an empty file for a file) below the jail's root.
Result<void> make_mount_point(const std::string& path, bool directory) {
  size_t slash = path.rfind('/');
  if (slash != 0 && slash != std::string::npos) TRYV(mkdir_p(path.substr(0, slash), 0755));
  if (directory) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return fail(sys_error("mkdir", path));
    return {};
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
  if (fd < 0 && errno != EEXIST && errno != EROFS) return fail(sys_error("create", path));
  if (fd >= 0) ::close(fd);
  return {};
}

// A recursive bind of `source` at `target` with `attrs` (MOUNT_ATTR_*) set
// on every mount of it.
Result<void> bind_tree(const std::string& source, const std::string& target, uint64_t attrs) {
  int tree = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, source.c_str(),
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  if (tree < 0) return fail(sys_error("open_tree", source));
  UniqueFd owner(tree);
  mount_attr attr{};
  attr.attr_set = attrs;
  TRYV(check(::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr),
             "mount_setattr", source));
  TRYV(check(::syscall(SYS_move_mount, tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH), "move_mount",
             target));
  return {};
}

}  // namespace

Result<void> keep_worker_capabilities() {
  for (int cap = 0; cap <= 63; ++cap) {
    if (std::find(std::begin(kWorkerCaps), std::end(kWorkerCaps), cap) != std::end(kWorkerCaps)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      return fail(sys_error("prctl", "PR_CAPBSET_DROP"));
    }
  }
  TRYV(check(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl", "PR_CAP_AMBIENT_CLEAR_ALL"));
  uint64_t keep = 0;
  for (int cap : kWorkerCaps) keep |= uint64_t{1} << cap;
  return capset_masks(keep, keep, 0);
}

bool jail_disabled() {
  const char* v = std::getenv("ISOLA_VM_JAIL");
  return v && std::string_view(v) == "off";
}

JailPlan jail_plan(const VmConfig& config, const std::string& root, const std::string& preload) {
  JailPlan plan;
  plan.root = root;
  plan.hostname = vm_process_name(config.id);
  // QEMU, its libraries and firmware; the loader's cache.
  plan.mounts.push_back({"/usr", false, false, true});
  for (const char* top : {"/lib", "/lib64", "/bin", "/sbin"}) {
    struct stat st;
    if (::lstat(top, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[256];
      ssize_t n = ::readlink(top, target, sizeof target - 1);
      if (n > 0) plan.links.push_back(std::string(top + 1) + "=" + std::string(target, static_cast<size_t>(n)));
    } else {
      plan.mounts.push_back({top, false, false, true});
    }
  }
  if (path_exists("/etc/ld.so.cache")) plan.mounts.push_back({"/etc/ld.so.cache"});
  for (const char* dev : {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"})
    plan.mounts.push_back({dev, dev == std::string("/dev/null"), true});
  if (config.accel == "kvm") plan.mounts.push_back({"/dev/kvm", true, true});
  plan.mounts.push_back({config.assets.kernel});
  plan.mounts.push_back({config.assets.initramfs});
  if (!preload.empty()) plan.mounts.push_back({preload, false, false, true});
  for (const VmShare& s : config.shares) plan.mounts.push_back({s.host_path, !s.readonly});
  // A parent before what is mounted inside it.
  std::stable_sort(plan.mounts.begin(), plan.mounts.end(),
                   [](const JailMount& a, const JailMount& b) { return a.path.size() < b.path.size(); });
  return plan;
}

Result<void> enter_jail(const JailPlan& plan) {
  TRYV(check(::setgroups(0, nullptr), "setgroups", "the worker"));
  TRYV(check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount", "/ (private)"));
  TRYV(check(::mount("isola-jail", plan.root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "size=64k,nr_inodes=256,mode=0755"),
             "mount", plan.root));
  for (const std::string& link : plan.links) {
    size_t eq = link.find('=');
    std::string at = path_join(plan.root, link.substr(0, eq));
    TRYV(check(::symlink(link.substr(eq + 1).c_str(), at.c_str()), "symlink", at));
  }
  for (const JailMount& m : plan.mounts) {
    struct stat st;
    if (::stat(m.path.c_str(), &st) != 0) return fail(sys_error("stat", m.path));
    std::string target = path_join(plan.root, m.path);
    TRYV(make_mount_point(target, S_ISDIR(st.st_mode)));
    uint64_t attrs = MOUNT_ATTR_NOSUID;
    if (!m.writable) attrs |= MOUNT_ATTR_RDONLY;
    if (!m.device) attrs |= MOUNT_ATTR_NODEV;
    // QEMU runs its programs and libraries and nothing else.
    if (!m.executable) attrs |= MOUNT_ATTR_NOEXEC;
    TRYV(bind_tree(m.path, target, attrs));
  }
  // 9p reaches files through /proc/self/fd (chmod and xattrs without
  // following links). Only the process directories: no /proc/sys, whose
  // files go by the host's root user id, which the worker has.
  std::string proc = path_join(plan.root, "proc");
  TRYV(make_mount_point(proc, true));
  TRYV(check(::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid"), "mount", proc));
  // Nothing in the root itself is QEMU's to change.
  mount_attr ro{};
  ro.attr_set = MOUNT_ATTR_RDONLY;
  TRYV(check(::syscall(SYS_mount_setattr, AT_FDCWD, plan.root.c_str(), 0, &ro, sizeof ro), "mount_setattr",
             plan.root));
  TRYV(check(::chdir(plan.root.c_str()), "chdir", plan.root));
  TRYV(check(::syscall(SYS_pivot_root, ".", "."), "pivot_root", plan.root));
  TRYV(check(::umount2(".", MNT_DETACH), "umount", "the host's root"));
  TRYV(check(::chdir("/"), "chdir", "/"));
  TRYV(check(::sethostname(plan.hostname.data(), plan.hostname.size()), "sethostname", plan.hostname));
  return keep_worker_capabilities();
}

Result<void> map_jail_ids(pid_t worker) {
  // One to one: a file's owner in the guest is its owner on the host.
  const std::string map = "0 0 4294967295\n";
  for (const char* which : {"uid_map", "gid_map"})
    TRYV(write_file_in_place("/proc/" + std::to_string(worker) + "/" + which, map));
  return {};
}

Json worker_confinement(pid_t worker) {
  Json out = {{"Jail", true}};
  auto status = worker > 0 ? read_file("/proc/" + std::to_string(worker) + "/status", 1u << 16)
                           : Result<std::string>(fail(make_error("read", "the worker's status")));
  if (!status) {
    // Not running: what a worker of this container gets.
    Json caps = Json::array();
    for (const char* c : kWorkerCapNames) caps.push_back(c);
    out.update({{"User", "root of its own user namespace"},
                {"Capabilities", caps},
                {"Namespaces", {"user", "mount", "pid", "ipc", "network", "uts", "cgroup"}},
                {"NoNewPrivileges", true},
                {"SeccompFilters", 2}});
    return out;
  }
  // Running: what the kernel says of the worker.
  std::map<std::string, std::string> fields;
  std::istringstream lines(*status);
  for (std::string line; std::getline(lines, line);)
    if (size_t colon = line.find(":\t"); colon != std::string::npos) fields[line.substr(0, colon)] = line.substr(colon + 2);
  auto first = [&](const std::string& key) {
    std::string v = fields[key];
    return v.substr(0, v.find('\t'));
  };
  Json ns = Json::array();
  for (const char* kind : {"user", "mnt", "pid", "ipc", "net", "uts", "cgroup"}) {
    struct stat mine, theirs;
    std::string path = "/proc/" + std::to_string(worker) + "/ns/" + kind;
    if (::stat(path.c_str(), &theirs) == 0 && ::stat((std::string("/proc/self/ns/") + kind).c_str(), &mine) == 0 &&
        theirs.st_ino != mine.st_ino)
      ns.push_back(kind);
  }
  out["Jail"] = !ns.empty();
  out.update({{"User", "uid " + first("Uid") + " (host ids mapped one to one) in its own user namespace"},
              {"Capabilities", cap_names(std::strtoull(fields["CapEff"].c_str(), nullptr, 16))},
              {"Namespaces", ns},
              {"NoNewPrivileges", fields["NoNewPrivs"] == "1"},
              {"SeccompFilters", std::atoi(fields["Seccomp_filters"].c_str())}});
  return out;
}

uint64_t worker_memory_limit_mb(uint64_t guest_mb) { return guest_mb + kWorkerOverheadMb; }

}  // namespace isola
