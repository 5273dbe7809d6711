#include "image/shift.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "common/fs.h"
#include "common/unique_fd.h"

namespace isola {

namespace {

struct Copier {
  uint32_t base;
  std::map<std::pair<dev_t, ino_t>, std::string> links;  // first path of each multiply-linked file
  std::string dest_root;

  Result<void> owner(int dirfd, const char* name, const struct stat& st, const std::string& what) {
    if (::fchownat(dirfd, name, base + st.st_uid, base + st.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(sys_error("chown", what));
    return {};
  }

  Result<void> times(int dirfd, const char* name, const struct stat& st) {
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ::utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
    return {};
  }

  Result<void> copy_file(int sdir, int ddir, const char* name, const struct stat& st, const std::string& what) {
    UniqueFd in(::openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) return fail(sys_error("open", what));
    UniqueFd out(::openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) return fail(sys_error("create", what));
    off_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
        // Across file systems (an overlay mount into a volume) the kernel
        // may refuse: copy through a buffer.
        char buf[65536];
        n = ::read(in.get(), buf, std::min(sizeof buf, static_cast<size_t>(left)));
        if (n > 0 && ::write(out.get(), buf, static_cast<size_t>(n)) != n) n = -1;
      }
      if (n <= 0) return fail(sys_error("copy", what));
      left -= n;
    }
    char cap[1024];
    ssize_t caplen = ::fgetxattr(in.get(), "security.capability", cap, sizeof cap);
    // chown clears setuid bits and file capabilities: chown, chmod, then caps.
    if (::fchown(out.get(), base + st.st_uid, base + st.st_gid) != 0) return fail(sys_error("chown", what));
    if (::fchmod(out.get(), st.st_mode & 07777) != 0) return fail(sys_error("chmod", what));
    if (caplen > 0) (void)::fsetxattr(out.get(), "security.capability", cap, static_cast<size_t>(caplen), 0);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ::futimens(out.get(), ts);
    return {};
  }

  Result<void> copy_dir(int sdir, int ddir, const std::string& rel) {
    int dup = ::fcntl(sdir, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return fail(sys_error("dup", rel));
    DIR* d = ::fdopendir(dup);
    if (!d) {
      ::close(dup);
      return fail(sys_error("opendir", rel));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
    while (struct dirent* ent = ::readdir(d)) {
      const char* name = ent->d_name;
      if (!std::strcmp(name, ".") || !std::strcmp(name, "..")) continue;
      std::string what = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      if (::fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return fail(sys_error("stat", what));
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto key = std::make_pair(st.st_dev, st.st_ino);
        if (auto it = links.find(key); it != links.end()) {
          UniqueFd root = TRY(open_dir(dest_root));
          if (::linkat(root.get(), it->second.c_str(), ddir, name, 0) != 0) return fail(sys_error("link", what));
          continue;
        }
        links[key] = what;
      }
      if (S_ISDIR(st.st_mode)) {
        if (::mkdirat(ddir, name, 0700) != 0) return fail(sys_error("mkdir", what));
        UniqueFd s(::openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        UniqueFd t(::openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!s || !t) return fail(sys_error("open", what));
        TRYV(copy_dir(s.get(), t.get(), what));
        char opaque[8];
        ssize_t n = ::fgetxattr(s.get(), "trusted.overlay.opaque", opaque, sizeof opaque);
        if (n > 0 && ::fsetxattr(t.get(), "trusted.overlay.opaque", opaque, static_cast<size_t>(n), 0) != 0)
          return fail(sys_error("set opaque", what));
        if (::fchown(t.get(), base + st.st_uid, base + st.st_gid) != 0) return fail(sys_error("chown", what));
        if (::fchmod(t.get(), st.st_mode & 07777) != 0) return fail(sys_error("chmod", what));
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        ::futimens(t.get(), ts);
      } else if (S_ISREG(st.st_mode)) {
        TRYV(copy_file(sdir, ddir, name, st, what));
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlinkat(sdir, name, target, sizeof target - 1);
        if (n < 0) return fail(sys_error("readlink", what));
        target[n] = 0;
        if (::symlinkat(target, ddir, name) != 0) return fail(sys_error("symlink", what));
        TRYV(owner(ddir, name, st, what));
        TRYV(times(ddir, name, st));
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
        // Overlay whiteouts (0/0), fifos, and the device nodes images may
        // carry (unpack.cc): made again, as they were.
        if (::mknodat(ddir, name, st.st_mode, st.st_rdev) != 0) return fail(sys_error("mknod", what));
        TRYV(owner(ddir, name, st, what));
        if (::fchmodat(ddir, name, st.st_mode & 07777, 0) != 0) return fail(sys_error("chmod", what));
      } else {
        return fail(make_error("copy", what, "unsupported file type in a layer"));
      }
    }
    return {};
  }
};

}  // namespace

Result<void> copy_shifted(const std::string& source, const std::string& dest, uint32_t base) {
  UniqueFd src = TRY(open_path(source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  if (::mkdir(dest.c_str(), 0700) != 0) return fail(sys_error("mkdir", dest));
  UniqueFd dst = TRY(open_path(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  Copier c{base, {}, dest};
  TRYV(c.copy_dir(src.get(), dst.get(), ""));
  struct stat st;
  if (::fstat(src.get(), &st) != 0) return fail(sys_error("stat", source));
  if (::fchown(dst.get(), base + st.st_uid, base + st.st_gid) != 0) return fail(sys_error("chown", dest));
  if (::fchmod(dst.get(), st.st_mode & 07777) != 0) return fail(sys_error("chmod", dest));
  return {};
}

}  // namespace isola
