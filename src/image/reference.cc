#include "image/reference.h"

namespace isola {

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
         c == '/';
}

static bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

static bool valid_component(std::string_view c) {
  if (c.empty()) return false;
  auto alnum = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); };
  return alnum(c.front()) && alnum(c.back());
}

// Whether a name's first component is a registry host rather than a path.
static bool looks_like_host(std::string_view first) {
  return first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
         first == "localhost";
}

// host[:port], where host is dot-separated labels of letters, digits and '-'.
static bool valid_host(std::string_view host) {
  std::string_view name = host;
  if (size_t colon = host.find(':'); colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port)
      if (c < '0' || c > '9') return false;
    name = host.substr(0, colon);
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    std::string_view label = name.substr(start, end == std::string_view::npos ? end : end - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return true;
}

Result<Reference> Reference::parse(std::string_view text) {
  auto bad = [&](const char* why) {
    return fail(make_error("parse image reference", std::string(text.substr(0, 256)), why));
  };
  if (text.empty()) return bad("must be 1 to 255 characters");
  if (text.find('@') != std::string_view::npos) return bad("digest references are not supported here");

  // A ':' after the last '/' separates the tag; one before it is a port.
  std::string_view name = text;
  std::string tag = "latest";
  size_t slash = text.rfind('/');
  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    name = text.substr(0, colon);
    std::string_view t = text.substr(colon + 1);
    if (t.empty() || t.size() > 128 || t.front() == '.' || t.front() == '-')
      return bad("invalid tag");
    for (char c : t)
      if (!is_tag_char(c)) return bad("invalid tag");
    tag = std::string(t);
  }

  // As docker: up to 255 characters of name, and the tag (up to 128) on top,
  // so that the normalized "name:tag" reads back.
  if (name.size() > 255) return bad("the name must be 1 to 255 characters");

  // The first component may be a registry host (with '.', ':' or "localhost").
  std::string_view host;
  std::string_view path = name;
  size_t first_slash = name.find('/');
  if (first_slash != std::string_view::npos) {
    std::string_view first = name.substr(0, first_slash);
    if (looks_like_host(first)) {
      host = first;
      path = name.substr(first_slash + 1);
    }
  }
  if (!host.empty() && !valid_host(host)) return bad("invalid registry host");
  if (path.empty()) return bad("missing repository name");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    std::string_view comp = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (!valid_component(comp)) return bad("invalid repository name (lowercase letters, digits, '.', '_', '-')");
    for (char c : comp)
      if (!is_name_char(c)) return bad("invalid repository name (lowercase letters, digits, '.', '_', '-')");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }

  std::string repo;
  if (host.empty() || host == "docker.io" || host == "index.docker.io") {
    repo = std::string(path);
    if (repo.rfind("library/", 0) == 0 && repo.find('/', 8) == std::string::npos) repo = repo.substr(8);
    // "docker.io/quay.io/x" is Docker Hub's "quay.io/x": without the prefix
    // the normalized name would read back as another registry's image.
    size_t end = repo.find('/');
    if (end != std::string::npos && looks_like_host(std::string_view(repo).substr(0, end))) repo = "docker.io/" + repo;
  } else {
    repo = std::string(host) + "/" + std::string(path);
  }
  return Reference{repo, tag};
}

std::string Reference::full_name() const {
  size_t slash = repository.find('/');
  if (slash == std::string::npos) return "docker.io/library/" + str();
  if (looks_like_host(std::string_view(repository).substr(0, slash))) return str();
  return "docker.io/" + str();
}

}  // namespace isola
