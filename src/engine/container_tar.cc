#include "engine/container_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "common/fs.h"
#include "common/log.h"

namespace isola {

namespace {

constexpr uint32_t kIdRange = 65536;

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

std::string tar_error(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown tar error";
}

class TarWriter {
 public:
  TarWriter(archive* a, uint32_t id_base) : a_(a), id_base_(id_base) {}

  // `fd` is an O_PATH descriptor; `name` its tar name ("" = children only).
  Result<void> add(UniqueFd fd, const std::string& name) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", shown(name)));
    if (S_ISSOCK(st.st_mode)) return {};  // tar cannot hold a socket
    if (S_ISDIR(st.st_mode)) return directory(fd.get(), name, st);
    EntryPtr e = entry(name, st);
    if (S_ISLNK(st.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(fd.get(), "", target.data(), target.size());
      if (n < 0) return fail(sys_error("readlink", shown(name)));
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(e.get(), target.c_str());
      return header(e.get(), name);
    }
    if (!S_ISREG(st.st_mode)) return header(e.get(), name);  // fifos and device nodes: the header is all
    if (st.st_nlink > 1) {
      auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, name);
      if (!first) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        return header(e.get(), name);
      }
    }
    // Reopened through /proc/self/fd: the pinned inode, which is a regular
    // file, so no device is ever opened for reading.
    std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    UniqueFd data_fd(::open(proc.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!data_fd) return fail(sys_error("open", shown(name)));
    TRYV(header(e.get(), name));
    return data(data_fd.get(), name, static_cast<uint64_t>(st.st_size));
  }

 private:
  static std::string shown(const std::string& name) { return name.empty() ? "/" : name; }

  EntryPtr entry(const std::string& name, const struct stat& st) const {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_uid(e.get(), shift(st.st_uid));
    archive_entry_set_gid(e.get(), shift(st.st_gid));
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
    if (id_base_ == 0) return id;
    if (id >= id_base_ && id - id_base_ < kIdRange) return id - id_base_;
    return 65534;  // not one of the container's ids: nobody, as it sees it
  }

  Result<void> header(archive_entry* e, const std::string& name) {
    if (archive_write_header(a_, e) < ARCHIVE_WARN)
      return fail(make_error("write tar", shown(name), tar_error(a_)));
    return {};
  }

  // Exactly `size` bytes: a file that shrinks meanwhile is padded, one that grows is cut.
  Result<void> data(int fd, const std::string& name, uint64_t size) {
    std::vector<char> buf(1 << 16);
    uint64_t done = 0;
    while (done < size) {
      ssize_t n = ::read(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(sys_error("read", shown(name)));
      if (n == 0) {
        std::fill(buf.begin(), buf.end(), 0);
        n = static_cast<ssize_t>(std::min<uint64_t>(buf.size(), size - done));
      }
      if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) < 0)
        return fail(make_error("write tar", shown(name), tar_error(a_)));
      done += static_cast<uint64_t>(n);
    }
    return {};
  }

