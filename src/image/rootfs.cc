#include "image/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/log.h"

namespace isola {

static Result<void> check_option_path(const std::string& path) {
  // overlayfs splits its options on ',' and lowerdir on ':'.
  if (path.find_first_of(",:\\") != std::string::npos)
    return fail(make_error("mount overlay", path, "path contains ',', ':' or '\\'; choose a root without them"));
  return {};
}

Result<void> mount_overlay(const OverlaySpec& spec, const std::string& target) {
  if (spec.lowers_top_first.empty() || (spec.upper.empty() && spec.lowers_top_first.size() < 2))
    return fail(make_error("mount overlay", target, "not enough layers"));
  std::string opts = "lowerdir=";
  for (size_t i = 0; i < spec.lowers_top_first.size(); ++i) {
    TRYV(check_option_path(spec.lowers_top_first[i]));
    if (i) opts += ':';
    opts += spec.lowers_top_first[i];
  }
  if (!spec.upper.empty()) {
    TRYV(check_option_path(spec.upper));
    TRYV(check_option_path(spec.work));
    opts += ",upperdir=" + spec.upper + ",workdir=" + spec.work;
  }
  // Without index/xino the layers stay usable after a copy to another store.
  opts += ",index=off";
  if (opts.size() >= 4000)
    return fail(make_error("mount overlay", target,
                           "too many layers for one overlay mount (" + std::to_string(spec.lowers_top_first.size()) + ")"));
  unsigned long flags = MS_NODEV;
  if (spec.upper.empty()) flags |= MS_RDONLY;
  log_debug("mount overlay on {}: {}", target, opts);
  if (::mount("overlay", target.c_str(), "overlay", flags, opts.c_str()) != 0)
    return fail(sys_error("mount overlay", target));
  return {};
}

Result<void> unmount_path(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return {};
  if (errno == EBUSY && ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return {};
  if (errno == EINVAL || errno == ENOENT) return {};  // not mounted
  return fail(sys_error("unmount", target));
}

bool is_mount_point(const std::string& path) {
  struct stat self, parent;
  if (::lstat(path.c_str(), &self) != 0 || !S_ISDIR(self.st_mode)) return false;
  if (::stat(path_join(path, "..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

}  // namespace isola
