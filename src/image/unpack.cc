// Layer and image-archive extraction. Every archive here is untrusted, so
// the destination is opened once and everything below it is reached through
// directory fds: parents with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
// the final name with *at calls that never follow it. Nothing an earlier
// entry planted (a symlink, a hard link) can redirect a later write.
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace isola {
namespace {

constexpr size_t kMaxPath = 4096;
constexpr int kMaxLinkDepth = 16;
constexpr size_t kReadBlock = 1 << 20;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";
constexpr const char* kCapabilityXattr = "security.capability";

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

struct DirClose {
  void operator()(DIR* d) const { ::closedir(d); }
};

using Parts = std::vector<std::string>;

std::string join(const Parts& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i) out += '/';
    out += parts[i];
  }
  return out;
}
std::string join(const Parts& parts) { return join(parts, parts.size()); }

const char* archive_text(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

// Splits an archive path into components. Empty and "." components (a
// leading "./", "a//b", a trailing "/") are dropped; no components at all
// means the root itself. Returns why the path is refused, or "" if it's fine.
std::string split_path(std::string_view raw, std::string_view scope, Parts& out) {
  out.clear();
  if (raw.empty()) return "empty path";
  if (raw.size() > kMaxPath) return fmt::format("path is longer than {} bytes", kMaxPath);
  if (raw.front() == '/') return "absolute path";
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view comp = raw.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return fmt::format("path escapes the {}", scope);
    out.emplace_back(comp);
  }
  return {};
}

bool pwrite_all(int fd, const char* p, size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
  return true;
}

// A tar stream read in two stages so that one pass both extracts and
// computes the digest of the uncompressed bytes: `raw_` only decompresses
// (libarchive's "raw" format), `tar_` parses tar from what `raw_` yields
// through read_cb, which hashes every byte on the way.
class TarStream {
 public:
  static Result<std::unique_ptr<TarStream>> open(const std::string& path,
                                                 const std::string& what) {
    std::unique_ptr<TarStream> s(new TarStream());
    s->fd_ = TRY(open_path(path, O_RDONLY));
    s->raw_.reset(archive_read_new());
    s->tar_.reset(archive_read_new());
    if (!s->raw_ || !s->tar_) return fail(sys_error(ENOMEM, what + ": read", path));
    archive* raw = s->raw_.get();
    // ARCHIVE_WARN would mean "via an external program": refuse that.
    if (archive_read_support_filter_gzip(raw) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(raw) != ARCHIVE_OK ||
        archive_read_support_format_raw(raw) != ARCHIVE_OK)
      return fail(make_error(what + ": read", path,
                             "libarchive lacks built-in gzip or zstd support"));
    archive_entry* entry = nullptr;
    if (archive_read_open_fd(raw, s->fd_.get(), kReadBlock) != ARCHIVE_OK ||
        archive_read_next_header(raw, &entry) < ARCHIVE_WARN)
      return fail(make_error(what + ": read", path, archive_text(raw)));
    // One compression layer at most (the client reader counts as one): a
    // nested one would silently change what the digest covers.
    if (archive_filter_count(raw) > 2)
      return fail(make_error(what + ": read", path, "nested compression is not supported"));
    archive* tar = s->tar_.get();
    if (archive_read_support_format_tar(tar) != ARCHIVE_OK ||
        archive_read_open(tar, s.get(), nullptr, &TarStream::read_cb, nullptr) != ARCHIVE_OK)
      return fail(make_error(what + ": read", path,
                             s->raw_error_.empty()
                                 ? "not a tar stream (plain, gzip or zstd): " + s->error_text()
                                 : s->error_text()));
    return s;
  }

  archive* tar() { return tar_.get(); }

  // Why the last tar_ call failed; a decompression error is the root cause.
  std::string error_text() { return raw_error_.empty() ? archive_text(tar_.get()) : raw_error_; }

  // Once tar_ has seen the end-of-archive marker: reads and hashes the rest
  // (the digest covers the padding after it too) and so also notices
  // corrupt or truncated compressed data past the last entry.
  Result<void> drain(const std::string& what) {
    const void* buf;
    while (pull(&buf) > 0) {
    }
    if (!raw_error_.empty()) return fail(make_error(what + ": read", {}, raw_error_));
    return {};
  }

