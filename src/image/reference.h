// Image references as users type them: NAME[:TAG] or an image ID (prefix).
// Names are normalized the way docker shows them: "docker.io/library/busybox"
// and "busybox" are the same repository, shown as "busybox".
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

struct Reference {
  std::string repository;  // normalized, e.g. "busybox" or "quay.io/x/y"
  std::string tag;         // "latest" when none was given

  // Parses NAME[:TAG]; a digest part (@sha256:...) is refused here.
  static Result<Reference> parse(std::string_view text);
  std::string str() const { return repository + ":" + tag; }
  // With the registry spelled out: "docker.io/library/busybox:latest".
  std::string full_name() const;
};

}  // namespace isola
