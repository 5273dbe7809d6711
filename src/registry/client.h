// A client for one repository on an OCI distribution / Docker Registry v2
// server: the token dance on 401 (anonymous, or with the stored or given
// credentials), HTTPS first with plain HTTP only for loopback registries or
// when TLS verification is off, and the few endpoints pull and push need.
// Safe to use from several threads (parallel layer transfers).
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "image/digest.h"
#include "registry/auth.h"
#include "registry/http.h"
#include "registry/remote_ref.h"

namespace isola {

struct RegistryOptions {
  TlsOptions tls;
  std::optional<Credentials> creds;
};

struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // from the document, else the Content-Type
  Digest digest;           // sha256 of bytes
};

// Accept header values for manifests, most preferred first.
extern const char* const kManifestAccept;

class RegistryClient {
 public:
  // `push` asks for push rights as well as pull.
  RegistryClient(const RemoteRef& ref, RegistryOptions opts, bool push);

  // GET /v2/ with authentication: checks that the registry answers and the
  // credentials (if any) are accepted.
  Result<void> check_login();

  // The manifest or index for a tag or digest. When `reference` is a digest
  // the bytes are checked against it.
  Result<FetchedManifest> get_manifest(const std::string& reference);

  // Streams a blob from byte `offset` (a Range request when > 0) to `sink`.
  // A registry that ignores the range sends the whole blob: then `restart`
  // is called before its first byte, and the stream starts from byte 0.
  Result<void> get_blob(const Digest& digest, uint64_t offset, const std::function<bool(const char*, size_t)>& sink,
                        const std::function<void()>& restart = {});
  // A small blob (a config) into memory, verified.
  Result<std::string> get_small_blob(const Digest& digest);

  Result<bool> has_blob(const Digest& digest);
  // Uploads a blob from a file; `progress` (may be empty) sees the bytes sent.
  Result<void> put_blob(const Digest& digest, const std::string& path,
                        const std::function<void(uint64_t, uint64_t)>& progress = {});
  Result<void> put_manifest(const std::string& reference, const std::string& bytes, const std::string& media_type);

  const RemoteRef& ref() const { return ref_; }

 private:
  // Sends `path` (below /v2/) or an absolute URL, authenticating on 401.
  Result<HttpResponse> send(HttpRequest req, const std::string& target);
  Result<void> authenticate(const HttpResponse& challenge_resp);
  Error status_error(const std::string& what, const HttpResponse& resp) const;
  std::string base_url();

  RemoteRef ref_;
  RegistryOptions opts_;
  Http http_;
  bool push_;
  std::mutex mu_;
  std::string scheme_ = "https";
  std::string auth_header_;  // "Authorization: ..." once known
};

}  // namespace isola
