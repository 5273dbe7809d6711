// Image names and digests from untrusted documents (src/image/reference.cc
// Reference::parse, src/image/digest.cc Digest::parse): the RepoTags and
// annotations of an archive, digests that become file names. Also what a
// registry sends or a user types for one: WWW-Authenticate challenges
// (src/registry/auth.cc) and remote references (src/registry/remote_ref.cc).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "image/digest.h"
#include "image/reference.h"
#include "registry/auth.h"
#include "registry/remote_ref.h"

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
  if (auto remote = RemoteRef::parse(text)) {
    // Pull resolves it to a host and a path; the local name reads back.
    FUZZ_CHECK(!remote->registry.empty() && !remote->path.empty());
    FUZZ_CHECK(!remote->reference().empty());
    if (!remote->tag.empty()) {
      auto again = RemoteRef::parse(remote->local_tag());
      FUZZ_CHECK(again.has_value());
      FUZZ_CHECK(again->registry == remote->registry && again->path == remote->path && again->tag == remote->tag);
    }
  }

  if (auto challenge = parse_challenge(std::string(text))) {
    FUZZ_CHECK(!challenge->scheme.empty());
    for (const auto& [name, value] : challenge->params) FUZZ_CHECK(!name.empty());
  }
  if (auto decoded = base64_decode(std::string(text))) FUZZ_CHECK(base64_encode(*decoded).size() == size);
  return 0;
}
