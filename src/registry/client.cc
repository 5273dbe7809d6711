#include "registry/client.h"

#include "common/json.h"
#include "common/log.h"
#include "common/sha256.h"

namespace isola {

const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

namespace {

// The registry's own words: {"errors":[{"code":..,"message":..}]}.
std::string registry_message(const std::string& body) {
  auto j = parse_json(body.substr(0, 64 * 1024), "registry error");
  if (!j || !j->is_object()) return "";
  auto it = j->find("errors");
  if (it == j->end() || !it->is_array() || it->empty() || !(*it)[0].is_object()) return "";
  std::string code = json_string_or((*it)[0], "code"), msg = json_string_or((*it)[0], "message");
  return code.empty() ? msg : code + (msg.empty() ? "" : ": " + msg);
}

}  // namespace

RegistryClient::RegistryClient(const RemoteRef& ref, RegistryOptions opts, bool push)
    : ref_(ref), opts_(std::move(opts)), http_(opts_.tls), push_(push) {}

std::string RegistryClient::base_url() {
  std::lock_guard lock(mu_);
  return scheme_ + "://" + ref_.api_host();
}

Error RegistryClient::status_error(const std::string& what, const HttpResponse& resp) const {
  std::string said = registry_message(resp.body);
  std::string detail = "the registry answered HTTP " + std::to_string(resp.status) + (said.empty() ? "" : " (" + said + ")");
  if (resp.status == 401 || resp.status == 403)
    detail += opts_.creds ? "; the credentials were refused or lack access — check them with 'isola login " + ref_.registry + "'"
                          : "; log in with 'isola login " + ref_.registry + "'";
  return make_error(what, ref_.str(), detail);
}

Result<void> RegistryClient::authenticate(const HttpResponse& resp) {
  auto challenge = parse_challenge(resp.header("www-authenticate"));
  if (!challenge) return fail(status_error("authenticate to " + ref_.registry, resp));
  if (challenge->scheme == "basic") {
    if (!opts_.creds) return fail(status_error("authenticate to " + ref_.registry, resp));
    std::lock_guard lock(mu_);
    auth_header_ = "Authorization: " + opts_.creds->basic_header();
    return {};
  }
  if (challenge->scheme != "bearer")
    return fail(make_error("authenticate to " + ref_.registry, "", "unsupported scheme \"" + challenge->scheme + "\""));
  std::string realm = challenge->params["realm"];
  if (!realm.starts_with("https://") && !realm.starts_with("http://"))
    return fail(make_error("authenticate to " + ref_.registry, "", "the token realm is not an http(s) URL"));
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  if (auto it = challenge->params.find("service"); it != challenge->params.end())
    url += "service=" + url_escape(it->second) + "&";
  url += "scope=" + url_escape("repository:" + ref_.path + (push_ ? ":pull,push" : ":pull"));
  HttpRequest req;
  req.url = url;
  req.max_body = 1u << 20;
  if (opts_.creds) req.headers.push_back("Authorization: " + opts_.creds->basic_header());
  auto got = http_.send(req);
  if (!got) return fail(got.error().error.context("get a token for " + ref_.registry));
  if (got->status != 200) {
    Error e = status_error("get a token from " + realm, *got);
    if (got->status == 401 || got->status == 403)
      e.detail = opts_.creds ? "the token server refused the credentials for user '" + opts_.creds->username +
                                   "'; check them with 'isola login " + ref_.registry + "'"
                             : "the token server wants credentials; log in with 'isola login " + ref_.registry + "'";
    return fail(e);
  }
  Json j = TRY(parse_json(got->body, "token response from " + realm));
  std::string token = j.is_object() ? json_string_or(j, "token", json_string_or(j, "access_token")) : "";
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos)
    return fail(make_error("authenticate to " + ref_.registry, "", "the token server sent no usable token"));
  std::lock_guard lock(mu_);
  auth_header_ = "Authorization: Bearer " + token;
  return {};
}

Result<HttpResponse> RegistryClient::send(HttpRequest req, const std::string& target) {
  const bool absolute = target.starts_with("http://") || target.starts_with("https://");
  for (int attempt = 0; attempt < 3; ++attempt) {
    HttpRequest r = req;
    r.url = absolute ? target : base_url() + "/v2/" + target;
    {
      std::lock_guard lock(mu_);
      if (!auth_header_.empty()) r.headers.push_back(auth_header_);
    }
    auto resp = http_.send(r);
    if (!resp) {
      HttpError& he = resp.error();
      bool may_downgrade = !absolute && (!opts_.tls.verify || is_loopback_registry(ref_.registry));
      if (he.kind == TransportFailure::tls_handshake && may_downgrade) {
        std::lock_guard lock(mu_);
        if (scheme_ == "https") {
          log_debug("{}: no TLS; using plain HTTP", ref_.registry);
          scheme_ = "http";
          continue;
        }
      }
      if (he.kind == TransportFailure::tls_verify)
        he.error.detail += "; trust its CA with --cert-dir DIR (DIR/ca.crt) or /etc/isola/certs.d/" + ref_.registry +
                           "/ca.crt, or skip verification with --tls-verify=false";
      return fail(he.error);
    }
    if (resp->status == 401 && attempt < 2) {
      TRYV(authenticate(*resp));
      continue;
    }
    return std::move(*resp);
  }
  return fail(make_error("reach registry", ref_.registry, "too many authentication rounds"));
}

