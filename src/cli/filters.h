// --filter key=value for the listing commands, with docker's semantics:
// values of the same key OR, different keys AND; label filters all apply
// (label=k, label=k=v, label!=k, label!=k=v).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace isola::cli {

class Filters {
 public:
  // `valid` lists the keys the command knows; an unknown key is an error
  // naming it and the valid ones.
  static Result<Filters> parse(const std::vector<std::string>& args, const std::vector<std::string>& valid);

  bool empty() const { return values_.empty(); }
  bool has(const std::string& key) const { return values_.contains(key); }
  const std::vector<std::string>& values(const std::string& key) const;
  // True when `key` was not given or `pred` holds for one of its values.
  bool any(const std::string& key, const std::function<bool(const std::string&)>& pred) const;
  // label= and label!= against an object's labels: every one must hold.
  bool labels_match(const std::map<std::string, std::string>& labels) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;  // "label!" holds label!= values
};

// Shell-style pattern: * any run (also across '/'), ? one character, [...] a class.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace isola::cli
