#include "engine/container_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <set>

#include "engine/container_tar.h"
#include "image/rootfs.h"

namespace isola {

CopyEndpoint parse_copy_endpoint(const std::string& arg) {
  if (arg == "-") return {"", "-", true};
  size_t colon = arg.find(':');
  // "./a:b" and "/a:b" are local paths; so is anything without a colon.
  if (colon == std::string::npos || colon == 0 || arg.starts_with("/") || arg.starts_with("."))
    return {"", arg, false};
  return {arg.substr(0, colon), arg.substr(colon + 1), false};
}

namespace {

bool ends_with_dot(const std::string& p) { return p == "." || p.ends_with("/."); }

// Without a trailing "/" or "/." (but "/" stays "/").
std::string trim_tail(std::string p) {
  for (;;) {
    if (p.size() > 1 && p.ends_with("/")) p.pop_back();
    else if (p.size() > 2 && p.ends_with("/.")) p.resize(p.size() - 2);
    else return p;
  }
}

}  // namespace

std::string path_base(const std::string& path) {
  std::string p = trim_tail(path);
  if (p == "/" || p == "." || p.empty()) return "";
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string path_dir(const std::string& path) {
  std::string p = trim_tail(path);
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

Result<CopyTarget> plan_copy(const std::string& src, PathState src_state, const std::string& dest,
                             PathState dest_state) {
  bool dest_wants_dir = dest.ends_with("/") || ends_with_dot(dest);
  if (!src_state.is_dir) {
    if (src.ends_with("/") || ends_with_dot(src))
      return fail(make_error("copy", src, "not a directory; remove the trailing '/'"));
    if (dest_state.exists && dest_state.is_dir) return CopyTarget{dest, path_base(src)};
    if (dest_wants_dir) {
      if (dest_state.exists) return fail(make_error("copy", dest, "not a directory"));
      return fail(make_error("copy", dest, "the destination directory does not exist; create it first"));
    }
    return CopyTarget{path_dir(dest), path_base(dest)};
  }
  if (dest_state.exists && !dest_state.is_dir)
    return fail(make_error("copy", dest, "cannot copy a directory to a file; give a directory"));
  if (dest_state.exists) {
    std::string base = path_base(src);
    if (ends_with_dot(src) || base.empty()) return CopyTarget{dest, ""};
    return CopyTarget{dest, base};
  }
  std::string base = path_base(dest);
  if (base.empty()) return fail(make_error("copy", dest, "the destination directory does not exist"));
  return CopyTarget{path_dir(dest), base};
}

Result<std::string> container_path(const std::string& path, const std::string& container) {
  int depth = 0;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = std::min(path.find('/', pos), path.size());
    std::string part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part == "..") {
      if (--depth < 0)
        return fail(make_error("copy", container + ":" + path,
                               "the path leaves the container's root; give a path inside the container"));
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
  }
  return path.empty() ? "/" : path;
}

ContainerRoot::ContainerRoot(ContainerRoot&& o) noexcept
    : fd_(std::move(o.fd_)),
      id_base_(o.id_base_),
      name_(std::move(o.name_)),
      unmount_(std::exchange(o.unmount_, {})),
      lock_(std::move(o.lock_)) {
  o.lock_.reset();
}

ContainerRoot::~ContainerRoot() {
  fd_.reset();
  if (!unmount_.empty()) (void)unmount_path(unmount_);
}

Result<ContainerRoot> ContainerRoot::open(Engine& engine, const ContainerRecord& rec) {
  ContainerStore& store = engine.containers();
  ContainerRoot root;
  root.name_ = rec.name;
  root.id_base_ = rec.userns_base;
  std::string dir = store.rootfs_dir(rec.id);
  auto running = [&] {
    std::string s = store.state(rec.id).status;
    return s == "running" || s == "paused";
  };
  if (!running()) {
    // Held until the mount made here is gone: the container cannot start on it meanwhile.
    root.lock_.emplace(TRY(store.lock(rec.id)));
    if (running()) root.lock_.reset();
  }
  if (!is_mount_point(dir)) {
    if (!root.lock_)
      return fail(make_error("open the root file system of", rec.name, "it is not mounted; restart the container"));
    TRYV(engine.mount_rootfs(rec));
    root.unmount_ = dir;
  }
  root.fd_ = TRY(open_path(dir, O_PATH | O_DIRECTORY));
  return root;
}

namespace {

std::string where(const FileTree& t) { return t.root_fd < 0 ? "the host" : "container " + t.label; }

Result<UniqueFd> open_item(const FileTree& t, const std::string& path, bool follow) {
  int flags = O_PATH | (follow ? 0 : O_NOFOLLOW);
  auto fd = t.root_fd < 0 ? open_path(path, flags) : open_in_root(t.root_fd, path, flags);
  if (!fd && fd.error().err == ENOTDIR)
    return fail(make_error("copy", path, "not a directory in " + where(t) + "; remove the trailing '/'"));
  if (!fd && fd.error().err == ENOENT)
    return fail(make_error("copy", path, "no such file or directory in " + where(t)));
  return fd;
}

Result<PathState> state_of(const FileTree& t, const std::string& path) {
  auto fd = open_item(t, path, true);
  if (!fd) {
    if (fd.error().detail.starts_with("no such file")) return PathState{};
    return fail(fd.error());
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return fail(sys_error("stat", path));
  return PathState{true, S_ISDIR(st.st_mode)};
}

// Where extract_tar puts entries, and who owns them.
Result<TarTarget> target_for(const FileTree& to, const std::string& dir, bool archive, UniqueFd& keep) {
  TarTarget t;
  t.label = to.root_fd < 0 ? dir : to.label + ":" + dir;
  auto fd = open_item(to, dir, true);
  if (!fd) return fail(make_error("copy", t.label, "the destination directory does not exist; create it first"));
  struct stat st;
  if (::fstat(fd->get(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail(make_error("copy", t.label, "the destination is not a directory"));
  keep = std::move(*fd);
  if (to.root_fd >= 0) {
    t.root_fd = to.root_fd;
    t.dir_path = dir;
  } else {
    t.dir_fd = keep.get();
  }
  t.keep_owners = archive;
  t.chown_to_base = !archive && to.root_fd >= 0;  // docker: files copied in belong to the container's root
  t.owner_base = to.root_fd >= 0 ? to.id_base : 0;
  return t;
}

bool follows(const std::string& src, bool follow_link) {
  return follow_link || src.ends_with("/") || ends_with_dot(src);
}

}  // namespace

Result<void> copy_between(const FileTree& from, const std::string& src, const FileTree& to, const std::string& dest,
                          const CopyOptions& options) {
  UniqueFd item = TRY(open_item(from, src, follows(src, options.follow_link)));
  struct stat st;
  if (::fstat(item.get(), &st) != 0) return fail(sys_error("stat", src));
  PathState dest_state = TRY(state_of(to, dest));
  CopyTarget plan = TRY(plan_copy(src, {true, S_ISDIR(st.st_mode)}, dest, dest_state));
  UniqueFd dir;
  TarTarget target = TRY(target_for(to, plan.dir, options.archive, dir));
  UniqueFd tar = TRY(anonymous_file());
  TRYV(write_tar({std::move(item), plan.name, from.id_base}, tar.get()));
  return extract_tar(tar.get(), target);
}

Result<void> copy_to_stream(const FileTree& from, const std::string& src, int out_fd, bool follow_link) {
  UniqueFd item = TRY(open_item(from, src, follows(src, follow_link)));
  struct stat st;
  if (::fstat(item.get(), &st) != 0) return fail(sys_error("stat", src));
  if (!S_ISDIR(st.st_mode) && (src.ends_with("/") || ends_with_dot(src)))
    return fail(make_error("copy", src, "not a directory; remove the trailing '/'"));
  std::string name = ends_with_dot(src) ? "" : path_base(src);
  return write_tar({std::move(item), name, from.id_base}, out_fd);
}

Result<void> copy_from_stream(int in_fd, const FileTree& to, const std::string& dest, const CopyOptions& options) {
  UniqueFd dir;
  TarTarget target = TRY(target_for(to, dest, options.archive, dir));
  UniqueFd tar = TRY(spool(in_fd));
  return extract_tar(tar.get(), target);
}

Result<void> export_tree(const FileTree& from, int out_fd) {
  UniqueFd item = TRY(open_item(from, "/", true));
  return write_tar({std::move(item), "", from.id_base}, out_fd);
}

namespace {

class ChangeWalker {
 public:
  explicit ChangeWalker(std::vector<UniqueFd> lowers) : lowers_(std::move(lowers)) {}

  Result<void> walk(int dirfd, const std::string& rel, bool parent_new, std::vector<Change>& out) {
    for (const std::string& name : TRY(names(dirfd, rel))) {
      std::string path = rel + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
        out.push_back({'D', path});
        continue;
      }
      bool in_lower = !parent_new && in_lowers(path.substr(1));
      out.push_back({in_lower ? 'C' : 'A', path});
      if (!S_ISDIR(st.st_mode)) continue;
      UniqueFd child(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) return fail(sys_error("open", path));
      char opaque[4];
      ssize_t n = ::fgetxattr(child.get(), "trusted.overlay.opaque", opaque, sizeof opaque);
      if (in_lower && n == 1 && opaque[0] == 'y') TRYV(hidden(child.get(), path, out));
      TRYV(walk(child.get(), path, !in_lower, out));
    }
    return {};
  }

 private:
  static Result<std::vector<std::string>> names(int dirfd, const std::string& rel) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
    if (!dir) {
      if (fd >= 0) ::close(fd);
      return fail(sys_error("read directory", rel.empty() ? "/" : rel));
    }
    std::vector<std::string> out;
    while (struct dirent* ent = ::readdir(dir)) {
      std::string_view n = ent->d_name;
      if (n != "." && n != "..") out.emplace_back(n);
    }
    ::closedir(dir);
    return out;
  }

  // Whether the image's layers have `rel` (the topmost layer that names it decides).
  bool in_lowers(const std::string& rel) {
    for (const UniqueFd& lower : lowers_) {
      auto fd = open_beneath(lower.get(), rel, O_PATH | O_NOFOLLOW);
      if (!fd) continue;
      struct stat st;
      if (::fstat(fd->get(), &st) != 0) continue;
      return !(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    }
    return false;
  }

  // An opaque directory hides what the layers had in it: each such name is deleted.
  Result<void> hidden(int upper_dir, const std::string& path, std::vector<Change>& out) {
    std::set<std::string> seen;
    for (const UniqueFd& lower : lowers_) {
      auto fd = open_beneath(lower.get(), path.substr(1), O_RDONLY | O_DIRECTORY);
      if (!fd) continue;
      for (const std::string& name : TRY(names(fd->get(), path))) {
        struct stat st;
        if (seen.insert(name).second && ::fstatat(upper_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
          out.push_back({'D', path + "/" + name});
      }
    }
    return {};
  }

  std::vector<UniqueFd> lowers_;
};

}  // namespace

Result<std::vector<Change>> upper_changes(const std::string& upper, const std::vector<std::string>& lowers_top_first) {
  std::vector<UniqueFd> lowers;
  for (const std::string& l : lowers_top_first) lowers.push_back(TRY(open_path(l, O_PATH | O_DIRECTORY)));
  UniqueFd top = TRY(open_path(upper, O_RDONLY | O_DIRECTORY));
  std::vector<Change> out;
  TRYV(ChangeWalker(std::move(lowers)).walk(top.get(), "", false, out));
  std::sort(out.begin(), out.end(), [](const Change& a, const Change& b) { return a.path < b.path; });
  return out;
}

Result<std::vector<Change>> container_changes(Engine& engine, const ContainerRecord& rec) {
  std::string upper = engine.containers().upper_dir(rec.id);
  if (!is_directory(upper)) return std::vector<Change>{};
  ImageRecord image = TRY(engine.images().resolve(rec.image_id));
  std::vector<std::string> lowers;
  for (auto it = image.layers.rbegin(); it != image.layers.rend(); ++it)
    lowers.push_back(engine.images().layer_dir(*it));
  return upper_changes(upper, lowers);
}

}  // namespace isola
