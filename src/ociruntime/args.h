// Command lines as engines write them for runc: global flags, a command,
// its flags and positional arguments. Flags may be written -f, --flag,
// -flag, --flag=value or --flag value (Go's flag syntax).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace isola::oci {

struct FlagSpec {
  std::vector<std::string> names;  // "bundle", "b"
  bool takes_value = false;
  bool repeatable = false;
};

struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> values;  // by the first name; "true" for booleans
  std::vector<std::string> positional;

  bool has(const std::string& name) const { return values.contains(name); }
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  const std::vector<std::string>& all(const std::string& name) const;
};

// Parses args[begin..]. With `stop_at_positional`, everything from the
// first positional argument on is positional (exec's command line); "--"
// ends the flags either way.
Result<ParsedArgs> parse_flags(const std::vector<std::string>& args, size_t begin, const std::vector<FlagSpec>& specs,
                               bool stop_at_positional);

}  // namespace isola::oci
