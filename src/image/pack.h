// Packing a container's changes: an overlayfs upper directory becomes a
// gzip'ed OCI layer tar. overlayfs's whiteouts (0/0 character devices)
// become ".wh.NAME" entries and opaque directories (trusted.overlay.opaque=y)
// get a ".wh..wh..opq" entry: the reverse of what unpack_layer does.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

struct PackOptions {
  // Containers in a user namespace: owners in [id_base, id_base + 65536)
  // are written as their container ids (0 = no shift).
  uint32_t id_base = 0;
};

// Writes the layer to the new file `dest`. Everything below `upper` is
// packed (sockets excepted: tar cannot hold them), in name order, with
// owners, modes, times, hard links, symlinks, fifos and the
// security.capability and user.* xattrs. Refused, naming the path: device
// nodes (isola's loader refuses them in layers), and overlayfs redirect or
// metacopy entries (their content lives in a lower layer; isola mounts with
// both off, so only a foreign upper directory has them). Nothing is
// followed: a container that swaps names while this runs gets what was
// there when each entry was opened.
Result<void> pack_upper(const std::string& upper, const std::string& dest, const PackOptions& options);

}  // namespace isola
