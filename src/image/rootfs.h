// Overlay mounts: the merged view of an image's layers, optionally with a
// container's own upper and work directories on top. The same rootfs serves
// process and VM isolation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace isola {

struct OverlaySpec {
  std::vector<std::string> lowers_top_first;  // at least two without an upper dir
  std::string upper;                          // empty: a read-only mount
  std::string work;
};

Result<void> mount_overlay(const OverlaySpec& spec, const std::string& target);
// Unmounts `target` (lazily if it is busy).
Result<void> unmount_path(const std::string& target);
// True when `path` is the root of a mount.
bool is_mount_point(const std::string& path);

}  // namespace isola
