#include "common/error.h"

#include <cstring>

namespace isola {

std::string Error::message() const {
  std::string out = op;
  if (!object.empty()) {
    if (!out.empty()) out += ' ';
    out += '\'' + object + '\'';
  }
  if (err != 0) {
    if (!out.empty()) out += ": ";
    out += std::strerror(err);
  }
  if (!detail.empty()) {
    if (!out.empty()) out += ": ";
    out += detail;
  }
  return out;
}

Error& Error::context(std::string outer) {
  // Fold the current message into detail so message() prints outer first.
  std::string inner = message();
  op = std::move(outer);
  object.clear();
  err = 0;
  detail = std::move(inner);
  return *this;
}

Error sys_error(std::string op, std::string object) {
  return Error{errno, std::move(op), std::move(object), {}};
}

Error sys_error(int err, std::string op, std::string object) {
  return Error{err, std::move(op), std::move(object), {}};
}

Error make_error(std::string op, std::string object, std::string detail) {
  return Error{0, std::move(op), std::move(object), std::move(detail)};
}

Error plain_error(std::string text) { return Error{0, {}, {}, std::move(text)}; }

std::string printable(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 256) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace isola
