#include "image/digest.h"

namespace isola {

bool Digest::is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Result<Digest> Digest::parse(std::string_view text) {
  constexpr std::string_view prefix = "sha256:";
  if (text.substr(0, prefix.size()) != prefix)
    return fail(make_error("parse digest", std::string(text.substr(0, 80)),
                           "only sha256 digests are supported"));
  std::string_view hex = text.substr(prefix.size());
  if (!is_hex64(hex))
    return fail(make_error("parse digest", std::string(text.substr(0, 80)),
                           "expected 64 lowercase hex characters"));
  return Digest{std::string(hex)};
}

}  // namespace isola
