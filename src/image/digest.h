// Content digests ("sha256:<64 hex>") as they appear in untrusted manifests:
// parsed strictly, so a digest can safely become a file name.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

struct Digest {
  std::string hex;  // 64 lowercase hex characters

  static Result<Digest> parse(std::string_view text);
  static bool is_hex64(std::string_view s);
  std::string str() const { return "sha256:" + hex; }
  std::string short_id() const { return hex.substr(0, 12); }
  bool operator==(const Digest&) const = default;
};

}  // namespace isola
