// Layer unpacking: turns an (untrusted) layer tar, plain or compressed, into a
// directory in overlayfs's form, and extracts outer image archives. Nothing
// in an archive can create or change anything outside the destination.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

struct UnpackedLayer {
  std::string diff_id_hex;   // sha256 of the uncompressed tar stream
  uint64_t size = 0;         // bytes of file content written
  uint64_t entries = 0;      // archive entries processed
};

// Unpacks the layer blob at `blob_path` (tar; uncompressed, gzip or zstd,
// detected from the bytes) into the existing empty directory `dest`.
// Whiteouts (.wh.NAME) become 0/0 character devices, opaque markers
// (.wh..wh..opq) the xattr trusted.overlay.opaque=y on their directory.
// Refused, with an error naming `what` and the entry: ".." components,
// absolute paths, entries or hardlink targets that pass through a symlink,
// hardlinks to outside the layer, device nodes, unsupported entry types.
Result<UnpackedLayer> unpack_layer(const std::string& blob_path, const std::string& dest,
                                   const std::string& what);

// Extracts an outer image archive (an OCI layout tar or a `docker save` tar)
// into the existing empty directory `dest`: directories and regular files
// only; a symlink whose target is a regular file inside the archive becomes
// a hard link to it; any other entry type is refused. Same path rules as
// unpack_layer.
Result<void> extract_archive(const std::string& archive_path, const std::string& dest,
                             const std::string& what);

}  // namespace isola
