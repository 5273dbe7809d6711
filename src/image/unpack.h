// Layer unpacking: turns an (untrusted) layer tar, plain or compressed, into a
// directory in overlayfs's form, and extracts outer image archives. Nothing
// in an archive can create or change anything outside the destination.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

struct UnpackedLayer {
  std::string diff_id_hex;   // sha256 of the whole uncompressed stream, bytes
                             // after the end-of-archive blocks included
  uint64_t size = 0;         // sum of regular file sizes (apparent size;
                             // hard links not counted again)
  uint64_t entries = 0;      // archive entries read, of every type
};

// Unpacks the layer blob at `blob_path` (tar; uncompressed, gzip or zstd,
// detected from the bytes; one level of compression) into the existing
// empty directory `dest`, computing the diff_id in the same pass.
//
// Paths: a leading "./", repeated slashes and "." components are ignored;
// parents missing from the archive are created 0755 and owned by the
// caller; the root entry ("." or "./") is accepted, but `dest` keeps its
// own mode, owner and times. A later entry replaces an earlier one of the
// same name (removing a directory tree if need be; a directory over a
// directory only takes the new metadata), so nothing is ever opened for
// writing that an earlier entry created.
// Metadata: owner, mode (setuid/setgid/sticky included), mtime/atime, and
// the security.capability xattr of regular files; other xattrs are
// dropped. Directory modes and times are set after the last entry. A hard
// link must point to an entry already in this layer (it may be a symlink,
// not a directory) and shares that entry's metadata.
// Whiteouts (.wh.NAME) become 0/0 character devices unless NAME already
// exists in this layer; opaque markers (.wh..wh..opq) set the xattr
// trusted.overlay.opaque=y on their directory; other .wh..wh.* names are
// reserved and ignored.
// Refused, with an error naming `what` and the entry: ".." components,
// absolute paths, paths longer than 4096 bytes, entries or hardlink targets
// that pass through a symlink, hardlinks to outside the layer, device nodes
// (even 0/0), unsupported entry types, invalid owners, truncated or corrupt
// compressed data. libarchive does not check gzip's CRC (nor can it check a
// zstd frame written without a checksum), so corruption inside a stream can
// come out as different bytes rather than an error: the caller must compare
// the blob digest and the diff_id as usual.
// On error `dest` is left partly filled; the caller removes it.
Result<UnpackedLayer> unpack_layer(const std::string& blob_path, const std::string& dest,
                                   const std::string& what);

// Extracts an outer image archive (an OCI layout tar or a `docker save` tar;
// uncompressed, gzip or zstd) into the existing empty directory `dest`:
// directories (0755) and regular files (0755 if any execute bit was set,
// else 0644), owned by the caller, other metadata dropped. A symlink whose
// target resolves lexically (from the link's directory, or from the archive
// root if absolute; chains of up to 16 archive symlinks followed) to a
// regular file inside the archive becomes a hard link to it once all
// entries are extracted; one pointing outside the archive or to anything
// else is an error. Hard links to regular files inside are kept; fifos,
// devices and any other entry type are refused. Same path rules as
// unpack_layer (an entry below a symlink of the archive is refused).
Result<void> extract_archive(const std::string& archive_path, const std::string& dest,
                             const std::string& what);

}  // namespace isola
