// The template functions (docker's set, less the ones that need Go types)
// and the way values print, both as Go prints docker's values.
#include <fmt/core.h>

#include <cctype>
#include <cmath>
#include <map>

#include "cli/gotemplate.h"
#include "cli/gotemplate_ast.h"

namespace isola::cli {

using tmpl::truthy;

namespace {

std::string number_text(const Json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  double d = v.get<double>();
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return fmt::format("{:.0f}", d);
  return fmt::format("{}", d);
}

}  // namespace

std::string go_print(const Json& v) {
  switch (v.type()) {
    case Json::value_t::string: return v.get<std::string>();
    case Json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case Json::value_t::null: return "<no value>";
    case Json::value_t::array: {
      std::string out = "[";
      for (const Json& e : v) out += (out.size() > 1 ? " " : "") + (e.is_null() ? "<nil>" : go_print(e));
      return out + "]";
    }
    case Json::value_t::object: {
      std::string out = "map[";
      for (auto it = v.begin(); it != v.end(); ++it)
        out += (out.size() > 4 ? " " : "") + it.key() + ":" + (it->is_null() ? "<nil>" : go_print(*it));
      return out + "]";
    }
    default: return v.is_number() ? number_text(v) : "";
  }
}

namespace tmpl {

bool truthy(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return v.get<bool>();
    case Json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !v.empty();
    default: return v.get<double>() != 0;
  }
}

std::string go_type(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "<nil>";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "[]interface {}";
    case Json::value_t::object: return "map[string]interface {}";
    case Json::value_t::number_float: return "float64";
    default: return "int";
  }
}

std::string go_printf(const std::string& format, const std::vector<Json>& args);

namespace {

Error bad(std::string what) { return plain_error(std::move(what)); }

Result<void> want(const std::vector<Json>& a, size_t n) {
  if (a.size() != n) return fail(bad(fmt::format("wrong number of args: want {} got {}", n, a.size())));
  return {};
}

Result<std::string> str(const Json& v) {
  if (!v.is_string()) return fail(bad("expected string; found " + go_print(v)));
  return v.get<std::string>();
}

// -1, 0 or 1; an error for values Go cannot compare.
Result<int> compare(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float() || a.is_number_unsigned() || b.is_number_unsigned()) {
      long double x = a.get<long double>(), y = b.get<long double>();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type() != b.type()) return fail(bad("incompatible types for comparison"));
  if (a.is_string()) {
    int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_boolean()) return a.get<bool>() == b.get<bool>() ? 0 : 2;  // 2: unequal, unordered
  if (a.is_null()) return 0;
  return fail(bad("invalid type for comparison"));
}

