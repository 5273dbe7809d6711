// Reading images out of an unpacked image directory: an OCI image layout
// (oci-layout + index.json + blobs/) or a `docker save` directory (legacy
// manifest.json + <id>/layer.tar, or docker 25's manifest.json pointing into
// blobs/). Everything here is untrusted: JSON is parsed defensively, every
// manifest and config is checked against its digest as it is read, and paths
// taken from the documents are resolved beneath the directory.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "image/digest.h"

namespace isola {

struct SourceLayer {
  std::string path;          // the blob file, beneath the source directory
  Digest diff_id;            // from the config's rootfs.diff_ids
  std::string media_type;    // as given (informational)
  // The blob's digest. For OCI sources (has_digest) the descriptor's,
  // which the blob must match; docker legacy archives name none, so it is
  // computed from the file when it is read (and named by the synthesized
  // manifest).
  bool has_digest = false;
  Digest digest;
};

struct SourceImage {
  std::string manifest_json;  // OCI image manifest (synthesized for legacy docker archives)
  std::string config_json;    // exact bytes; their sha256 is the image ID
  Digest config_digest;
  Json config;                // parsed config
  std::vector<SourceLayer> layers;
  std::vector<std::string> tags;  // normalized "repository:tag"
};

// Reads every image in the directory. `what` names the input in errors.
Result<std::vector<SourceImage>> read_image_dir(const std::string& dir, const std::string& what);

// Picks the manifest for linux/amd64 out of an image index (a descriptor
// without a platform is the fallback). `what` names the index in errors.
Result<Digest> pick_platform(const Json& index, const std::string& what);

// The largest manifest, index or config accepted.
inline constexpr size_t kMaxJsonBlob = 8u << 20;

}  // namespace isola