  std::string digest() { return hash_.hex_digest(); }

 private:
  TarStream() = default;

  la_ssize_t pull(const void** buf) {
    for (;;) {
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(raw_.get(), buf, &size, &offset);
      if (r == ARCHIVE_EOF) return 0;
      if (r < ARCHIVE_WARN) {
        // libarchive's gzip reader fails on a missing trailer without a message.
        const char* why = archive_error_string(raw_.get());
        raw_error_ = fmt::format("decompress: {}", why ? why : "truncated or corrupt data");
        return -1;
      }
      if (size == 0) continue;
      hash_.update(*buf, size);
      return static_cast<la_ssize_t>(size);
    }
  }

  static la_ssize_t read_cb(archive* a, void* self, const void** buf) {
    auto* s = static_cast<TarStream*>(self);
    la_ssize_t n = s->pull(buf);
    if (n < 0) archive_set_error(a, EIO, "%s", s->raw_error_.c_str());
    return n;
  }

  // Destroyed in reverse: tar_ before raw_ before the fd they read.
  UniqueFd fd_;
  ArchivePtr raw_;
  ArchivePtr tar_;
  Sha256 hash_;
  std::string raw_error_;
};

enum class Kind { layer, image_archive };

class Unpacker {
 public:
  Unpacker(int root, const std::string& what, Kind kind)
      : root_(root), what_(what), kind_(kind),
        scope_(kind == Kind::layer ? "layer" : "archive") {}

  uint64_t size() const { return size_; }
  uint64_t entries() const { return entries_; }

  Result<void> add(archive* tar, archive_entry* e) {
    ++entries_;
    const char* raw = archive_entry_pathname(e);
    current_ = printable(raw ? raw : "");
    Parts parts;
    if (std::string why = split_path(raw ? raw : "", scope_, parts); !why.empty())
      return fail(entry_error(why));
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (parts.empty()) {
      // The root is `dest` itself; its metadata is not taken from the layer.
      if (!hardlink && type == AE_IFDIR) return {};
      return fail(entry_error("only a directory can stand for the " + scope_ + " root"));
    }
    if (kind_ == Kind::image_archive) {
      // Symlinks aren't created until the end; until then, refuse what
      // would have gone through one.
      for (size_t i = 1; i < parts.size(); ++i)
        if (pending_index_.contains(join(parts, i)))
          return fail(entry_error(
              fmt::format("path goes through symlink '{}'", printable(join(parts, i)))));
      forget_pending(join(parts));
    }
    const std::string& name = parts.back();
    if (kind_ == Kind::layer && std::string_view(name).starts_with(kWhiteoutPrefix))
      return whiteout(parts);
    if (hardlink) return make_hardlink(parts, hardlink);
    switch (type) {
      case AE_IFDIR: return make_dir(parts, e);
      case AE_IFREG: return make_file(tar, parts, e);
      case AE_IFLNK:
        if (kind_ == Kind::image_archive) return defer_symlink(parts, e);
        return make_symlink(parts, e);
      case AE_IFIFO:
        if (kind_ == Kind::layer) return make_fifo(parts, e);
        return fail(entry_error("fifos are not allowed in image archives"));
      case AE_IFCHR:
      case AE_IFBLK:
        // As docker and podman load them (a debootstrap tree has /dev/null,
        // /dev/full, ...): harmless where they land, since a container's
        // root is mounted nodev, its /dev is a tmpfs of its own and the
        // device cgroup decides what it may open.
        // Not 0:0, though: overlayfs reads a 0:0 character device as a
        // whiteout, and a layer says that with a .wh. file.
        if (kind_ == Kind::layer && archive_entry_rdev(e) == 0)
          return fail(entry_error("a 0:0 character device is an overlay whiteout; layers mark deletions "
                                  "with .wh. files"));
        if (kind_ == Kind::layer) return make_device(parts, e, type);
        return fail(entry_error(fmt::format("device nodes are not allowed in image {}s", scope_)));
      case AE_IFSOCK: return fail(entry_error("sockets are not allowed in image " + scope_ + "s"));
      default: return fail(entry_error(fmt::format("unsupported entry type 0{:o}", type)));
    }
  }

