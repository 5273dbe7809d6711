#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <utility>

namespace isola {

std::string path_join(std::string_view a, std::string_view b) {
  std::string out(a);
  while (!out.empty() && out.back() == '/' && out.size() > 1) out.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (b.empty()) return out;
  if (out.empty()) return std::string(b);
  if (out.back() != '/') out += '/';
  out += b;
  return out;
}

Result<UniqueFd> open_path(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return fail(sys_error("open", path));
  return UniqueFd(fd);
}

Result<UniqueFd> open_dir(const std::string& path) {
  return open_path(path, O_RDONLY | O_DIRECTORY);
}

Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const char* p = rel.empty() ? "." : rel.c_str();
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, p, &how, sizeof how));
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) return fail(sys_error("open", rel));
  return UniqueFd(fd);
}

Result<UniqueFd> open_in_root(int dirfd, const std::string& rel, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* p = rel.empty() ? "." : rel.c_str();
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, p, &how, sizeof how));
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) return fail(sys_error("open", rel));
  return UniqueFd(fd);
}

Result<std::string> read_regular_in_root(int root_fd, const std::string& rel, size_t max_size) {
  UniqueFd fd = TRY(open_in_root(root_fd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", rel));
  if (!S_ISREG(st.st_mode)) return fail(make_error("read", rel, "not a regular file"));
  return read_fd(fd.get(), rel, max_size);
}

Result<std::string> read_fd(int fd, const std::string& what, size_t max_size) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("read", what));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_size)
      return fail(make_error("read", what, "larger than " + std::to_string(max_size) + " bytes"));
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> read_file(const std::string& path, size_t max_size) {
  UniqueFd fd = TRY(open_path(path, O_RDONLY));
  return read_fd(fd.get(), path, max_size);
}

static Result<void> write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(sys_error("write", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp-" + random_hex(8);
  UniqueFd fd = TRY(open_path(tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
  auto written = write_all(fd.get(), data, tmp);
  if (written && ::fsync(fd.get()) != 0) written = fail(sys_error("fsync", tmp));
  if (written && ::rename(tmp.c_str(), path.c_str()) != 0) written = fail(sys_error("rename", path));
  if (!written) ::unlink(tmp.c_str());
  return written;
}

Result<void> copy_file(const std::string& source, const std::string& dest) {
  UniqueFd in = TRY(open_path(source, O_RDONLY | O_NOFOLLOW));
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return fail(sys_error("stat", source));
  if (!S_ISREG(st.st_mode)) return fail(make_error("copy", source, "not a regular file"));
  UniqueFd out = TRY(open_path(dest, O_WRONLY | O_CREAT | O_EXCL, 0644));
  auto copied = [&]() -> Result<void> {
    for (;;) {
      ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
      if (n == 0) break;
      if (n > 0) continue;
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return fail(sys_error("copy", source));
      // Not supported between these file systems: copy by hand from here.
      char buf[1 << 16];
      for (;;) {
        ssize_t r = ::read(in.get(), buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(sys_error("read", source));
        if (r == 0) break;
        TRYV(write_all(out.get(), std::string_view(buf, static_cast<size_t>(r)), dest));
      }
      break;
    }
    if (::fsync(out.get()) != 0) return fail(sys_error("fsync", dest));
    return {};
  }();
  if (!copied) ::unlink(dest.c_str());
  return copied;
}

Result<void> link_or_copy(const std::string& source, const std::string& dest) {
  if (::link(source.c_str(), dest.c_str()) == 0) return {};
  if (errno != EXDEV && errno != EPERM && errno != EMLINK) return fail(sys_error("link", dest));
  return copy_file(source, dest);
}

Result<void> write_file_in_place(const std::string& path, std::string_view data) {
  UniqueFd fd = TRY(open_path(path, O_WRONLY));
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n != static_cast<ssize_t>(data.size())) return fail(sys_error("write", path));
  return {};
}

Result<void> mkdir_p(const std::string& path, mode_t mode) {
  if (path.empty()) return {};
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return fail(sys_error("mkdir", cur));
  }
  if (!is_directory(path)) return fail(make_error("mkdir", path, "exists and is not a directory"));
  return {};
}

static Result<void> remove_children(int dirfd, dev_t dev, const std::string& where) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail(sys_error("dup", where));
  DIR* dir = ::fdopendir(dup);
  if (!dir) {
    ::close(dup);
    return fail(sys_error("opendir", where));
  }
  Result<void> result;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    std::string child = path_join(where, name);
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      result = fail(sys_error("stat", child));
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        result = fail(make_error("remove", child, "is a mount point; unmount it first"));
        break;
      }
      int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        result = fail(sys_error("open", child));
        break;
      }
      UniqueFd subfd(sub);
      result = remove_children(sub, dev, child);
      if (!result) break;
      if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        result = fail(sys_error("rmdir", child));
        break;
      }
    } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      result = fail(sys_error("unlink", child));
      break;
    }
  }
  ::closedir(dir);
  return result;
}

