// Layer blobs as files: which compression a blob uses (from its first
// bytes, as the loader detects it), the media type that names it, and the
// digest of its uncompressed content (its diff ID).
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

enum class Compression { none, gzip, zstd };

Result<Compression> sniff_compression(const std::string& path);

// The OCI layer media type for a compression, or the docker schema 2 one
// when the manifest is a docker manifest.
std::string layer_media_type(Compression c, bool docker);

inline constexpr const char* kOciManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciConfigType = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kDockerManifestType = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerConfigType = "application/vnd.docker.container.image.v1+json";

// sha256 hex of the blob's bytes after one level of gzip or zstd (none for
// a plain file). `what` names the blob in errors.
Result<std::string> uncompressed_sha256(const std::string& path, const std::string& what);

}  // namespace isola
