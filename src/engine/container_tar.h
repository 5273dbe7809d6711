// The tar streams behind isola cp and export: a tree (a container's or the
// host's, entered through descriptors) written as a tar, and a tar checked
// and extracted into a directory. Used by container_files.cc only.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace isola {

struct TarSource {
  UniqueFd item;         // O_PATH descriptor of what is archived
  std::string name;      // its name in the tar; empty: only its children (a directory's contents)
  uint32_t id_base = 0;  // owners in [id_base, id_base + 65536) are written as container ids
};
// Appends a tar of `source` to `out_fd` (a pipe, a file or a terminal-free stdout).
Result<void> write_tar(TarSource source, int out_fd);

struct TarTarget {
  // Where entries go: resolved below `dir_fd` (no symlinks: a host
  // directory), or with root_fd >= 0 as `dir_path` + name inside root_fd
  // (a container's root: its symlinks resolve inside it).
  int dir_fd = -1;
  int root_fd = -1;
  std::string dir_path;
  bool keep_owners = false;     // -a: the tar's owners (plus owner_base)
  bool chown_to_base = false;   // without -a: owned by owner_base (a container's root)
  uint32_t owner_base = 0;
  std::string label;            // for messages
};
// Reads the whole tar on the seekable `tar_fd` once to check it (names that
// leave the destination, names below the tar's own symlinks, hard links
// outside it, device nodes: refused, nothing written), then extracts it.
Result<void> extract_tar(int tar_fd, const TarTarget& target);

// A fresh anonymous file (memfd) holding everything read from `fd`.
Result<UniqueFd> spool(int fd);
// An anonymous file to write a tar into.
Result<UniqueFd> anonymous_file();

}  // namespace isola
