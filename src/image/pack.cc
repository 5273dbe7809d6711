#include "image/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "common/fs.h"
#include "common/log.h"

namespace isola {

namespace {

constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";
constexpr const char* kRedirectXattr = "trusted.overlay.redirect";
constexpr const char* kMetacopyXattr = "trusted.overlay.metacopy";
constexpr uint32_t kIdRange = 65536;

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

bool has_xattr(int fd, const char* name, std::string* value = nullptr) {
  char buf[256];
  ssize_t n = ::fgetxattr(fd, name, buf, sizeof buf);
  if (n < 0) return false;
  if (value) value->assign(buf, static_cast<size_t>(n));
  return true;
}

class Packer {
 public:
  Packer(archive* a, const PackOptions& o) : a_(a), options_(o) {}

  // Packs the children of the directory `dirfd`, whose path in the layer is `rel`.
  Result<void> walk(int dirfd, const std::string& rel) {
    for (const std::string& name : TRY(names(dirfd, rel))) {
      std::string path = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile (a running container)
        return fail(sys_error("stat", path));
      }
      TRYV(add(dirfd, name, path, st));
    }
    return {};
  }

 private:
  Result<std::vector<std::string>> names(int dirfd, const std::string& rel) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open", rel.empty() ? "/" : rel));
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
      ::close(fd);
      return fail(sys_error("opendir", rel));
    }
    std::vector<std::string> out;
    while (struct dirent* ent = ::readdir(dir)) {
      std::string_view n = ent->d_name;
      if (n != "." && n != "..") out.emplace_back(n);
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<void> add(int dirfd, const std::string& name, const std::string& path, const struct stat& st) {
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) return whiteout(path);
    if (S_ISDIR(st.st_mode)) return directory(dirfd, name, path);
    if (S_ISREG(st.st_mode)) return regular(dirfd, name, path);
    if (S_ISLNK(st.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) return fail(sys_error("readlink", path));
      target.resize(static_cast<size_t>(n));
      EntryPtr e = entry(path, st);
      archive_entry_set_symlink(e.get(), target.c_str());
      return header(e.get(), path);
    }
    // Fifos, and device nodes as docker commits them (an image may carry
    // them: unpack.cc).
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      EntryPtr e = entry(path, st);
      return header(e.get(), path);
    }
    if (S_ISSOCK(st.st_mode)) {
      log_debug("commit: skipping socket {}", path);
      return {};
    }
    return fail(make_error("commit", "/" + path, "is of a file type an image cannot hold"));
  }

  EntryPtr entry(const std::string& path, const struct stat& st) const {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_uid(e.get(), shift(st.st_uid));
    archive_entry_set_gid(e.get(), shift(st.st_gid));
    archive_entry_set_uname(e.get(), "");
    archive_entry_set_gname(e.get(), "");
    archive_entry_unset_atime(e.get());
    archive_entry_unset_ctime(e.get());
    archive_entry_unset_birthtime(e.get());
    archive_entry_set_dev(e.get(), 0);
    archive_entry_set_ino(e.get(), 0);
    archive_entry_set_nlink(e.get(), 1);
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(e.get(), 0);
    return e;
  }

  uint32_t shift(uint32_t id) const {
    if (options_.id_base == 0) return id;
    if (id >= options_.id_base && id - options_.id_base < kIdRange) return id - options_.id_base;
    return 65534;  // not an id of the container's: nobody, as the kernel shows it inside
  }

  Result<void> whiteout(const std::string& path) {
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    return marker(parent + ".wh." + base);
  }

  Result<void> marker(const std::string& path) {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), 0);
    return header(e.get(), path);
  }

  Result<void> directory(int dirfd, const std::string& name, const std::string& path) {
    int raw = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) return fail(sys_error("open", path));
    UniqueFd fd(raw);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", path));
    if (has_xattr(fd.get(), kRedirectXattr))
      return fail(make_error("commit", "/" + path,
                             "is an overlayfs redirect (a renamed lower directory); remount without redirect_dir"));
    EntryPtr e = entry(path, st);
    TRYV(copy_xattrs(fd.get(), e.get()));
    TRYV(header(e.get(), path));
    std::string opaque;
    if (has_xattr(fd.get(), kOpaqueXattr, &opaque) && opaque == "y") TRYV(marker(path + "/.wh..wh..opq"));
    return walk(fd.get(), path);
  }

  // The container may swap a file for a device node meanwhile: the name is
  // pinned with O_PATH, and only a regular file is then opened for reading
  // (through /proc/self/fd, which reopens that inode), so no device on the
  // host is ever opened.
  Result<UniqueFd> open_regular(int dirfd, const std::string& name, const std::string& path) {
    int raw = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) return fail(sys_error("open", path));
    UniqueFd pinned(raw);
    struct stat st;
    if (::fstat(pinned.get(), &st) != 0) return fail(sys_error("stat", path));
    if (!S_ISREG(st.st_mode)) return fail(make_error("commit", "/" + path, "changed type while being packed; retry"));
    std::string proc = "/proc/self/fd/" + std::to_string(pinned.get());
    raw = ::open(proc.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (raw < 0) return fail(sys_error("open", path));
    return UniqueFd(raw);
  }

  Result<void> regular(int dirfd, const std::string& name, const std::string& path) {
    UniqueFd fd = TRY(open_regular(dirfd, name, path));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", path));
    if (has_xattr(fd.get(), kMetacopyXattr))
      return fail(make_error("commit", "/" + path, "is an overlayfs metacopy file; remount without metacopy"));
    EntryPtr e = entry(path, st);
    if (st.st_nlink > 1) {
      auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, path);
      if (!first) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        return header(e.get(), path);
      }
    }
    TRYV(copy_xattrs(fd.get(), e.get()));
    TRYV(header(e.get(), path));
    return data(fd.get(), path, static_cast<uint64_t>(st.st_size));
  }

  // Writes exactly `size` bytes: a file a running container shrinks
  // meanwhile is padded with zeros, one it grows is cut.
  Result<void> data(int fd, const std::string& path, uint64_t size) {
    std::string buf(1 << 20, '\0');
    uint64_t done = 0;
    while (done < size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
      ssize_t n = ::read(fd, buf.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(sys_error("read", path));
      if (n == 0) {
        std::fill(buf.begin(), buf.end(), '\0');
        n = static_cast<ssize_t>(want);
      }
      TRYV(write(buf.data(), static_cast<size_t>(n), path));
      done += static_cast<uint64_t>(n);
    }
    return {};
  }

  Result<void> copy_xattrs(int fd, archive_entry* e) {
    std::string names(4096, '\0');
    ssize_t n = ::flistxattr(fd, names.data(), names.size());
    if (n <= 0) return {};
    for (size_t pos = 0; pos < static_cast<size_t>(n);) {
      std::string name(names.c_str() + pos);
      pos += name.size() + 1;
      if (name != "security.capability" && !name.starts_with("user.")) continue;
      std::string value(65536, '\0');
      ssize_t len = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
      if (len < 0) continue;
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), static_cast<size_t>(len));
    }
    return {};
  }

  Result<void> header(archive_entry* e, const std::string& path) {
    if (archive_write_header(a_, e) != ARCHIVE_OK) return fail(error("write", path));
    return {};
  }

  Result<void> write(const char* p, size_t n, const std::string& path) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_, p, n);
      if (w <= 0) return fail(error("write", path));
      p += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }

  Error error(const std::string& op, const std::string& path) const {
    const char* s = archive_error_string(a_);
    return make_error("commit: " + op, path, s ? s : "libarchive error");
  }

  archive* a_;
  PackOptions options_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

Result<void> pack_upper(const std::string& upper, const std::string& dest, const PackOptions& options) {
  UniqueFd root = TRY(open_path(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  UniqueFd out = TRY(open_path(dest, O_WRONLY | O_CREAT | O_EXCL, 0644));
  std::unique_ptr<archive, WriteFree> a(archive_write_new());
  if (!a) return fail(sys_error(ENOMEM, "commit", dest));
  // Fixed gzip header fields (no name, no time): the same changes give the same blob.
  if (archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open_fd(a.get(), out.get()) != ARCHIVE_OK) {
    const char* s = archive_error_string(a.get());
    return fail(make_error("commit: write", dest, s ? s : "libarchive error"));
  }
  Packer packer(a.get(), options);
  TRYV(packer.walk(root.get(), ""));
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    const char* s = archive_error_string(a.get());
    return fail(make_error("commit: write", dest, s ? s : "libarchive error"));
  }
  if (::fsync(out.get()) != 0) return fail(sys_error("fsync", dest));
  return {};
}

}  // namespace isola
