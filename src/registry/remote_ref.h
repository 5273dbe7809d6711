// Where an image lives on a registry: "busybox" is Docker Hub's
// "library/busybox" tag "latest"; "127.0.0.1:5000/app:v1@sha256:..." names a
// host, a repository path and a digest (which wins over the tag).
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

struct RemoteRef {
  std::string registry;  // "docker.io", "quay.io", "127.0.0.1:5000"
  std::string path;      // repository on that registry, e.g. "library/busybox"
  std::string tag;       // empty when only a digest was given
  std::string digest;    // "sha256:<hex>" or empty

  static Result<RemoteRef> parse(std::string_view text);

  // The host the API is served from (Docker Hub's differs from its name).
  std::string api_host() const;
  // The manifest reference: the digest if given, else the tag.
  std::string reference() const { return digest.empty() ? tag : digest; }
  // The repository as the local store names it ("busybox", "quay.io/x/y").
  std::string local_repository() const;
  // "NAME:TAG" for the local store, or empty when pulled by digest only.
  std::string local_tag() const;
  // For messages: registry/path:tag or registry/path@digest.
  std::string str() const;
};

// Whether the host is this machine (localhost, 127.0.0.0/8, ::1): as docker
// does, such registries may be spoken to over plain HTTP.
bool is_loopback_registry(const std::string& registry);

}  // namespace isola
