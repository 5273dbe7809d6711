#include "registry/auth.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "common/fs.h"
#include "common/json.h"

namespace isola {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Reads a quoted-string starting at s[i] == '"'; advances i past it.
std::optional<std::string> read_quoted(const std::string& s, size_t& i) {
  std::string out;
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[++i];
    } else if (s[i] == '"') {
      ++i;
      return out;
    } else {
      out += s[i];
    }
  }
  return std::nullopt;  // unterminated
}

}  // namespace

std::optional<Challenge> parse_challenge(const std::string& header) {
  if (header.size() > 8192) return std::nullopt;
  size_t i = header.find_first_not_of(" \t");
  if (i == std::string::npos) return std::nullopt;
  size_t end = i;
  while (end < header.size() && is_token_char(header[end])) ++end;
  if (end == i) return std::nullopt;
  Challenge ch;
  ch.scheme = lower(header.substr(i, end - i));
  i = end;
  while (i < header.size()) {
    i = header.find_first_not_of(" \t,", i);
    if (i == std::string::npos) break;
    size_t name_end = i;
    while (name_end < header.size() && is_token_char(header[name_end])) ++name_end;
    if (name_end == i || name_end >= header.size() || header[name_end] != '=') break;
    std::string name = lower(header.substr(i, name_end - i));
    i = name_end + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      auto q = read_quoted(header, i);
      if (!q) return std::nullopt;
      value = *q;
    } else {
      size_t v_end = i;
      while (v_end < header.size() && is_token_char(header[v_end])) ++v_end;
      value = header.substr(i, v_end - i);
      i = v_end;
    }
    ch.params[name] = value;
  }
  return ch;
}

std::string Credentials::basic_header() const { return "Basic " + base64_encode(username + ":" + password); }

Result<Credentials> parse_creds(const std::string& text) {
  size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0)
    return fail(make_error("parse credentials", "", "expected USERNAME:PASSWORD"));
  return Credentials{text.substr(0, colon), text.substr(colon + 1)};
}

namespace {

Result<Json> read_auth_file(const std::string& path) {
  if (!path_exists(path)) return Json{{"auths", Json::object()}};
  Json j = TRY(parse_json(TRY(read_file(path, 1u << 20)), path));
  if (!j.is_object()) j = Json::object();
  if (!j.contains("auths") || !j["auths"].is_object()) j["auths"] = Json::object();
  return j;
}

}  // namespace

Result<std::optional<Credentials>> CredentialStore::get(const std::string& registry) const {
  Json j = TRY(read_auth_file(path_));
  auto it = j["auths"].find(registry);
  if (it == j["auths"].end() || !it->is_object()) return std::optional<Credentials>{};
  auto decoded = base64_decode(json_string_or(*it, "auth"));
  if (!decoded) return fail(make_error("read credentials", path_, "the entry for " + registry + " is not base64"));
  auto creds = parse_creds(*decoded);
  if (!creds) return fail(make_error("read credentials", path_, "the entry for " + registry + " is not user:password"));
  return std::optional<Credentials>{*creds};
}

Result<void> CredentialStore::put(const std::string& registry, const Credentials& creds) const {
  Json j = TRY(read_auth_file(path_));
  j["auths"][registry] = {{"auth", base64_encode(creds.username + ":" + creds.password)}};
  TRYV(mkdir_p(path_.substr(0, path_.rfind('/')), 0711));
  return write_file_atomic(path_, j.dump(2) + "\n", 0600);
}

Result<bool> CredentialStore::remove(const std::string& registry) const {
  Json j = TRY(read_auth_file(path_));
  if (j["auths"].erase(registry) == 0) return false;
  TRYV(write_file_atomic(path_, j.dump(2) + "\n", 0600));
  return true;
}

std::string base64_encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  if (text.size() % 4 != 0 || text.size() > (1u << 16)) return std::nullopt;
  // EVP_DecodeBlock skips blanks and would take "=" anywhere: be strict.
  size_t data_end = text.find_last_not_of('=') + 1;
  if (text.size() - data_end > 2) return std::nullopt;
  for (size_t i = 0; i < data_end; ++i)
    if (!std::isalnum(static_cast<unsigned char>(text[i])) && text[i] != '+' && text[i] != '/') return std::nullopt;
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = text.empty() ? 0 : (text.back() == '=') + (text.size() > 1 && text[text.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace isola
