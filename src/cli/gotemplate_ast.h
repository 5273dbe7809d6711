// The parsed form of a Go template, shared by the parser and the executor.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/json.h"

namespace isola::cli::tmpl {

struct Pipe;

// One word of a command: a field chain, a variable, a literal, a function
// name or a parenthesised pipeline (which may be followed by fields).
struct Operand {
  enum Kind { field, variable, literal, ident, sub } kind = literal;
  std::string name;                 // variable ("$x", "$") or function name
  std::vector<std::string> fields;  // .A.B after the dot, the variable or the parenthesis
  Json value;                       // the literal
  std::shared_ptr<Pipe> pipe;       // sub
  std::string where;   // "line:col", for errors
  std::string source;  // as written, for "at <...>" in errors
};

struct Command {
  std::vector<Operand> args;
};

struct Pipe {
  std::vector<std::string> decl;  // variables declared ($k, $v :=)
  bool assign = false;            // "=" rather than ":="
  std::vector<Command> cmds;
  std::string where;
};

struct Node {
  enum Kind { text_, action, if_, range, with } kind = text_;
  std::string text;
  Pipe pipe;
  std::vector<Node> body, else_body;
};

// Parses the template; the error's message is the whole user-facing text.
Result<std::vector<Node>> parse_template(const std::string& text);

// Bounds for untrusted templates.
inline constexpr int kMaxDepth = 64;
inline constexpr size_t kMaxOutput = 16u << 20;

}  // namespace isola::cli::tmpl

namespace isola::cli::tmpl {

// A template function; its error's message is the reason, without position.
using Function = Result<Json> (*)(const std::vector<Json>& args);
// nullptr when there is no function by that name.
Function find_function(const std::string& name);
// Go's notion of truth: false, 0, "", null and empty collections are false.
bool truthy(const Json& v);
// The Go type docker's values would have, for messages: string, int, ...
std::string go_type(const Json& v);

}  // namespace isola::cli::tmpl
