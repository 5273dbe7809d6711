// printf for templates: Go's verbs %s %d %v %q %t %f %x %% with flags,
// width and precision; mismatches print as Go prints them (%!d(string=x)).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "cli/gotemplate.h"
#include "cli/gotemplate_ast.h"

namespace isola::cli::tmpl {

namespace {

constexpr int kMaxWidth = 4096;

struct Spec {
  bool minus = false, zero = false, plus = false, space = false;
  int width = -1, precision = -1;
  char verb = 'v';
};

std::string pad(std::string s, const Spec& spec, bool numeric) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xc0) != 0x80;
  if (spec.width < 0 || w >= static_cast<size_t>(spec.width)) return s;
  size_t fill = static_cast<size_t>(spec.width) - w;
  if (spec.minus) return s + std::string(fill, ' ');
  if (spec.zero && numeric) {
    size_t sign = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    return s.insert(sign, fill, '0');
  }
  return std::string(fill, ' ') + s;
}

std::string quote(const std::string& s) { return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string bad_verb(const Spec& spec, const Json& v) {
  return fmt::format("%!{}({}={})", spec.verb, go_type(v), go_print(v));
}

std::string integer(const Spec& spec, const Json& v) {
  if (!v.is_number() || (v.is_number_float() && v.get<double>() != std::floor(v.get<double>())))
    return bad_verb(spec, v);
  std::string s;
  if (v.is_number_unsigned()) s = spec.verb == 'x' ? fmt::format("{:x}", v.get<uint64_t>()) : std::to_string(v.get<uint64_t>());
  else {
    int64_t n = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
    s = spec.verb == 'x' ? fmt::format("{:x}", n) : std::to_string(n);
    if (n >= 0 && spec.plus) s = "+" + s;
    else if (n >= 0 && spec.space) s = " " + s;
  }
  return pad(s, spec, true);
}

std::string one(const Spec& spec, const Json& v) {
  switch (spec.verb) {
    case 'd':
    case 'x':
      if (spec.verb == 'x' && v.is_string()) {
        std::string hex;
        for (unsigned char c : v.get<std::string>()) hex += fmt::format("{:02x}", c);
        return pad(hex, spec, false);
      }
      return integer(spec, v);
    case 'f':
    case 'g':
    case 'e': {
      if (!v.is_number()) return bad_verb(spec, v);
      int prec = spec.precision >= 0 ? std::min(spec.precision, 100) : 6;
      double d = v.get<double>();
      std::string s = spec.verb == 'f'   ? fmt::format("{:.{}f}", d, prec)
                      : spec.verb == 'e' ? fmt::format("{:.{}e}", d, prec)
                                         : fmt::format("{}", d);
      if (d >= 0 && spec.plus) s = "+" + s;
      return pad(s, spec, true);
    }
    case 't':
      if (!v.is_boolean()) return bad_verb(spec, v);
      return pad(go_print(v), spec, false);
    case 'q':
      if (!v.is_string()) return bad_verb(spec, v);
      return pad(quote(v.get<std::string>()), spec, false);
    case 's':
    case 'v': {
      std::string s = go_print(v);
      if (spec.precision >= 0 && v.is_string() && static_cast<size_t>(spec.precision) < s.size())
        s.resize(static_cast<size_t>(spec.precision));
      return pad(s, spec, v.is_number());
    }
    default: return bad_verb(spec, v);
  }
}

int digits(const std::string& f, size_t& i) {
  int n = 0;
  while (i < f.size() && f[i] >= '0' && f[i] <= '9') n = std::min(n * 10 + (f[i++] - '0'), kMaxWidth);
  return n;
}

}  // namespace

std::string go_printf(const std::string& f, const std::vector<Json>& args) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < f.size();) {
    if (f[i] != '%') {
      out += f[i++];
      continue;
    }
    ++i;
    Spec spec;
    for (; i < f.size(); ++i) {
      if (f[i] == '-') spec.minus = true;
      else if (f[i] == '0') spec.zero = true;
      else if (f[i] == '+') spec.plus = true;
      else if (f[i] == ' ') spec.space = true;
      else if (f[i] != '#') break;
    }
    if (i < f.size() && f[i] >= '1' && f[i] <= '9') spec.width = digits(f, i);
    if (i < f.size() && f[i] == '.') spec.precision = digits(f, ++i);
    if (i >= f.size()) {
      out += "%!(NOVERB)";
      break;
    }
    spec.verb = f[i++];
    if (spec.verb == '%') out += '%';
    else if (next >= args.size()) out += fmt::format("%!{}(MISSING)", spec.verb);
    else out += one(spec, args[next++]);
  }
  if (next < args.size()) {
    out += "%!(EXTRA ";
    for (size_t k = next; k < args.size(); ++k) out += (k > next ? ", " : "") + go_type(args[k]) + "=" + go_print(args[k]);
    out += ")";
  }
  return out;
}

}  // namespace isola::cli::tmpl
