// HTTP for the registry client: one libcurl easy handle per request, TLS
// verified unless the user turned it off for this registry. Bodies are either
// collected (bounded) or streamed to a sink; uploads come from a string or a
// file. Nothing here knows about registries or authentication.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace isola {

struct TlsOptions {
  bool verify = true;   // --tls-verify
  std::string ca_file;  // extra trust anchor (certs.d/<host>/ca.crt), may be empty
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Upload: `body`, or the file at `upload_path` when it is set.
  std::string body;
  std::string upload_path;
  // Download: when `sink` is set a 2xx body goes there, with the status (it returns false to
  // abort); otherwise it is collected into the response, up to `max_body`.
  std::function<bool(long status, const char* data, size_t size)> sink;
  size_t max_body = 8u << 20;
  bool follow_redirects = true;
  // Called as an upload moves: (bytes sent, bytes to send).
  std::function<void(uint64_t, uint64_t)> upload_progress;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // last response's, names lowercased
  std::string body;
  std::string url;  // after redirects

  std::string header(const std::string& lower_name) const;
};

// Why a request failed before any HTTP status arrived.
enum class TransportFailure { none, tls_handshake, tls_verify, connect, other };

struct HttpError {
  Error error;
  TransportFailure kind = TransportFailure::other;
};

class Http {
 public:
  explicit Http(TlsOptions tls) : tls_(std::move(tls)) {}
  // Performs the request. HTTP error statuses are responses, not errors.
  std::expected<HttpResponse, HttpError> send(const HttpRequest& req) const;

 private:
  TlsOptions tls_;
};

// Percent-encodes a query parameter value.
std::string url_escape(const std::string& text);

}  // namespace isola
