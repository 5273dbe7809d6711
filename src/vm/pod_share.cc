#include "vm/pod_share.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/unique_fd.h"

namespace isola {

namespace {

// A mount point of the source's kind: a directory, or an empty file.
Result<void> make_mount_point(const std::string& source, const std::string& target) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return fail(sys_error("stat", source));
  TRYV(mkdir_p(target.substr(0, target.rfind('/')), 0700));
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) return fail(sys_error("mkdir", target));
    return {};
  }
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(sys_error("create", target));
  ::close(fd);
  return {};
}

// The worker's namespace, which must not be the caller's: a worker that
// went and a PID that named another process would otherwise graft into
// the host's.
Result<UniqueFd> worker_mount_ns(const std::string& path) {
  UniqueFd ns = TRY(open_path(path, O_RDONLY));
  struct stat target {}, own {};
  if (::fstat(ns.get(), &target) != 0 || ::stat("/proc/self/ns/mnt", &own) != 0)
    return fail(sys_error("stat", path));
  if (target.st_dev == own.st_dev && target.st_ino == own.st_ino)
    return fail(make_error("join the VM worker's mounts", path, "it is the caller's own mount namespace"));
  return ns;
}

// Runs `body` in a child that has joined the mount namespace `ns`; the
// child's first failure comes back as the error.
template <typename Body>
Result<void> in_mount_ns(const UniqueFd& ns, Body body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(sys_error("pipe"));
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = ::fork();
  if (child < 0) return fail(sys_error("fork"));
  if (child == 0) {
    rd.reset();
    Result<void> r = ::setns(ns.get(), CLONE_NEWNS) == 0 ? body() : fail(sys_error("join the VM worker's mount namespace"));
    if (!r) {
      std::string message = r.error().message();
      (void)!::write(wr.get(), message.data(), message.size());  // one short write to a pipe
    }
    ::_exit(r ? 0 : 1);
  }
  wr.reset();
  std::string message = read_fd(rd.get(), "graft report", 64 * 1024).value_or("");
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return fail(plain_error(message.empty() ? "the helper that joins the VM worker's mounts died" : message));
}

}  // namespace

std::string worker_mount_ns_path(pid_t keeper, pid_t worker) {
  return "/proc/" + std::to_string(keeper) + "/root/proc/" + std::to_string(worker) + "/ns/mnt";
}

Result<void> graft_into_worker(const std::string& mount_ns, const std::vector<PodGraft>& grafts) {
  UniqueFd ns = TRY(worker_mount_ns(mount_ns));
  std::vector<UniqueFd> trees;
  for (const PodGraft& g : grafts) {
    TRYV(make_mount_point(g.source, g.target));
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (g.recursive ? AT_RECURSIVE : 0);
    int tree = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, g.source.c_str(), flags));
    if (tree < 0) return fail(sys_error("open_tree", g.source));
    trees.emplace_back(tree);
  }
  return in_mount_ns(ns, [&]() -> Result<void> {
    for (size_t i = 0; i < grafts.size(); ++i) {
      if (::syscall(SYS_move_mount, trees[i].get(), "", AT_FDCWD, grafts[i].target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0)
        continue;
      Error e = sys_error("move_mount", grafts[i].target);
      for (size_t j = 0; j < i; ++j) ::umount2(grafts[j].target.c_str(), MNT_DETACH);
      return fail(std::move(e));
    }
    return {};
  });
}

void ungraft_from_worker(const std::string& mount_ns, const std::vector<std::string>& targets) {
  auto ns = worker_mount_ns(mount_ns);
  if (!ns) return;
  (void)in_mount_ns(*ns, [&]() -> Result<void> {
    for (const std::string& t : targets) ::umount2(t.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    return {};
  });
}

}  // namespace isola
