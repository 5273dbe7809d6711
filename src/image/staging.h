// Staging directories under <root>/tmp for loads, imports, commits and
// saves: removed with their owner, and flock'ed while in use so that a later
// load removes only what a crashed process left behind.
#pragma once

#include <sys/file.h>

#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

namespace isola {

// A staging directory under <root>/tmp, flock'ed while in use so that
// clean_stale_staging() only removes what a crashed process left behind.
class Staging {
 public:
  static Result<Staging> create(const std::string& tmp_root, const std::string& prefix) {
    // Shared against clean_stale_staging(), which holds it exclusively: a
    // directory is never seen unlocked between its creation and its flock.
    FileLock guard = TRY(FileLock::acquire(tmp_root + ".lock", FileLock::Mode::shared));
    std::string path = TRY(make_temp_dir(tmp_root, prefix));
    auto fd = open_dir(path);
    if (!fd) {
      (void)remove_tree(path);
      return fail(fd.error());
    }
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
      Error e = sys_error("lock staging directory", path);
      (void)remove_tree(path);
      return fail(e);
    }
    return Staging(std::move(path), std::move(*fd));
  }
  Staging(Staging&&) = default;
  ~Staging() {
    if (!path_.empty()) {
      auto removed = remove_tree(path_);
      if (!removed) log_warn("cannot remove {}: {}", path_, removed.error().message());
    }
  }
  const std::string& path() const { return path_; }

 private:
  Staging(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace isola
