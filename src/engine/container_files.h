// A container's files as the CLI's cp, export and diff see them. Every path
// inside a container is resolved inside its root (openat2 RESOLVE_IN_ROOT on
// a descriptor of the root): its symlinks point into the container and ".."
// stops at its root. A stopped container's overlay is mounted for the
// operation (under the container's lock, so it cannot start meanwhile) and
// unmounted after; a running one's is the mount it runs on, for process and
// VM isolation alike (a VM's root is a 9p share of it), so copies into it are
// visible to the container at once.
//
// Copies travel as tar streams, as docker's: the source side archives, the
// destination side extracts. A tar from the user is untrusted: its names may
// not leave the destination, a name below one of its own symlinks is refused,
// hard links must point inside it, and device nodes are refused (isola
// mounts roots nodev; its layers hold none either).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "engine/engine.h"

namespace isola {

// One side of `isola cp`: "CONTAINER:PATH", a local path, or "-".
struct CopyEndpoint {
  std::string container;  // empty for a local path
  std::string path;
  bool stream = false;  // "-": a tar on stdin or stdout
};
// As docker: a local path that contains ':' must start with '/' or '.'.
CopyEndpoint parse_copy_endpoint(const std::string& arg);

struct PathState {
  bool exists = false;
  bool is_dir = false;
};

// Where a copy lands, by docker's rules for SRC_PATH and DEST_PATH.
struct CopyTarget {
  std::string dir;   // the existing directory the source goes into
  std::string name;  // the source's name there; empty: the directory's contents
};
Result<CopyTarget> plan_copy(const std::string& src, PathState src_state, const std::string& dest,
                             PathState dest_state);

// The last name of `path` ("/a/b/" -> "b", "/a/b/." -> "b", "/" -> "") and
// the directory that holds it ("a" -> ".", "/a" -> "/").
std::string path_base(const std::string& path);
std::string path_dir(const std::string& path);

// A container's root file system, open for one operation.
class ContainerRoot {
 public:
  static Result<ContainerRoot> open(Engine& engine, const ContainerRecord& rec);
  ContainerRoot(ContainerRoot&& o) noexcept;
  ContainerRoot& operator=(ContainerRoot&&) = delete;
  ~ContainerRoot();
  int fd() const { return fd_.get(); }
  uint32_t id_base() const { return id_base_; }
  const std::string& name() const { return name_; }

 private:
  ContainerRoot() = default;
  UniqueFd fd_;
  uint32_t id_base_ = 0;
  std::string name_;
  std::string unmount_;  // the mount made for this operation
  std::optional<FileLock> lock_;
};

// A tree to copy from or into: a container's root or the host's.
struct FileTree {
  int root_fd = -1;  // -1: the host, paths as the caller means them
  uint32_t id_base = 0;
  std::string label;  // for messages: the container's name
};

struct CopyOptions {
  bool archive = false;      // -a: keep owners; otherwise the destination's user owns copies
  bool follow_link = false;  // -L
};

// isola cp between two trees (one of them a container). Nothing is written
// when the source or the destination is refused.
Result<void> copy_between(const FileTree& from, const std::string& src, const FileTree& to, const std::string& dest,
                          const CopyOptions& options);
// isola cp CONTAINER:SRC -: a tar of SRC on `out_fd`.
Result<void> copy_to_stream(const FileTree& from, const std::string& src, int out_fd, bool follow_link);
// isola cp - CONTAINER:DEST: the tar on `in_fd` extracted into the directory DEST.
Result<void> copy_from_stream(int in_fd, const FileTree& to, const std::string& dest, const CopyOptions& options);
// isola export: the whole tree as a tar on `out_fd`.
Result<void> export_tree(const FileTree& from, int out_fd);

// isola diff: docker's "A /path", "C /path", "D /path" from an overlay upper
// directory, sorted by path; each parent of a change shows as changed.
struct Change {
  char kind;  // 'A', 'C' or 'D'
  std::string path;
};
// `upper` against the layers below it (top first, overlay form).
Result<std::vector<Change>> upper_changes(const std::string& upper, const std::vector<std::string>& lowers_top_first);
// The changes of a container against its image.
Result<std::vector<Change>> container_changes(Engine& engine, const ContainerRecord& rec);

// A container path as given, with ".." that would climb above the root
// refused (symlinks are resolved later, inside the root).
Result<std::string> container_path(const std::string& path, const std::string& container);

}  // namespace isola
