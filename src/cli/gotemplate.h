// A subset of Go's text/template, evaluated over JSON values, for the
// --format flags of inspect, ps, images and the other listing commands.
// Parsing is iterative over the text and bounded in nesting, so templates
// from the command line cannot exhaust the stack or take quadratic time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace isola::cli {

namespace tmpl {
struct Node;
}

class GoTemplate {
 public:
  // A syntax error reads: template: :1:7: unexpected "}" in operand.
  static Result<GoTemplate> parse(std::string_view text);
  // An execution error reads: template: :1:3: executing "" at <.Foo>: map
  // has no entry for key "Foo".
  Result<std::string> execute(const Json& dot) const;

 private:
  std::shared_ptr<const std::vector<tmpl::Node>> nodes_;
};

// How a value prints without the json function: strings bare, integers
// without a fraction, map[k:v] for objects, [a b] for arrays, <no value> for
// null (as Go prints a missing map entry).
std::string go_print(const Json& value);

}  // namespace isola::cli