  // After the last entry: image-archive symlinks become hard links, then
  // directory modes and times are applied (children before parents, so that
  // adding entries no longer changes them and a read-only directory does
  // not block its own children).
  Result<void> finish() {
    for (size_t i = 0; i < pending_.size(); ++i)
      if (pending_[i].alive) TRYV(link_pending(i));
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      current_ = printable(it->first);
      auto fd = open_beneath(root_, it->first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!fd) {
        int err = fd.error().err;
        if (err == ENOENT || err == ENOTDIR || err == ELOOP) continue;  // replaced later
        return fail(sys_error(err, prefix() + ": open", {}));
      }
      if (::fchmod(fd->get(), it->second.mode) != 0) return fail(entry_sys_error("chmod"));
      if (it->second.has_times && ::futimens(fd->get(), it->second.times) != 0)
        return fail(entry_sys_error("set times"));
    }
    return {};
  }

 private:
  struct DirMeta {
    mode_t mode = 0755;
    bool has_times = false;
    struct timespec times[2] = {};
  };
  struct PendingLink {
    Parts parts;
    std::string target;
    bool alive = true;
  };

  std::string prefix() const {
    std::string p = fmt::format("entry '{}'", current_);
    return what_.empty() ? p : what_ + ": " + p;
  }
  Error entry_error(std::string why) const { return make_error(prefix(), {}, std::move(why)); }
  Error entry_sys_error(std::string op, std::string object = {}) const {
    return sys_error(errno, prefix() + ": " + op, std::move(object));
  }

  // Opens (O_RDONLY directory fd) the directory parts[0..count) without
  // following any symlink. With `create`, missing directories are made
  // (0755, owned by the caller); `subject` names the path in errors.
  Result<UniqueFd> open_dir_at(const Parts& parts, size_t count, bool create,
                               std::string_view subject) {
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
    if (count > 0) {
      // Usually the whole way exists: one openat2 resolves it.
      auto fast = open_beneath(root_, join(parts, count), flags);
      if (fast) return fast;
    }
    int fd = ::fcntl(root_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return fail(entry_sys_error("dup"));
    UniqueFd cur(fd);
    // Step by step, to create what is missing or to name what is in the way.
    for (size_t i = 0; i < count; ++i) {
      const std::string& comp = parts[i];
      std::string rel = printable(join(parts, i + 1));
      bool made = false;
      auto next = open_beneath(cur.get(), comp, flags);
      if (!next && next.error().err == ENOENT && create) {
        if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
          return fail(entry_sys_error("mkdir", rel));
        made = true;
        next = open_beneath(cur.get(), comp, flags);
      }
      if (!next) {
        int err = next.error().err;
        struct stat st;
        if (err == ELOOP || err == EXDEV ||
            (err == ENOTDIR && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISLNK(st.st_mode)))
          return fail(entry_error(fmt::format("{} goes through symlink '{}'", subject, rel)));
        if (err == ENOTDIR)
          return fail(entry_error(
              fmt::format("{} goes through '{}', which is not a directory", subject, rel)));
        if (err == ENOENT)
          return fail(entry_error(
              fmt::format("{} goes through '{}', which does not exist", subject, rel)));
        return fail(sys_error(err, prefix() + ": open", rel));
      }
      cur = std::move(*next);
      if (made && ::fchmod(cur.get(), 0755) != 0) return fail(entry_sys_error("chmod", rel));
    }
    return cur;
  }

  Result<UniqueFd> open_parent(const Parts& parts) {
    return open_dir_at(parts, parts.size() - 1, true, "path");
  }

  // Removes whatever is at `name` in `dirfd` (a whole tree for a directory)
  // so that a new entry is created, never an existing object reused.
  Result<void> clear_name(int dirfd, const Parts& parts) {
    const std::string& name = parts.back();
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return {};
      return fail(entry_sys_error("stat"));
    }
    if (S_ISDIR(st.st_mode)) {
      TRYV(remove_children(dirfd, name));
      if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return fail(entry_sys_error("rmdir"));
      // Deferred metadata of the removed tree must not reach a later
      // directory of the same name.
      std::string rel = join(parts);
      dirs_.erase(rel);
      dirs_.erase(dirs_.lower_bound(rel + '/'), dirs_.lower_bound(rel + char('/' + 1)));
      return {};
    }
    if (::unlinkat(dirfd, name.c_str(), 0) != 0) return fail(entry_sys_error("unlink"));
    return {};
  }

  Result<void> remove_children(int dirfd, const std::string& name) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return fail(entry_sys_error("open", printable(name)));
    std::unique_ptr<DIR, DirClose> dir(::fdopendir(fd));
    if (!dir) {
      ::close(fd);
      return fail(entry_sys_error("opendir", printable(name)));
    }
    while (struct dirent* ent = ::readdir(dir.get())) {
      std::string child = ent->d_name;
      if (child == "." || child == "..") continue;
      struct stat st;
      if (::fstatat(fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return fail(entry_sys_error("stat", printable(child)));
      int flags = 0;
      if (S_ISDIR(st.st_mode)) {
        TRYV(remove_children(fd, child));
        flags = AT_REMOVEDIR;
      }
      if (::unlinkat(fd, child.c_str(), flags) != 0)
        return fail(entry_sys_error("remove", printable(child)));
    }
    return {};
  }

  Result<std::pair<uid_t, gid_t>> owner(archive_entry* e) const {
    la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
    // (uid_t)-1 would mean "leave unchanged" to chown.
    constexpr la_int64_t kMax = 0xfffffffe;
    if (uid < 0 || uid > kMax || gid < 0 || gid > kMax)
      return fail(entry_error(fmt::format("invalid owner {}:{}", uid, gid)));
    return std::pair{static_cast<uid_t>(uid), static_cast<gid_t>(gid)};
  }

  static void entry_times(archive_entry* e, struct timespec ts[2]) {
    auto valid_nsec = [](long ns) { return ns >= 0 && ns < 1000000000 ? ns : 0; };
    ts[1].tv_sec = static_cast<time_t>(archive_entry_mtime(e));
    ts[1].tv_nsec = valid_nsec(archive_entry_mtime_nsec(e));
    if (archive_entry_atime_is_set(e)) {
      ts[0].tv_sec = static_cast<time_t>(archive_entry_atime(e));
      ts[0].tv_nsec = valid_nsec(archive_entry_atime_nsec(e));
    } else {
      ts[0] = ts[1];
    }
  }

  Result<void> make_dir(const Parts& parts, archive_entry* e) {
    UniqueFd parent = TRY(open_parent(parts));
    const char* name = parts.back().c_str();
    struct stat st;
    bool is_dir = ::fstatat(parent.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    if (!is_dir) {
      TRYV(clear_name(parent.get(), parts));
      if (::mkdirat(parent.get(), name, 0700) != 0) return fail(entry_sys_error("mkdir"));
    }
    DirMeta meta;
    if (kind_ == Kind::layer) {
      int fd = ::openat(parent.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return fail(entry_sys_error("open"));
      UniqueFd dir(fd);
      auto [uid, gid] = TRY(owner(e));
      if (::fchown(dir.get(), uid, gid) != 0) return fail(entry_sys_error("chown"));
      meta.mode = archive_entry_perm(e) & 07777;
      meta.has_times = true;
      entry_times(e, meta.times);
    }
    dirs_[join(parts)] = meta;
    return {};
  }

  Result<void> make_file(archive* tar, const Parts& parts, archive_entry* e) {
    UniqueFd parent = TRY(open_parent(parts));
    TRYV(clear_name(parent.get(), parts));
    int raw_fd = ::openat(parent.get(), parts.back().c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (raw_fd < 0) return fail(entry_sys_error("create"));
    UniqueFd fd(raw_fd);
    // Blocks come with offsets: a sparse file's holes are skipped, and the
    // final size is set below.
    la_int64_t end = 0;
    for (;;) {
      const void* buf = nullptr;
      size_t n = 0;
      la_int64_t off = 0;
      int r = archive_read_data_block(tar, &buf, &n, &off);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return fail(entry_error(fmt::format("read: {}", archive_text(tar))));
      if (r == ARCHIVE_WARN) log_debug("{}: {}", prefix(), archive_text(tar));
      if (off < 0 || n > static_cast<size_t>(INT64_MAX - off))
        return fail(entry_error("invalid data offset"));
      if (!pwrite_all(fd.get(), static_cast<const char*>(buf), n, off))
        return fail(entry_sys_error("write"));
      end = std::max(end, off + static_cast<la_int64_t>(n));
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {
      if (::ftruncate(fd.get(), archive_entry_size(e)) != 0) return fail(entry_sys_error("truncate"));
      end = archive_entry_size(e);
    }
    size_ += static_cast<uint64_t>(end);
    if (kind_ == Kind::image_archive) {
      mode_t mode = (archive_entry_perm(e) & 0111) ? 0755 : 0644;
      if (::fchmod(fd.get(), mode) != 0) return fail(entry_sys_error("chmod"));
      return {};
    }
    // Order matters: writing and chown clear setuid/setgid and
    // security.capability, so mode and capabilities come after them.
    auto [uid, gid] = TRY(owner(e));
    if (::fchown(fd.get(), uid, gid) != 0) return fail(entry_sys_error("chown"));
    if (::fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) return fail(entry_sys_error("chmod"));
    archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t value_size = 0;
    while (archive_entry_xattr_next(e, &xname, &value, &value_size) == ARCHIVE_OK) {
      if (!xname || std::strcmp(xname, kCapabilityXattr) != 0) continue;
      if (::fsetxattr(fd.get(), kCapabilityXattr, value, value_size, 0) != 0)
        return fail(entry_sys_error("set xattr", kCapabilityXattr));
    }
    struct timespec ts[2];
    entry_times(e, ts);
    if (::futimens(fd.get(), ts) != 0) return fail(entry_sys_error("set times"));
    return {};
  }

  // Owner and times of a just-created non-regular, non-directory entry,
  // set on the name itself (never what a symlink points to).
  Result<void> set_meta_at(int dirfd, const std::string& name, archive_entry* e) {
    auto [uid, gid] = TRY(owner(e));
    if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(entry_sys_error("chown"));
    struct timespec ts[2];
    entry_times(e, ts);
    if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(entry_sys_error("set times"));
    return {};
  }

  Result<void> make_symlink(const Parts& parts, archive_entry* e) {
    // The target is only data in the layer; nothing here resolves it.
    const char* target = archive_entry_symlink(e);
    if (!target || !*target) return fail(entry_error("symlink without a target"));
    UniqueFd parent = TRY(open_parent(parts));
    TRYV(clear_name(parent.get(), parts));
    if (::symlinkat(target, parent.get(), parts.back().c_str()) != 0)
      return fail(entry_sys_error("symlink"));
    return set_meta_at(parent.get(), parts.back(), e);
  }

  Result<void> make_fifo(const Parts& parts, archive_entry* e) {
    UniqueFd parent = TRY(open_parent(parts));
    TRYV(clear_name(parent.get(), parts));
    const char* name = parts.back().c_str();
    if (::mknodat(parent.get(), name, S_IFIFO | 0600, 0) != 0) return fail(entry_sys_error("mkfifo"));
    TRYV(set_meta_at(parent.get(), parts.back(), e));
    // A fifo can't be opened without blocking; we just created this name as
    // a fifo, so the (following) fchmodat can't be redirected.
    if (::fchmodat(parent.get(), name, archive_entry_perm(e) & 07777, 0) != 0)
      return fail(entry_sys_error("chmod"));
    return {};
  }

  Result<void> make_device(const Parts& parts, archive_entry* e, mode_t type) {
    UniqueFd parent = TRY(open_parent(parts));
    TRYV(clear_name(parent.get(), parts));
    const char* name = parts.back().c_str();
    dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    if (::mknodat(parent.get(), name, type | 0600, dev) != 0) return fail(entry_sys_error("mknod"));
    TRYV(set_meta_at(parent.get(), parts.back(), e));
    // Not opened to change its mode (opening a device node has effects):
    // the name was just made as this node, so fchmodat cannot be redirected.
    if (::fchmodat(parent.get(), name, archive_entry_perm(e) & 07777, 0) != 0)
      return fail(entry_sys_error("chmod"));
    return {};
  }

  // A hard link's target must already exist in this layer (dest started
  // empty) and be reachable without symlinks; the target itself may be a
  // symlink, which linkat without AT_SYMLINK_FOLLOW links as such.
  Result<void> make_hardlink(const Parts& parts, const char* target) {
    std::string shown = printable(target);
    Parts tparts;
    if (std::string why = split_path(target, scope_, tparts); !why.empty())
      return fail(entry_error(fmt::format("hard link target '{}': {}", shown, why)));
    if (tparts.empty()) return fail(entry_error("hard link to the " + scope_ + " root"));
    UniqueFd tdir = TRY(open_dir_at(tparts, tparts.size() - 1, false,
                                    fmt::format("hard link target '{}'", shown)));
    struct stat st;
    if (::fstatat(tdir.get(), tparts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        return fail(entry_error(fmt::format("hard link target '{}' does not exist in the {}",
                                            shown, scope_)));
      return fail(entry_sys_error("stat", shown));
    }
    if (S_ISDIR(st.st_mode))
      return fail(entry_error(fmt::format("hard link target '{}' is a directory", shown)));
    if (kind_ == Kind::image_archive && !S_ISREG(st.st_mode))
      return fail(entry_error(fmt::format("hard link target '{}' is not a regular file", shown)));
    if (tparts == parts) return {};  // links to itself: already there
    UniqueFd parent = TRY(open_parent(parts));
    TRYV(clear_name(parent.get(), parts));
    if (::linkat(tdir.get(), tparts.back().c_str(), parent.get(), parts.back().c_str(), 0) != 0)
      return fail(entry_sys_error("link", shown));
    return {};
  }

  // OCI whiteouts in overlayfs form. A whiteout only hides lower layers, so
  // one whose name exists in this layer already leaves it alone.
  Result<void> whiteout(const Parts& parts) {
    std::string_view name = parts.back();
    if (name == kOpaqueMarker) {
      UniqueFd dir = TRY(open_dir_at(parts, parts.size() - 1, true, "path"));
      if (::fsetxattr(dir.get(), kOpaqueXattr, "y", 1, 0) != 0)
        return fail(entry_sys_error("set xattr", kOpaqueXattr));
      return {};
    }
    if (name.starts_with(kWhiteoutMetaPrefix)) {
      // Reserved (aufs bookkeeping such as .wh..wh.plnk); not content.
      log_debug("{}: ignoring reserved whiteout entry", prefix());
      return {};
    }
    std::string hidden(name.substr(kWhiteoutPrefix.size()));
    if (hidden.empty() || hidden == "." || hidden == "..")
      return fail(entry_error("invalid whiteout name"));
    UniqueFd parent = TRY(open_parent(parts));
    struct stat st;
    if (::fstatat(parent.get(), hidden.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return {};
    if (errno != ENOENT) return fail(entry_sys_error("stat", printable(hidden)));
    if (::mknodat(parent.get(), hidden.c_str(), S_IFCHR, makedev(0, 0)) != 0)
      return fail(entry_sys_error("mknod", printable(hidden)));
    return {};
  }

  // Image archives: symlinks are resolved at the end, when every file they
  // may point to exists.
  Result<void> defer_symlink(const Parts& parts, archive_entry* e) {
    const char* target = archive_entry_symlink(e);
    if (!target || !*target) return fail(entry_error("symlink without a target"));
    TRYV(open_parent(parts));
    pending_index_[join(parts)] = pending_.size();
    pending_.push_back(PendingLink{parts, target});
    return {};
  }

  void forget_pending(const std::string& rel) {
    auto it = pending_index_.find(rel);
    if (it == pending_index_.end()) return;
    pending_[it->second].alive = false;
    pending_index_.erase(it);
  }

  // Resolves `target` lexically against the directory of `link`: absolute
  // targets start at the archive root; ".." may not climb above it.
  Result<Parts> resolve(const Parts& link, const std::string& target) {
    if (target.size() > kMaxPath) return fail(entry_error("symlink target too long"));
    Parts out;
    if (target.front() != '/') out.assign(link.begin(), link.end() - 1);
    size_t pos = 0;
    while (pos <= target.size()) {
      size_t slash = target.find('/', pos);
      if (slash == std::string::npos) slash = target.size();
      std::string_view comp = std::string_view(target).substr(pos, slash - pos);
      pos = slash + 1;
      if (comp.empty() || comp == ".") continue;
      if (comp != "..") {
        out.emplace_back(comp);
      } else if (out.empty()) {
        return fail(entry_error(
            fmt::format("symlink target '{}' points outside the archive", printable(target))));
      } else {
        out.pop_back();
      }
    }
    if (out.empty()) return fail(entry_error("symlink to the archive root"));
    return out;
  }

  Result<void> link_pending(size_t index) {
    const PendingLink& link = pending_[index];
    current_ = printable(join(link.parts));
    Parts at = link.parts;
    std::string target = link.target;
    Parts dest;
    for (int depth = 0;; ++depth) {
      if (depth >= kMaxLinkDepth) return fail(entry_error("too many levels of symbolic links"));
      dest = TRY(resolve(at, target));
      auto next = pending_index_.find(join(dest));
      if (next == pending_index_.end()) break;
      at = dest;
      target = pending_[next->second].target;
    }
    std::string shown = printable(link.target);
    auto tdir = open_dir_at(dest, dest.size() - 1, false, fmt::format("symlink target '{}'", shown));
    struct stat st;
    if (!tdir || ::fstatat(tdir->get(), dest.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      return fail(entry_error(
          fmt::format("symlink target '{}' is not a regular file in the archive", shown)));
    UniqueFd parent = TRY(open_parent(link.parts));
    TRYV(clear_name(parent.get(), link.parts));
    if (::linkat(tdir->get(), dest.back().c_str(), parent.get(), link.parts.back().c_str(), 0) != 0)
      return fail(entry_sys_error("link", shown));
    return {};
  }

  int root_;
  std::string what_;
  Kind kind_;
  std::string scope_;
  std::string current_;  // the entry being processed, printable
  uint64_t size_ = 0;
  uint64_t entries_ = 0;
  std::map<std::string, DirMeta> dirs_;
  std::vector<PendingLink> pending_;
  std::unordered_map<std::string, size_t> pending_index_;
};

Result<void> extract(TarStream& stream, Unpacker& unpacker, const std::string& what) {
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(stream.tar(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail(make_error(what + ": read", {}, stream.error_text()));
    if (r == ARCHIVE_WARN) log_debug("{}: {}", what, archive_text(stream.tar()));
    TRYV(unpacker.add(stream.tar(), e));
  }
  TRYV(stream.drain(what));
  return unpacker.finish();
}

}  // namespace

Result<UnpackedLayer> unpack_layer(const std::string& blob_path, const std::string& dest,
                                   const std::string& what) {
  UniqueFd root = TRY(open_path(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  auto stream = TRY(TarStream::open(blob_path, what));
  Unpacker unpacker(root.get(), what, Kind::layer);
  TRYV(extract(*stream, unpacker, what));
  return UnpackedLayer{stream->digest(), unpacker.size(), unpacker.entries()};
}

Result<void> extract_archive(const std::string& archive_path, const std::string& dest,
                             const std::string& what) {
  UniqueFd root = TRY(open_path(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  auto stream = TRY(TarStream::open(archive_path, what));
  Unpacker unpacker(root.get(), what, Kind::image_archive);
  return extract(*stream, unpacker, what);
}

}  // namespace isola