  Result<void> directory(int fd, const std::string& name, const struct stat& st) {
    if (!name.empty()) {
      EntryPtr e = entry(name, st);
      TRYV(header(e.get(), name));
    }
    UniqueFd dir(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return fail(sys_error("open", shown(name)));
    for (const std::string& child : TRY(names(dir.get(), name))) {
      UniqueFd c(::openat(dir.get(), child.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (!c && errno == ENOENT) continue;  // removed meanwhile (a running container)
      std::string path = name.empty() ? child : name + "/" + child;
      if (!c) return fail(sys_error("open", path));
      TRYV(add(std::move(c), path));
    }
    return {};
  }

  static Result<std::vector<std::string>> names(int dirfd, const std::string& name) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
    if (!dir) {
      if (fd >= 0) ::close(fd);
      return fail(sys_error("read directory", shown(name)));
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

  archive* a_;
  uint32_t id_base_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// "./a//b/" -> "a/b"; nullopt when ".." climbs above the start.
std::optional<std::string> clean_name(const std::string& name) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t end = std::min(name.find('/', pos), name.size());
    std::string part = name.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

bool below_symlink(const std::string& name, const std::set<std::string>& links) {
  for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
    if (links.count(name.substr(0, slash))) return true;
  return false;
}

Result<std::unique_ptr<archive, ReadFree>> open_reader(int fd) {
  if (::lseek(fd, 0, SEEK_SET) != 0) return fail(sys_error("seek", "tar"));
  std::unique_ptr<archive, ReadFree> a(archive_read_new());
  if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK ||
      archive_read_support_format_gnutar(a.get()) != ARCHIVE_OK ||
      archive_read_open_fd(a.get(), fd, 1 << 16) != ARCHIVE_OK)
    return fail(make_error("read tar", "", tar_error(a.get())));
  return a;
}

// The first pass: every name is checked before anything is written.
Result<void> check_tar(int tar_fd, const std::string& label) {
  auto a = TRY(open_reader(tar_fd));
  std::set<std::string> links;
  archive_entry* e;
  int r;
  auto refuse = [&](const std::string& name, const std::string& why) {
    return fail(make_error("extract tar into " + label, name, why + "; nothing was copied"));
  };
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    std::string raw = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    auto name = clean_name(raw);
    if (!name) return refuse(raw, "the name leaves the destination");
    if (below_symlink(*name, links)) return refuse(raw, "the name is below a symlink of the same tar");
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK)
      return refuse(raw, "is a device node, which isola does not create (roots are mounted nodev)");
    if (const char* hl = archive_entry_hardlink(e)) {
      auto target = clean_name(hl);
      if (!target || target->empty() || below_symlink(*target, links))
        return refuse(raw, "a hard link to \"" + std::string(hl) + "\", outside the destination");
    }
    if (type == AE_IFLNK) links.insert(*name);
    archive_read_data_skip(a.get());
  }
  if (r != ARCHIVE_EOF) return fail(make_error("read tar", label, tar_error(a.get())));
  return {};
}

class Extractor {
 public:
  Extractor(archive* a, const TarTarget& t) : a_(a), t_(t) {}

  Result<void> entry(archive_entry* e) {
    std::string name = *clean_name(archive_entry_pathname(e));
    if (name.empty()) return {};  // "." itself: the destination exists
    size_t slash = name.rfind('/');
    std::string parent = slash == std::string::npos ? "" : name.substr(0, slash);
    std::string leaf = slash == std::string::npos ? name : name.substr(slash + 1);
    UniqueFd dir = TRY(ensure_dir(parent));
    mode_t type = archive_entry_filetype(e);
    struct stat cur;
    bool exists = ::fstatat(dir.get(), leaf.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0;
    bool is_dir_entry = type == AE_IFDIR && !archive_entry_hardlink(e);
    if (exists && S_ISDIR(cur.st_mode) && !is_dir_entry)
      return fail(make_error("copy", shown(name), "cannot overwrite a directory with a non-directory"));
    if (exists && !S_ISDIR(cur.st_mode) && ::unlinkat(dir.get(), leaf.c_str(), 0) != 0)
      return fail(sys_error("remove", shown(name)));
    if (const char* hl = archive_entry_hardlink(e)) {
      std::string target = *clean_name(hl);
      size_t ts = target.rfind('/');
      UniqueFd tdir = TRY(ensure_dir(ts == std::string::npos ? "" : target.substr(0, ts)));
      std::string tleaf = ts == std::string::npos ? target : target.substr(ts + 1);
      if (::linkat(tdir.get(), tleaf.c_str(), dir.get(), leaf.c_str(), 0) != 0)
        return fail(sys_error("link", shown(name)));
      return {};
    }
    if (type == AE_IFDIR) {
      if (!(exists && S_ISDIR(cur.st_mode)) && ::mkdirat(dir.get(), leaf.c_str(), 0700) != 0)
        return fail(sys_error("mkdir", shown(name)));
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(e);
      if (::symlinkat(target ? target : "", dir.get(), leaf.c_str()) != 0)
        return fail(sys_error("symlink", shown(name)));
    } else if (type == AE_IFIFO) {
      if (::mknodat(dir.get(), leaf.c_str(), S_IFIFO | 0600, 0) != 0) return fail(sys_error("mkfifo", shown(name)));
    } else if (type == AE_IFREG) {
      TRYV(regular(dir.get(), leaf, name, e));
    } else {
      return {};  // sockets and the like: nothing to create
    }
    return attributes(dir.get(), leaf, name, e);
  }

 private:
  static std::string shown(const std::string& name) { return "/" + name; }

  Result<UniqueFd> open_dir(const std::string& rel) {
    if (t_.root_fd >= 0) return open_in_root(t_.root_fd, path_join(t_.dir_path, rel), O_PATH | O_DIRECTORY);
    return open_beneath(t_.dir_fd, rel, O_PATH | O_DIRECTORY);
  }

  // The directory `rel` below the destination, made (0755) where missing.
  Result<UniqueFd> ensure_dir(const std::string& rel) {
    if (auto fd = open_dir(rel); fd || fd.error().err != ENOENT) return fd;
    size_t slash = rel.rfind('/');
    UniqueFd parent = TRY(ensure_dir(slash == std::string::npos ? "" : rel.substr(0, slash)));
    std::string leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
    if (::mkdirat(parent.get(), leaf.c_str(), 0755) != 0 && errno != EEXIST) return fail(sys_error("mkdir", rel));
    if (t_.chown_to_base || t_.keep_owners)
      (void)::fchownat(parent.get(), leaf.c_str(), t_.owner_base, t_.owner_base, AT_SYMLINK_NOFOLLOW);
    return open_dir(rel);
  }

  Result<void> regular(int dir, const std::string& leaf, const std::string& name, archive_entry* e) {
    UniqueFd fd(::openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return fail(sys_error("create", shown(name)));
    const void* buf;
    size_t n;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a_, &buf, &n, &off)) == ARCHIVE_OK) {
      const char* p = static_cast<const char*>(buf);
      while (n > 0) {
        ssize_t w = ::pwrite(fd.get(), p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return fail(sys_error("write", shown(name)));
        p += w, n -= static_cast<size_t>(w), off += w;
      }
    }
    if (r != ARCHIVE_EOF) return fail(make_error("read tar", name, tar_error(a_)));
    // A sparse tail is a hole the writes above did not reach.
    if (::ftruncate(fd.get(), archive_entry_size(e)) != 0) return fail(sys_error("truncate", shown(name)));
    return {};
  }

  Result<void> attributes(int dir, const std::string& leaf, const std::string& name, archive_entry* e) {
    if (t_.keep_owners || t_.chown_to_base) {
      int64_t tar_uid = t_.keep_owners ? archive_entry_uid(e) : 0, tar_gid = t_.keep_owners ? archive_entry_gid(e) : 0;
      // Into a user-namespaced container, only ids of its own range.
      if (t_.owner_base != 0 && (tar_uid < 0 || tar_gid < 0 || tar_uid >= kIdRange || tar_gid >= kIdRange))
        return fail(make_error("copy", shown(name),
                               "its owner is outside the container's ids (0-65535); nothing more was copied"));
      uid_t uid = t_.owner_base + static_cast<uid_t>(tar_uid);
      gid_t gid = t_.owner_base + static_cast<gid_t>(tar_gid);
      if (::fchownat(dir, leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return fail(sys_error("chown", shown(name)));
    }
    if (archive_entry_filetype(e) == AE_IFLNK) return {};
    // After the chown, which clears set-id bits. Onto the host without -a
    // the file is root's now: no set-id bits from the container.
    mode_t mode = archive_entry_perm(e) & 07777;
    if (t_.root_fd < 0 && !t_.keep_owners) mode &= ~static_cast<mode_t>(06000);
    // Through a descriptor of what was just made: a running container
    // cannot swap the name for a symlink to a host file in between.
    UniqueFd node(::openat(dir, leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!node || ::fstat(node.get(), &st) != 0) return fail(sys_error("open", shown(name)));
    if (S_ISLNK(st.st_mode))
      return fail(make_error("copy", shown(name), "it was replaced by a symlink while copying; nothing more was copied"));
    if (::chmod(("/proc/self/fd/" + std::to_string(node.get())).c_str(), mode) != 0)
      return fail(sys_error("chmod", shown(name)));
    if (archive_entry_filetype(e) != AE_IFDIR) {
      struct timespec times[2] = {{0, UTIME_OMIT}, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
      (void)::utimensat(dir, leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
    return {};
  }

  archive* a_;
  const TarTarget& t_;
};

}  // namespace

Result<void> write_tar(TarSource source, int out_fd) {
  std::unique_ptr<archive, WriteFree> a(archive_write_new());
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open_fd(a.get(), out_fd) != ARCHIVE_OK)
    return fail(make_error("write tar", "", tar_error(a.get())));
  TarWriter writer(a.get(), source.id_base);
  TRYV(writer.add(std::move(source.item), source.name));
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail(make_error("write tar", "", tar_error(a.get())));
  return {};
}

Result<void> extract_tar(int tar_fd, const TarTarget& target) {
  TRYV(check_tar(tar_fd, target.label));
  auto a = TRY(open_reader(tar_fd));
  Extractor x(a.get(), target);
  archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    if (auto done = x.entry(e); !done) return fail(done.error().context("copy into " + target.label));
  }
  if (r != ARCHIVE_EOF) return fail(make_error("read tar", target.label, tar_error(a.get())));
  return {};
}

Result<UniqueFd> anonymous_file() {
  UniqueFd fd(::memfd_create("isola-tar", MFD_CLOEXEC));
  if (!fd) return fail(sys_error("memfd_create", "tar"));
  return fd;
}

Result<UniqueFd> spool(int fd) {
  UniqueFd out = TRY(anonymous_file());
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(sys_error("read", "standard input"));
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail(sys_error("write", "tar spool"));
      done += w;
    }
  }
  return out;
}

}  // namespace isola
