// Shifted copies of image layers for containers in a user namespace
// (--userns=auto): every owner id N becomes base + N, so the container's
// root (host id `base`) owns what the image's root owns. Used where
// idmapped mounts are not available (they need filesystem support that
// overlayfs upper directories and many hosts lack).
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

// Copies the tree at `source` into the new directory `dest` (which must not
// exist), adding `base` to every uid and gid. Keeps modes (setuid too),
// times, symlinks, hard links, whiteouts (0/0 devices) and the overlay
// opaque xattr. Never follows symlinks.
Result<void> copy_shifted(const std::string& source, const std::string& dest, uint32_t base);

}  // namespace isola
