// Registry authentication: the WWW-Authenticate challenge (RFC 7235, as the
// distribution spec's token flow uses it) and the credentials `isola login`
// stores in <root>/auth.json (mode 0600, docker's {"auths":{host:{"auth":
// base64(user:password)}}} shape). Credentials are never printed.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/error.h"

namespace isola {

struct Challenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // realm, service, scope, ... (names lowercased)
};

// Parses the first challenge of a WWW-Authenticate value. Untrusted input:
// returns nothing when it is not a well-formed challenge.
std::optional<Challenge> parse_challenge(const std::string& header);

struct Credentials {
  std::string username;
  std::string password;
  bool empty() const { return username.empty() && password.empty(); }
  // "Basic base64(user:password)"
  std::string basic_header() const;
};

// Parses "user:password" (as --creds takes it).
Result<Credentials> parse_creds(const std::string& text);

class CredentialStore {
 public:
  explicit CredentialStore(std::string path) : path_(std::move(path)) {}
  // The stored credentials for a registry host, if any.
  Result<std::optional<Credentials>> get(const std::string& registry) const;
  Result<void> put(const std::string& registry, const Credentials& creds) const;
  // Returns false when there was nothing stored for the registry.
  Result<bool> remove(const std::string& registry) const;

 private:
  std::string path_;
};

std::string base64_encode(const std::string& bytes);
std::optional<std::string> base64_decode(const std::string& text);

}  // namespace isola
