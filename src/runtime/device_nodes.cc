#include "runtime/device_nodes.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace isola {

namespace {

struct DefaultNode {
  const char* name;
  unsigned major, minor;
};
constexpr DefaultNode kDefaults[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                     {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

Error device_error(size_t i, const std::string& detail) {
  return make_error("invalid runtime spec", "linux.devices[" + std::to_string(i) + "]", detail);
}

Result<DeviceNodePlan> plan_extra(const DeviceNodeSpec& d, size_t i) {
  DeviceNodePlan p;
  size_t first = d.path.find_first_not_of('/');
  size_t slash = d.path.rfind('/');
  if (d.path.empty() || d.path[0] != '/' || first == std::string::npos)
    return fail(device_error(i, "path \"" + d.path + "\" must name a file below /"));
  p.name = d.path.substr(slash + 1);
  if (p.name.empty() || p.name == "." || p.name == "..")
    return fail(device_error(i, "path \"" + d.path + "\" must end in a file name"));
  p.dir = slash > first ? d.path.substr(first, slash - first) : "";
  p.host_path = d.path;
  const mode_t type = d.type == 'b' ? S_IFBLK : d.type == 'p' ? S_IFIFO : S_IFCHR;
  p.mode = type | static_cast<mode_t>(d.file_mode.value_or(0666) & 07777);
  p.rdev = type == S_IFIFO ? 0 : makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor));
  p.uid = d.uid.value_or(0);
  p.gid = d.gid.value_or(0);
  return p;
}

// Where mknod is not allowed (a user namespace): the host's node, bound
// over an empty file, as runc does.
int bind_host_node(int dir_fd, const DeviceNodePlan& d, const char** step) {
  int file = ::openat(dir_fd, d.name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (file < 0) {
    *step = "create";
    return errno;
  }
  char target[32];
  std::snprintf(target, sizeof target, "/proc/self/fd/%d", file);
  int rc = ::mount(d.host_path.c_str(), target, nullptr, MS_BIND, nullptr);
  int err = errno;
  ::close(file);
  if (rc == 0) return 0;
  *step = "bind mount the host's device";
  return err;
}

}  // namespace

Result<std::vector<DeviceNodePlan>> plan_device_nodes(const std::vector<DeviceNodeSpec>& extra) {
  std::vector<DeviceNodePlan> out;
  for (const DefaultNode& n : kDefaults)
    out.push_back(DeviceNodePlan{"dev", n.name, std::string("/dev/") + n.name, S_IFCHR | 0666,
                                 makedev(n.major, n.minor), 0, 0});
  for (size_t i = 0; i < extra.size(); ++i) out.push_back(TRY(plan_extra(extra[i], i)));
  return out;
}

int make_device_node(int dir_fd, const DeviceNodePlan& d, const char** step) {
  const char* name = d.name.c_str();
  int rc = ::mknodat(dir_fd, name, d.mode, d.rdev);
  if (rc != 0 && errno == EEXIST) {
    // Whatever the image put there (a file, a symlink, another node) is replaced.
    struct stat st;
    bool same = ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mode == d.mode &&
                st.st_rdev == d.rdev && st.st_uid == d.uid && st.st_gid == d.gid;
    if (same) return 0;
    if (::unlinkat(dir_fd, name, 0) != 0) {
      *step = "remove";
      return errno;
    }
    rc = ::mknodat(dir_fd, name, d.mode, d.rdev);
  }
  if (rc != 0) {
    if (errno == EPERM) return bind_host_node(dir_fd, d, step);
    *step = "mknod";
    return errno;
  }
  if ((d.uid != 0 || d.gid != 0) && ::fchownat(dir_fd, name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    *step = "chown";
    return errno;
  }
  return 0;
}

}  // namespace isola
