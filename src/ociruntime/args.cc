#include "ociruntime/args.h"

#include <algorithm>

namespace isola::oci {

std::string ParsedArgs::get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

const std::vector<std::string>& ParsedArgs::all(const std::string& name) const {
  static const std::vector<std::string> none;
  auto it = values.find(name);
  return it == values.end() ? none : it->second;
}

Result<ParsedArgs> parse_flags(const std::vector<std::string>& args, size_t begin, const std::vector<FlagSpec>& specs,
                               bool stop_at_positional) {
  ParsedArgs out;
  bool flags_done = false;
  for (size_t i = begin; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      if (stop_at_positional) flags_done = true;
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    std::string body = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body.resize(eq);
      has_value = true;
    }
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) {
      return std::find(s.names.begin(), s.names.end(), body) != s.names.end();
    });
    if (spec == specs.end()) return fail(make_error("parse arguments", a, "unknown flag (see --help)"));
    const std::string& key = spec->names.front();
    if (spec->takes_value) {
      if (!has_value) {
        if (i + 1 >= args.size()) return fail(make_error("parse arguments", a, "needs a value"));
        value = args[++i];
      }
    } else if (!has_value) {
      value = "true";
    } else if (value != "true" && value != "false") {
      return fail(make_error("parse arguments", a, "takes true or false"));
    }
    if (!spec->takes_value && value == "false") {
      out.values.erase(key);
      continue;
    }
    auto& slot = out.values[key];
    if (!spec->repeatable) slot.clear();
    slot.push_back(std::move(value));
  }
  return out;
}

}  // namespace isola::oci