Result<void> RegistryClient::check_login() {
  HttpRequest req;
  HttpResponse resp = TRY(send(req, ""));
  if (resp.status != 200) return fail(status_error("log in to " + ref_.registry, resp));
  return {};
}

Result<FetchedManifest> RegistryClient::get_manifest(const std::string& reference) {
  HttpRequest req;
  req.headers.push_back(kManifestAccept);
  HttpResponse resp = TRY(send(req, ref_.path + "/manifests/" + reference));
  if (resp.status == 404)
    return fail(make_error("pull", ref_.registry + "/" + ref_.path + (reference.starts_with("sha256:") ? "@" : ":") + reference,
                           "manifest unknown: no such image or tag on the registry"));
  if (resp.status != 200) return fail(status_error("get manifest", resp));
  FetchedManifest m;
  m.digest = Digest{sha256_hex(resp.body)};
  if (reference.starts_with("sha256:") && m.digest.str() != reference)
    return fail(make_error("pull", ref_.str(), "the manifest served does not match its digest " + reference +
                                                   " (corrupt or tampered); nothing was stored"));
  auto j = parse_json(resp.body, "manifest " + ref_.str());
  if (!j || !j->is_object()) return fail(make_error("pull", ref_.str(), "the manifest is not a JSON object"));
  m.media_type = json_string_or(*j, "mediaType", resp.header("content-type"));
  m.bytes = std::move(resp.body);
  return m;
}

Result<void> RegistryClient::get_blob(const Digest& digest, uint64_t offset,
                                      const std::function<bool(const char*, size_t)>& sink,
                                      const std::function<void()>& restart) {
  HttpRequest req;
  bool started = false;
  req.sink = [&](long status, const char* p, size_t n) {
    if (!started && offset > 0 && status == 200) {
      if (!restart) return false;
      restart();
    }
    started = true;
    return sink(p, n);
  };
  if (offset > 0) req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
  HttpResponse resp = TRY(send(req, ref_.path + "/blobs/" + digest.str()));
  if (resp.status == 200 || resp.status == 206) return {};
  if (resp.status == 416 && offset > 0) return {};  // nothing left to send
  return fail(status_error("get blob " + digest.str() + " of", resp));
}

Result<std::string> RegistryClient::get_small_blob(const Digest& digest) {
  std::string bytes;
  TRYV(get_blob(digest, 0, [&](const char* p, size_t n) {
    if (bytes.size() + n > (8u << 20)) return false;
    bytes.append(p, n);
    return true;
  }));
  if (sha256_hex(bytes) != digest.hex)
    return fail(make_error("pull", ref_.str(), "blob " + digest.str() +
                                                   " does not match its digest (corrupt or tampered); nothing was stored"));
  return bytes;
}

Result<bool> RegistryClient::has_blob(const Digest& digest) {
  HttpRequest req;
  req.method = "HEAD";
  HttpResponse resp = TRY(send(req, ref_.path + "/blobs/" + digest.str()));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return fail(status_error("check blob " + digest.str() + " in", resp));
}

Result<void> RegistryClient::put_blob(const Digest& digest, const std::string& path,
                                      const std::function<void(uint64_t, uint64_t)>& progress) {
  HttpRequest start;
  start.method = "POST";
  HttpResponse resp = TRY(send(start, ref_.path + "/blobs/uploads/"));
  if (resp.status != 202) return fail(status_error("start upload of " + digest.str() + " to", resp));
  std::string location = resp.header("location");
  if (location.empty()) return fail(make_error("push", ref_.str(), "the registry gave no upload location"));
  if (location.starts_with("/")) location = base_url() + location;
  if (!location.starts_with("http://") && !location.starts_with("https://"))
    return fail(make_error("push", ref_.str(), "the upload location is not an http(s) URL"));
  location += (location.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + url_escape(digest.str());
  HttpRequest put;
  put.method = "PUT";
  put.upload_path = path;
  put.upload_progress = progress;
  put.headers.push_back("Content-Type: application/octet-stream");
  resp = TRY(send(put, location));
  if (resp.status != 201) return fail(status_error("upload blob " + digest.str() + " to", resp));
  return {};
}

Result<void> RegistryClient::put_manifest(const std::string& reference, const std::string& bytes,
                                          const std::string& media_type) {
  HttpRequest req;
  req.method = "PUT";
  req.body = bytes;
  req.headers.push_back("Content-Type: " + media_type);
  HttpResponse resp = TRY(send(req, ref_.path + "/manifests/" + reference));
  if (resp.status != 201 && resp.status != 200) return fail(status_error("put manifest", resp));
  return {};
}

}  // namespace isola