Result<void> remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail(sys_error("stat", path));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(sys_error("unlink", path));
    return {};
  }
  UniqueFd fd = TRY(open_path(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  TRYV(remove_children(fd.get(), st.st_dev, path));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return fail(sys_error("rmdir", path));
  return {};
}

namespace {

Result<uint64_t> usage_below(int dirfd, dev_t dev, const std::string& path, std::set<std::pair<dev_t, ino_t>>& seen) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(sys_error("open", path));
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    return fail(sys_error("fdopendir", path));
  }
  uint64_t total = 0;
  Result<void> status;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    if (st.st_dev != dev) continue;  // a mount (a running container's rootfs)
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert({st.st_dev, st.st_ino}).second) continue;
    total += S_ISDIR(st.st_mode) ? 0 : static_cast<uint64_t>(st.st_size);
    if (!S_ISDIR(st.st_mode)) continue;
    auto child = open_beneath(::dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!child) continue;
    auto sub = usage_below(child->get(), dev, path_join(path, name), seen);
    if (!sub) {
      status = fail(sub.error());
      break;
    }
    total += *sub;
  }
  ::closedir(dir);
  if (!status) return fail(status.error());
  return total;
}

}  // namespace

Result<uint64_t> disk_usage(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return uint64_t{0};
    return fail(sys_error("stat", path));
  }
  if (!S_ISDIR(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  UniqueFd fd = TRY(open_path(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  std::set<std::pair<dev_t, ino_t>> seen;
  return usage_below(fd.get(), st.st_dev, path, seen);
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return fail(sys_error("opendir", path));
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string name = ent->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  return names;
}

Result<std::string> make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string templ = path_join(parent, prefix + "XXXXXX");
  if (!::mkdtemp(templ.data())) return fail(sys_error("mkdtemp", templ));
  return templ;
}

std::string random_hex(size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  unsigned char buf[32];
  while (out.size() < n) {
    ssize_t got = ::getrandom(buf, sizeof buf, 0);
    if (got <= 0) continue;
    for (ssize_t i = 0; i < got && out.size() < n; ++i) out += digits[buf[i] & 0xf];
  }
  return out;
}

std::string random_uuid() {
  std::string h = random_hex(32);
  h[12] = '4';                                     // version 4
  h[16] = "89ab"[std::string("0123456789abcdef").find(h[16]) & 3];  // the RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

Result<FileLock> FileLock::acquire(const std::string& path, Mode mode) {
  UniqueFd fd = TRY(open_path(path, O_RDWR | O_CREAT, 0600));
  int op = mode == Mode::shared ? LOCK_SH : LOCK_EX;
  while (::flock(fd.get(), op) != 0) {
    if (errno != EINTR) return fail(sys_error("lock", path));
  }
  return FileLock(std::move(fd));
}

Result<std::optional<FileLock>> FileLock::try_acquire(const std::string& path) {
  UniqueFd fd = TRY(open_path(path, O_RDWR | O_CREAT, 0600));
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return std::optional<FileLock>();
    if (errno != EINTR) return fail(sys_error("lock", path));
  }
  return std::optional<FileLock>(FileLock(std::move(fd)));
}

}  // namespace isola
