// Helpers shared by the fuzz harnesses: a work directory per fuzzer,
// emptying directories that hostile archives filled, a snapshot of a tree
// to prove that nothing outside a target directory changed, and checks
// that abort (libFuzzer then keeps the input as a crash).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace isola::fuzz {

[[noreturn]] inline void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("isola fuzz check failed: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::abort();
}

// A property of the code under test that must hold for every input.
#define FUZZ_CHECK(cond)                                                     \
  do {                                                                       \
    if (!(cond)) ::isola::fuzz::die("%s:%d: %s", __FILE__, __LINE__, #cond); \
  } while (0)

inline void write_all(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) die("harness: open %s: %s", path.c_str(), std::strerror(errno));
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      die("harness: write %s: %s", path.c_str(), std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  ::close(fd);
}

inline void make_dir(const std::string& path, mode_t mode = 0755) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    die("harness: mkdir %s: %s", path.c_str(), std::strerror(errno));
}

// Removes everything inside the directory `dirfd` (never following
// symlinks, whatever the modes), with descriptors only, so no path length
// limits apply. Returns false on the first failure.
inline bool empty_dirfd(int dirfd) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return false;
  DIR* dir = ::fdopendir(dup);
  if (!dir) {
    ::close(dup);
    return false;
  }
  bool ok = true;
  std::set<std::string> names;
  while (struct dirent* ent = ::readdir(dir))
    if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) names.insert(ent->d_name);
  ::closedir(dir);
  for (const std::string& name : names) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    if (S_ISDIR(st.st_mode)) {
      ::fchmodat(dirfd, name.c_str(), 0700, 0);
      int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return false;
      ok = empty_dirfd(sub);
      ::close(sub);
      if (!ok || ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return false;
    } else if (::unlinkat(dirfd, name.c_str(), 0) != 0) {
      return false;
    }
  }
  return ok;
}

inline void empty_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die("harness: open %s: %s", path.c_str(), std::strerror(errno));
  if (!empty_dirfd(fd)) die("harness: cannot empty %s: %s", path.c_str(), std::strerror(errno));
  ::close(fd);
}

// The fuzzer's own scratch directory: $ISOLA_FUZZ_WORKDIR/<name> (set by
// scripts/fuzz, preferably on tmpfs), else a fresh one under $TMPDIR that
// is removed at exit.
inline std::string workdir(const char* name) {
  static std::string made;
  if (const char* base = std::getenv("ISOLA_FUZZ_WORKDIR"); base && *base) {
    std::string dir = std::string(base) + "/" + name;
    make_dir(base, 0700);
    make_dir(dir, 0700);
    empty_dir(dir);
    return dir;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/isola-fuzz-" + name + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) die("harness: mkdtemp %s: %s", tmpl.c_str(), std::strerror(errno));
  made = tmpl;
  std::atexit([] {
    if (made.empty()) return;
    empty_dir(made);
    ::rmdir(made.c_str());
  });
  return made;
}

// Open descriptors of this process: a parser that leaks one per input
// would exhaust a long-running monitor.
inline int count_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return -1;
  int n = 0;
  while (struct dirent* ent = ::readdir(dir))
    if (ent->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n;
}

// The open descriptors and what they are, for the message of a leak.
inline std::string describe_fds() {
  std::string out;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return out;
  while (struct dirent* ent = ::readdir(dir)) {
    if (ent->d_name[0] == '.') continue;
    char target[512];
    std::string link = std::string("/proc/self/fd/") + ent->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    out += std::string(" ") + ent->d_name + "=" + target;
  }
  ::closedir(dir);
  return out;
}

// Aborts if more descriptors are open than `before`.
inline void expect_no_fd_leak(int before) {
  int now = count_fds();
  if (now != before) die("descriptor leak: %d open, %d before:%s", now, before, describe_fds().c_str());
}

// What can be seen of every entry of a tree, to compare before and after:
// type, mode, owner, size, link count, times (ctime catches chmod/chown
// through a link) and a symlink's target.
struct EntryMeta {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  nlink_t nlink = 0;
  struct timespec mtime {}, ctime {};
  std::string link;
  bool operator==(const EntryMeta& o) const {
    return mode == o.mode && uid == o.uid && gid == o.gid && size == o.size && nlink == o.nlink &&
           mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
           ctime.tv_nsec == o.ctime.tv_nsec && link == o.link;
  }
};
using Snapshot = std::map<std::string, EntryMeta>;

// Every entry below `root` (relative names), skipping the subtrees named in
// `skip_below` (their own entry keeps its type, mode and owner) and recording only
// the existence of the entries in `skip_meta`.
inline void snapshot_into(const std::string& root, const std::string& rel, const std::set<std::string>& skip_below,
                          const std::set<std::string>& skip_meta, Snapshot& out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) die("harness: opendir %s: %s", path.c_str(), std::strerror(errno));
  std::set<std::string> names;
  while (struct dirent* ent = ::readdir(dir))
    if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) names.insert(ent->d_name);
  ::closedir(dir);
  for (const std::string& name : names) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    std::string p = root + "/" + r;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) die("harness: lstat %s: %s", p.c_str(), std::strerror(errno));
    EntryMeta m;
    m.mode = st.st_mode;
    if (skip_meta.contains(r)) {
      m.mode = st.st_mode & S_IFMT;
      out[r] = m;
      continue;
    }
    m.uid = st.st_uid;
    m.gid = st.st_gid;
    if (!skip_below.contains(r)) {
      m.nlink = st.st_nlink;
      m.size = st.st_size;
      m.mtime = st.st_mtim;
      m.ctime = st.st_ctim;
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof buf);
      if (n > 0) m.link.assign(buf, static_cast<size_t>(n));
    }
    out[r] = m;
    if (S_ISDIR(st.st_mode) && !skip_below.contains(r)) snapshot_into(root, r, skip_below, skip_meta, out);
  }
}

inline Snapshot snapshot(const std::string& root, const std::set<std::string>& skip_below,
                         const std::set<std::string>& skip_meta) {
  Snapshot s;
  snapshot_into(root, "", skip_below, skip_meta, s);
  return s;
}

// Aborts naming the first difference between two snapshots.
inline void expect_same(const Snapshot& before, const Snapshot& after, const char* what) {
  for (const auto& [name, meta] : after) {
    auto it = before.find(name);
    if (it == before.end()) die("%s: '%s' appeared outside the target directory", what, name.c_str());
    if (!(it->second == meta)) die("%s: '%s' outside the target directory changed", what, name.c_str());
  }
  for (const auto& [name, meta] : before)
    if (!after.contains(name)) die("%s: '%s' outside the target directory disappeared", what, name.c_str());
}

// The input split at a separator line.
inline std::vector<std::string> split_sections(std::string_view data, std::string_view sep) {
  std::vector<std::string> out;
  for (;;) {
    size_t at = data.find(sep);
    if (at == std::string_view::npos) {
      out.emplace_back(data);
      return out;
    }
    out.emplace_back(data.substr(0, at));
    data.remove_prefix(at + sep.size());
  }
}

}  // namespace isola::fuzz
