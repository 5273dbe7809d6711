// The words of a mount's "options" (OCI runtime spec, fstab style) turned
// into what mount(2) and mount_setattr(2) take: flags, propagation changes,
// recursive attributes and the file system's own data. Shared by the
// container's mounts and linux.rootfsPropagation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace isola {

struct MountOptions {
  unsigned long flags = 0;                 // MS_RDONLY, MS_NOSUID, ... (no MS_BIND/MS_REC)
  std::vector<unsigned long> propagation;  // MS_PRIVATE, MS_SHARED | MS_REC, ... in order
  bool bind = false, recursive = false;    // "bind", "rbind"
  // Runtime spec 1.1 recursive options ("rro", "rnosuid", ...): applied to
  // the mount and every mount below it with mount_setattr(AT_RECURSIVE).
  uint64_t attr_set = 0, attr_clear = 0;
  std::string data;  // what the file system parses: size=, mode=, gid=, ...
};

// Parses `options`; `field` ("mounts[3].options") names them in errors.
// Words no kernel call understands go to `data`: a bind mount ignores them,
// as runc does. A recursive option isola cannot apply is refused by name.
Result<MountOptions> parse_mount_options(const std::vector<std::string>& options, const std::string& field);

// "shared" → MS_SHARED, "rslave" → MS_SLAVE | MS_REC, ...; nothing for a
// word that is not a propagation type.
std::optional<unsigned long> propagation_flags(std::string_view word);

}  // namespace isola
