#include "cli/filters.h"

#include <fnmatch.h>

#include <algorithm>

namespace isola::cli {

Result<Filters> Filters::parse(const std::vector<std::string>& args, const std::vector<std::string>& valid) {
  Filters f;
  for (const std::string& arg : args) {
    size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(make_error("--filter", arg, "bad format of filter; use KEY=VALUE, as in --filter name=web"));
    std::string key = arg.substr(0, eq);
    bool negated = key.back() == '!';
    if (negated) key.pop_back();
    if (std::find(valid.begin(), valid.end(), key) == valid.end() || (negated && key != "label")) {
      std::string list;
      for (const std::string& v : valid) list += (list.empty() ? "" : ", ") + v;
      return fail(make_error("--filter", arg,
                             "unknown filter \"" + key + (negated ? "!" : "") + "\"; valid filters are: " + list));
    }
    f.values_[negated ? key + "!" : key].push_back(arg.substr(eq + 1));
  }
  return f;
}

const std::vector<std::string>& Filters::values(const std::string& key) const {
  static const std::vector<std::string> none;
  auto it = values_.find(key);
  return it == values_.end() ? none : it->second;
}

bool Filters::any(const std::string& key, const std::function<bool(const std::string&)>& pred) const {
  auto it = values_.find(key);
  if (it == values_.end()) return true;
  return std::any_of(it->second.begin(), it->second.end(), pred);
}

bool Filters::labels_match(const std::map<std::string, std::string>& labels) const {
  auto holds = [&](const std::string& want) {
    size_t eq = want.find('=');
    auto it = labels.find(want.substr(0, eq));
    return it != labels.end() && (eq == std::string::npos || it->second == want.substr(eq + 1));
  };
  for (const std::string& want : values("label"))
    if (!holds(want)) return false;
  for (const std::string& want : values("label!"))
    if (holds(want)) return false;
  return true;
}

bool glob_match(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

}  // namespace isola::cli
