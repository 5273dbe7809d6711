// File-system helpers: whole-file reads, atomic writes, directory trees,
// descriptor-relative path resolution that never leaves a root, file locks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace isola {

// Joins two path pieces with exactly one '/'.
std::string path_join(std::string_view a, std::string_view b);

Result<UniqueFd> open_path(const std::string& path, int flags, mode_t mode = 0);
Result<UniqueFd> open_dir(const std::string& path);

// Opens `rel` below `dirfd`, refusing to leave it: no "..", no absolute
// paths, no symlinks on the way (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags, mode_t mode = 0);

// Opens `rel` as if `dirfd` were the root: symlinks and ".." are resolved
// inside it (openat2 RESOLVE_IN_ROOT), as the container would see them.
Result<UniqueFd> open_in_root(int dirfd, const std::string& rel, int flags, mode_t mode = 0);

// Reads a whole file; refuses files larger than `max_size` bytes.
Result<std::string> read_file(const std::string& path, size_t max_size = 64u << 20);
// A container-controlled file read by the host (/etc/passwd of a rootfs):
// resolved inside `root_fd` (open_in_root), and only if it is a regular file,
// so that a FIFO or a device there cannot stall or feed the reader.
Result<std::string> read_regular_in_root(int root_fd, const std::string& rel, size_t max_size);
Result<std::string> read_fd(int fd, const std::string& what, size_t max_size = 64u << 20);

// Writes `data` to a temporary file beside `path`, fsyncs it and renames it
// over `path`, so readers see the old or the new content, never a mix.
Result<void> write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644);

// Copies the regular file `source` (never following a symlink) to the new
// file `dest` (created 0644, fsync'ed); a partial copy is removed.
Result<void> copy_file(const std::string& source, const std::string& dest);
// Hard-links `source` to `dest`, or copies it when they are on different
// file systems (or linking is not permitted).
Result<void> link_or_copy(const std::string& source, const std::string& dest);

// Writes `data` to an existing file in one write (for /proc and /sys files).
Result<void> write_file_in_place(const std::string& path, std::string_view data);

Result<void> mkdir_p(const std::string& path, mode_t mode = 0755);

// Removes a tree without following symlinks and without crossing into other
// mounts (a mounted rootfs below `path` makes it fail rather than wipe it).
Result<void> remove_tree(const std::string& path);

bool path_exists(const std::string& path);
// Apparent size (st_size) of the files under `path`, each hard-linked file
// once, not crossing into other mounts; 0 when it does not exist.
Result<uint64_t> disk_usage(const std::string& path);
bool is_directory(const std::string& path);

// Names of the entries of a directory (without "." and "..").
Result<std::vector<std::string>> list_dir(const std::string& path);

// A fresh directory `parent/prefixXXXXXX`.
Result<std::string> make_temp_dir(const std::string& parent, const std::string& prefix);

// `n` random lowercase hex characters from getrandom(2).
std::string random_hex(size_t n);
// A random (version 4) UUID in lowercase, as /proc/sys/kernel/random/uuid.
std::string random_uuid();

// An flock(2) held for the object's lifetime.
class FileLock {
 public:
  enum class Mode { shared, exclusive };
  static Result<FileLock> acquire(const std::string& path, Mode mode);
  // An exclusive lock if nobody holds one now; nullopt if somebody does.
  static Result<std::optional<FileLock>> try_acquire(const std::string& path);
  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace isola
