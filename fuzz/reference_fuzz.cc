// Image names and digests from untrusted documents (src/image/reference.cc
// Reference::parse, src/image/digest.cc Digest::parse): the RepoTags and
// annotations of an archive, digests that become file names.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "image/digest.h"
#include "image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace isola;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto ref = Reference::parse(text)) {
    // The normalized name is a valid name of the same image.
    auto again = Reference::parse(ref->str());
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->repository == ref->repository && again->tag == ref->tag);
    FUZZ_CHECK(!ref->repository.empty() && !ref->tag.empty());
  }

  if (auto digest = Digest::parse(text)) {
    // A digest can safely be a file name: 64 lowercase hex characters.
    FUZZ_CHECK(digest->str() == text);
    FUZZ_CHECK(Digest::is_hex64(digest->hex));
    FUZZ_CHECK(digest->hex.find('/') == std::string::npos);
    FUZZ_CHECK(digest->short_id().size() == 12);
  }
  return 0;
}