Result<Json> fn_eq(const std::vector<Json>& a) {
  if (a.size() < 2) return fail(bad("missing argument for comparison"));
  for (size_t i = 1; i < a.size(); ++i)
    if (TRY(compare(a[0], a[i])) == 0) return Json(true);
  return Json(false);
}
Result<Json> fn_ne(const std::vector<Json>& a) {
  TRYV(want(a, 2));
  return Json(TRY(compare(a[0], a[1])) != 0);
}
template <int Lo, int Hi>
Result<Json> fn_order(const std::vector<Json>& a) {
  TRYV(want(a, 2));
  int c = TRY(compare(a[0], a[1]));
  if (c == 2) return fail(bad("invalid type for comparison"));
  return Json(c >= Lo && c <= Hi);
}
Result<Json> fn_and(const std::vector<Json>& a) {
  if (a.empty()) return fail(bad("wrong number of args: want at least 1 got 0"));
  for (const Json& v : a)
    if (!truthy(v)) return v;
  return a.back();
}
Result<Json> fn_or(const std::vector<Json>& a) {
  if (a.empty()) return fail(bad("wrong number of args: want at least 1 got 0"));
  for (const Json& v : a)
    if (truthy(v)) return v;
  return a.back();
}
Result<Json> fn_not(const std::vector<Json>& a) {
  TRYV(want(a, 1));
  return Json(!truthy(a[0]));
}
Result<Json> fn_json(const std::vector<Json>& a) {
  TRYV(want(a, 1));
  return Json(a[0].dump(-1, ' ', false, Json::error_handler_t::replace));
}
Result<Json> fn_join(const std::vector<Json>& a) {
  TRYV(want(a, 2));
  std::string sep = TRY(str(a[1])), out;
  if (!a[0].is_array()) return fail(bad("expected a list; found " + go_print(a[0])));
  for (const Json& e : a[0]) out += (&e == &a[0][0] ? "" : sep) + go_print(e);
  return Json(out);
}
Result<Json> fn_split(const std::vector<Json>& a) {
  TRYV(want(a, 2));
  std::string s = TRY(str(a[0])), sep = TRY(str(a[1]));
  Json out = Json::array();
  if (sep.empty()) {
    for (char c : s) out.push_back(std::string(1, c));
    return out;
  }
  for (size_t b = 0;;) {
    size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + sep.size();
  }
}
template <int Mode>  // 0 lower, 1 upper, 2 title
Result<Json> fn_case(const std::vector<Json>& a) {
  TRYV(want(a, 1));
  std::string s = TRY(str(a[0]));
  bool start = true;
  for (char& c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (Mode == 0) c = static_cast<char>(std::tolower(u));
    else if (Mode == 1 || start) c = static_cast<char>(std::toupper(u));
    start = std::isspace(u) != 0;
  }
  return Json(s);
}
Result<Json> fn_len(const std::vector<Json>& a) {
  TRYV(want(a, 1));
  if (a[0].is_string()) return Json(a[0].get_ref<const std::string&>().size());
  if (a[0].is_array() || a[0].is_object()) return Json(a[0].size());
  return fail(bad("len of type " + go_type(a[0])));
}
Result<Json> fn_index(const std::vector<Json>& a) {
  if (a.empty()) return fail(bad("wrong number of args: want at least 1 got 0"));
  Json v = a[0];
  for (size_t i = 1; i < a.size(); ++i) {
    if (v.is_array() && a[i].is_number_integer()) {
      int64_t k = a[i].get<int64_t>();
      if (k < 0 || static_cast<size_t>(k) >= v.size()) return fail(bad(fmt::format("index out of range: {}", k)));
      Json next = v[static_cast<size_t>(k)];
      v = std::move(next);
    } else if (v.is_object() && a[i].is_string()) {
      auto it = v.find(a[i].get<std::string>());
      Json next = it == v.end() ? Json(nullptr) : *it;
      v = std::move(next);
    } else if (v.is_null()) {
      return fail(bad("index of untyped nil"));
    } else {
      return fail(bad("can't index item of type " + go_type(v)));
    }
  }
  return v;
}
Result<Json> fn_truncate(const std::vector<Json>& a) {
  TRYV(want(a, 2));
  std::string s = go_print(a[0]);
  if (!a[1].is_number_integer()) return fail(bad("expected an integer length"));
  int64_t n = a[1].get<int64_t>();
  if (n >= 0 && static_cast<size_t>(n) < s.size()) s.resize(static_cast<size_t>(n));
  return Json(s);
}
Result<Json> fn_print(const std::vector<Json>& a, bool line) {
  std::string out;
  for (size_t i = 0; i < a.size(); ++i) {
    // Sprint puts spaces between operands when neither is a string; Sprintln always.
    if (i > 0 && (line || (!a[i - 1].is_string() && !a[i].is_string()))) out += ' ';
    out += go_print(a[i]);
  }
  return Json(line ? out + "\n" : out);
}
Result<Json> fn_printf(const std::vector<Json>& a) {
  if (a.empty()) return fail(bad("wrong number of args: want at least 1 got 0"));
  std::string format = TRY(str(a[0]));
  return Json(go_printf(format, std::vector<Json>(a.begin() + 1, a.end())));
}

}  // namespace

Function find_function(const std::string& name) {
  static const std::map<std::string, Function> table = {
      {"and", fn_and}, {"eq", fn_eq}, {"ne", fn_ne}, {"lt", fn_order<-1, -1>}, {"le", fn_order<-1, 0>},
      {"gt", fn_order<1, 1>}, {"ge", fn_order<0, 1>}, {"or", fn_or}, {"not", fn_not}, {"json", fn_json},
      {"join", fn_join}, {"split", fn_split}, {"lower", fn_case<0>}, {"upper", fn_case<1>}, {"title", fn_case<2>},
      {"len", fn_len}, {"index", fn_index}, {"truncate", fn_truncate}, {"printf", fn_printf},
      {"print", [](const std::vector<Json>& a) { return fn_print(a, false); }},
      {"println", [](const std::vector<Json>& a) { return fn_print(a, true); }},
  };
  auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace tmpl
}  // namespace isola::cli
