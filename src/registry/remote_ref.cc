#include "registry/remote_ref.h"

#include "image/digest.h"
#include "image/reference.h"

namespace isola {

Result<RemoteRef> RemoteRef::parse(std::string_view text) {
  RemoteRef ref;
  std::string_view name = text;
  if (size_t at = text.find('@'); at != std::string_view::npos) {
    name = text.substr(0, at);
    auto d = Digest::parse(text.substr(at + 1));
    if (!d) return fail(make_error("parse image reference", std::string(text.substr(0, 256)),
                                   "the digest must be sha256:<64 hex digits>"));
    ref.digest = d->str();
  }
  Reference local = TRY(Reference::parse(name));
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  bool has_tag = colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  if (has_tag || ref.digest.empty()) ref.tag = local.tag;

  // Reference normalizes Docker Hub names away; put the host back.
  const std::string& repo = local.repository;
  size_t first = repo.find('/');
  std::string head = first == std::string::npos ? "" : repo.substr(0, first);
  bool has_host = !head.empty() && (head.find('.') != std::string::npos || head.find(':') != std::string::npos ||
                                    head == "localhost");
  if (has_host && head != "docker.io") {
    ref.registry = head;
    ref.path = repo.substr(first + 1);
  } else {
    ref.registry = "docker.io";
    ref.path = head == "docker.io" ? repo.substr(first + 1) : repo;
    if (ref.path.find('/') == std::string::npos) ref.path = "library/" + ref.path;
  }
  return ref;
}

std::string RemoteRef::api_host() const { return registry == "docker.io" ? "registry-1.docker.io" : registry; }

std::string RemoteRef::local_repository() const {
  if (registry != "docker.io") return registry + "/" + path;
  if (path.starts_with("library/") && path.find('/', 8) == std::string::npos) return path.substr(8);
  // Hub's "quay.io/x" must not read back as quay.io's "x" (as Reference does).
  std::string head = path.substr(0, path.find('/'));
  if (path.find('/') != std::string::npos && (head.find_first_of(".:") != std::string::npos || head == "localhost"))
    return "docker.io/" + path;
  return path;
}

std::string RemoteRef::local_tag() const { return tag.empty() ? "" : local_repository() + ":" + tag; }

std::string RemoteRef::str() const {
  std::string s = registry + "/" + path;
  return digest.empty() ? s + ":" + tag : s + "@" + digest;
}

bool is_loopback_registry(const std::string& registry) {
  std::string host = registry;
  if (host.starts_with("[")) host = host.substr(1, host.find(']') - 1);
  else if (size_t colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
  bool dotted = !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
  return host == "localhost" || host == "::1" || (dotted && host.starts_with("127."));
}

}  // namespace isola
