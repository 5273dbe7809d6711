// Parsing of the Go template subset: a lexer that splits the text into text
// and actions (applying {{- and -}} trimming), then a recursive descent over
// the actions whose depth is bounded by kMaxDepth.
#include <fmt/core.h>

#include <cctype>
#include <cstdlib>

#include "cli/gotemplate_ast.h"

namespace isola::cli::tmpl {

namespace {

struct Token {
  enum Kind { word, variable, field, literal, lparen, rparen, bar, declare, assign, comma } kind = word;
  std::string text;                 // word or variable name
  std::vector<std::string> fields;  // field: .A.B; variable: $x.A
  Json value;
  size_t pos = 0;
  bool glued = false;  // no space before it
};

struct Item {
  bool is_text = true;
  std::string text;
  std::vector<Token> tokens;
  size_t pos = 0;
};

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

class Lexer {
 public:
  explicit Lexer(const std::string& text) : s_(text) {}
  Result<std::vector<Item>> run();
  // Positions are asked for in increasing order, so counting resumes from
  // the last one and the whole parse stays linear.
  std::string where(size_t pos) const {
    if (pos < at_) at_ = 0, line_ = 1, col_ = 1;
    for (; at_ < pos && at_ < s_.size(); ++at_) {
      if (s_[at_] == '\n') ++line_, col_ = 1;
      else ++col_;
    }
    return fmt::format("{}:{}", line_, col_);
  }
  Error error(size_t pos, const std::string& what) const {
    return plain_error(fmt::format("template: :{}: {}", where(pos), what));
  }

 private:
  Result<size_t> action(size_t p, std::vector<Item>& items, bool& trim_right);
  Result<size_t> string_token(size_t p, Token& t);
  size_t number_token(size_t p, Token& t);
  size_t fields(size_t p, std::vector<std::string>& out) const {
    while (p + 1 < s_.size() && s_[p] == '.' && ident_start(s_[p + 1])) {
      size_t b = ++p;
      while (p < s_.size() && ident_char(s_[p])) ++p;
      out.push_back(s_.substr(b, p - b));
    }
    return p;
  }
  const std::string& s_;
  mutable size_t at_ = 0, line_ = 1, col_ = 1;
};

Result<std::vector<Item>> Lexer::run() {
  std::vector<Item> items;
  size_t i = 0;
  bool trim_next = false;
  while (i < s_.size()) {
    size_t open = s_.find("{{", i);
    std::string chunk = s_.substr(i, open == std::string::npos ? std::string::npos : open - i);
    if (trim_next) chunk.erase(0, std::min(chunk.size(), chunk.find_first_not_of(" \t\r\n")));
    bool trim_left = open != std::string::npos && open + 3 < s_.size() && s_[open + 2] == '-' && space(s_[open + 3]);
    if (trim_left) {
      size_t keep = chunk.find_last_not_of(" \t\r\n");
      chunk.resize(keep == std::string::npos ? 0 : keep + 1);
    }
    if (!chunk.empty()) items.push_back({true, std::move(chunk), {}, i});
    if (open == std::string::npos) break;
    bool trim_right = false;
    i = TRY(action(open + (trim_left ? 3 : 2), items, trim_right));
    trim_next = trim_right;
  }
  return items;
}

// Lexes one action from just after "{{" (or "{{-"); returns the index after "}}".
Result<size_t> Lexer::action(size_t p, std::vector<Item>& items, bool& trim_right) {
  Item item{false, {}, {}, p};
  size_t start = p;
  while (p < s_.size() && space(s_[p])) ++p;
  if (s_.compare(p, 2, "/*") == 0) {  // a comment
    size_t end = s_.find("*/", p + 2);
    if (end == std::string::npos) return fail(error(start, "unclosed comment"));
    p = end + 2;
    item.text = "/*";
    if (s_.compare(p, 4, " -}}") == 0) trim_right = true, p += 2;
    else if (s_.compare(p, 2, "}}") != 0) return fail(error(p, "comment ends before closing delimiter"));
    items.push_back(std::move(item));
    return p + 2;
  }
  bool glued = false;
  while (true) {
    if (p >= s_.size()) return fail(error(start, "unclosed action"));
    char c = s_[p];
    if (space(c)) {
      if (s_.compare(p + 1, 3, "-}}") == 0) {
        trim_right = true;
        p += 4;
        break;
      }
      ++p, glued = false;
      continue;
    }
    if (s_.compare(p, 2, "}}") == 0) {
      p += 2;
      break;
    }
    Token t;
    t.pos = p;
    t.glued = glued;
    if (c == '|') t.kind = Token::bar, ++p;
    else if (c == '(') t.kind = Token::lparen, ++p;
    else if (c == ')') t.kind = Token::rparen, ++p;
    else if (c == ',') t.kind = Token::comma, ++p;
    else if (c == '=') t.kind = Token::assign, ++p;
    else if (c == ':' && p + 1 < s_.size() && s_[p + 1] == '=') t.kind = Token::declare, p += 2;
    else if (c == '"' || c == '`') p = TRY(string_token(p, t));
    else if (c == '.' && (p + 1 >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[p + 1])))) {
      t.kind = Token::field;
      p = fields(p, t.fields);
      if (t.fields.empty()) ++p;  // the dot itself
    } else if (c == '$') {
      t.kind = Token::variable;
      size_t b = p++;
      while (p < s_.size() && ident_char(s_[p])) ++p;
      t.text = s_.substr(b, p - b);
      p = fields(p, t.fields);
    } else if (std::isdigit(static_cast<unsigned char>(c)) || ((c == '-' || c == '+' || c == '.') && p + 1 < s_.size() &&
                                                              std::isdigit(static_cast<unsigned char>(s_[p + 1]))))
      p = number_token(p, t);
    else if (ident_start(c)) {
      size_t b = p;
      while (p < s_.size() && ident_char(s_[p])) ++p;
      t.text = s_.substr(b, p - b);
    } else
      return fail(error(p, fmt::format("unexpected \"{}\" in command", std::string(1, c))));
    if (t.kind == Token::literal && p < s_.size() && (ident_char(s_[p]) || s_[p] == '.'))
      return fail(error(t.pos, "bad number syntax: \"" + s_.substr(t.pos, p + 1 - t.pos) + "\""));
    item.tokens.push_back(std::move(t));
    glued = true;
  }
  items.push_back(std::move(item));
  return p;
}

Result<size_t> Lexer::string_token(size_t p, Token& t) {
  t.kind = Token::literal;
  char quote = s_[p++];
  std::string out;
  while (true) {
    if (p >= s_.size() || (quote == '"' && s_[p] == '\n'))
      return fail(error(t.pos, "unterminated quoted string"));
    char c = s_[p++];
    if (c == quote) break;
    if (c != '\\' || quote == '`') {
      out += c;
      continue;
    }
    if (p >= s_.size()) return fail(error(t.pos, "unterminated quoted string"));
    char e = s_[p++];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': case '"': case '\'': out += e; break;
      case 'x':
        if (p + 2 > s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[p])) ||
            !std::isxdigit(static_cast<unsigned char>(s_[p + 1])))
          return fail(error(t.pos, "invalid syntax in quoted string"));
        out += static_cast<char>(std::strtol(s_.substr(p, 2).c_str(), nullptr, 16));
        p += 2;
        break;
      default: return fail(error(t.pos, "invalid syntax in quoted string"));
    }
  }
  t.value = out;
  return p;
}

size_t Lexer::number_token(size_t p, Token& t) {
  t.kind = Token::literal;
  size_t b = p;
  if (s_[p] == '-' || s_[p] == '+') ++p;
  bool is_float = false;
  while (p < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p])) || s_[p] == '.' || s_[p] == 'e' ||
                           s_[p] == 'E' || ((s_[p] == '-' || s_[p] == '+') && (s_[p - 1] == 'e' || s_[p - 1] == 'E')))) {
    is_float |= !std::isdigit(static_cast<unsigned char>(s_[p]));
    ++p;
  }
  std::string text = s_.substr(b, p - b);
  if (is_float) t.value = std::strtod(text.c_str(), nullptr);
  else t.value = static_cast<int64_t>(std::strtoll(text.c_str(), nullptr, 10));
  return p;
}

// The recursive descent over the lexed items.
class Parser {
 public:
  Parser(const Lexer& lexer, std::vector<Item> items) : lex_(lexer), items_(std::move(items)) {}
  Result<std::vector<Node>> top() {
    std::string term;
    auto nodes = TRY(list(0, term));
    if (!term.empty()) return fail(lex_.error(items_[i_ - 1].pos, "unexpected {{" + term + "}}"));
    return nodes;
  }

 private:
  // Nodes up to an {{end}} or {{else}} (named in `term`) or the end of input.
  Result<std::vector<Node>> list(int depth, std::string& term);
  Result<Node> control(Node::Kind kind, const Item& item, size_t from, int depth);
  Result<Pipe> pipe(const std::vector<Token>& toks, size_t& i, int depth, bool allow_decl);
  Result<Operand> operand(const std::vector<Token>& toks, size_t& i, int depth);
  std::string source(const std::vector<Token>& toks, size_t from, size_t to) const;

  const Lexer& lex_;
  std::vector<Item> items_;
  size_t i_ = 0;
};

Result<std::vector<Node>> Parser::list(int depth, std::string& term) {
  if (depth > kMaxDepth) return fail(lex_.error(items_[i_ ? i_ - 1 : 0].pos, "template nested too deeply"));
  std::vector<Node> out;
  term.clear();
  while (i_ < items_.size()) {
    const Item& item = items_[i_++];
    if (item.is_text) {
      out.push_back({Node::text_, item.text, {}, {}, {}});
      continue;
    }
    if (item.tokens.empty()) {
      if (item.text == "/*") continue;  // a comment
      return fail(lex_.error(item.pos, "missing value for command"));
    }
    const Token& first = item.tokens[0];
    std::string word = first.kind == Token::word ? first.text : "";
    if (word == "end" || word == "else") {
      term = word;
      return out;
    }
    if (word == "if" || word == "range" || word == "with") {
      auto kind = word == "if" ? Node::if_ : word == "range" ? Node::range : Node::with;
      out.push_back(TRY(control(kind, item, 1, depth + 1)));
      continue;
    }
    if (word == "define" || word == "template" || word == "block" || word == "break" || word == "continue")
      return fail(lex_.error(first.pos, "{{" + word + "}} is not supported"));
    size_t i = 0;
    Node n{Node::action, {}, TRY(pipe(item.tokens, i, depth, true)), {}, {}};
    if (i != item.tokens.size()) return fail(lex_.error(item.tokens[i].pos, "unexpected token in command"));
    out.push_back(std::move(n));
  }
  return out;
}

Result<Node> Parser::control(Node::Kind kind, const Item& item, size_t from, int depth) {
  Node n{kind, {}, {}, {}, {}};
  size_t i = from;
  n.pipe = TRY(pipe(item.tokens, i, depth, true));
  if (i != item.tokens.size()) return fail(lex_.error(item.tokens[i].pos, "unexpected token in command"));
  if (n.pipe.cmds.empty()) return fail(lex_.error(item.pos, "missing value for " + item.tokens[0].text));
  std::string term;
  n.body = TRY(list(depth, term));
  if (term.empty()) return fail(lex_.error(item.pos, "unexpected EOF"));
  if (term == "end") return n;
  const Item& else_item = items_[i_ - 1];
  if (else_item.tokens.size() > 1) {  // {{else if ...}} or {{else with ...}}
    const Token& t = else_item.tokens[1];
    if (t.kind != Token::word || (t.text != "if" && t.text != "with"))
      return fail(lex_.error(t.pos, "unexpected token in {{else}}"));
    n.else_body.push_back(TRY(control(t.text == "if" ? Node::if_ : Node::with, else_item, 2, depth + 1)));
    return n;
  }
  n.else_body = TRY(list(depth, term));
  if (term != "end") return fail(lex_.error(else_item.pos, term.empty() ? "unexpected EOF" : "expected end; found {{else}}"));
  return n;
}

Result<Pipe> Parser::pipe(const std::vector<Token>& toks, size_t& i, int depth, bool allow_decl) {
  if (depth > kMaxDepth) return fail(lex_.error(toks[i ? i - 1 : 0].pos, "template nested too deeply"));
  Pipe p;
  p.where = lex_.where(i < toks.size() ? toks[i].pos : 0);
  auto is_var = [&](size_t k) { return k < toks.size() && toks[k].kind == Token::variable && toks[k].fields.empty(); };
  if (allow_decl && is_var(i)) {
    size_t k = i;
    std::vector<std::string> names{toks[k++].text};
    if (k + 1 < toks.size() && toks[k].kind == Token::comma && is_var(k + 1)) names.push_back(toks[k + 1].text), k += 2;
    if (k < toks.size() && (toks[k].kind == Token::declare || toks[k].kind == Token::assign)) {
      p.decl = std::move(names);
      p.assign = toks[k].kind == Token::assign;
      i = k + 1;
    }
  }
  while (i < toks.size() && toks[i].kind != Token::rparen) {
    Command cmd;
    while (i < toks.size() && toks[i].kind != Token::bar && toks[i].kind != Token::rparen)
      cmd.args.push_back(TRY(operand(toks, i, depth)));
    if (cmd.args.empty()) return fail(lex_.error(i < toks.size() ? toks[i].pos : 0, "missing value for command"));
    p.cmds.push_back(std::move(cmd));
    if (i < toks.size() && toks[i].kind == Token::bar) {
      if (++i >= toks.size() || toks[i].kind == Token::rparen)
        return fail(lex_.error(toks[i - 1].pos, "missing command after |"));
    }
  }
  if (!p.decl.empty() && p.cmds.empty()) return fail(lex_.error(toks[i - 1].pos, "missing value for declaration"));
  return p;
}

Result<Operand> Parser::operand(const std::vector<Token>& toks, size_t& i, int depth) {
  size_t from = i;
  const Token& t = toks[i++];
  Operand o;
  o.where = lex_.where(t.pos);
  switch (t.kind) {
    case Token::field: o.kind = Operand::field, o.fields = t.fields; break;
    case Token::variable: o.kind = Operand::variable, o.name = t.text, o.fields = t.fields; break;
    case Token::literal: o.kind = Operand::literal, o.value = t.value; break;
    case Token::word:
      if (t.text == "true" || t.text == "false") o.kind = Operand::literal, o.value = t.text == "true";
      else if (t.text == "nil") o.kind = Operand::literal, o.value = nullptr;
      else o.kind = Operand::ident, o.name = t.text;
      break;
    case Token::lparen: {
      o.kind = Operand::sub;
      o.pipe = std::make_shared<Pipe>(TRY(pipe(toks, i, depth + 1, true)));
      if (i >= toks.size() || toks[i].kind != Token::rparen) return fail(lex_.error(t.pos, "unclosed left paren"));
      ++i;
      if (o.pipe->cmds.empty()) return fail(lex_.error(t.pos, "missing value for command"));
      if (i < toks.size() && toks[i].kind == Token::field && toks[i].glued && !toks[i].fields.empty())
        o.fields = toks[i++].fields;
      break;
    }
    default: return fail(lex_.error(t.pos, "unexpected token in operand"));
  }
  o.source = source(toks, from, i);
  return o;
}

std::string Parser::source(const std::vector<Token>& toks, size_t from, size_t to) const {
  std::string out;
  for (size_t k = from; k < to && out.size() < 200; ++k) {
    const Token& t = toks[k];
    if (!out.empty() && !t.glued) out += ' ';
    switch (t.kind) {
      case Token::field: out += t.fields.empty() ? "." : ""; break;
      case Token::variable: out += t.text; break;
      case Token::literal: out += t.value.dump(-1, ' ', false, Json::error_handler_t::replace); break;
      case Token::word: out += t.text; break;
      case Token::lparen: out += '('; break;
      case Token::rparen: out += ')'; break;
      default: break;
    }
    for (const std::string& f : t.fields) out += "." + f;
  }
  return out;
}

}  // namespace

Result<std::vector<Node>> parse_template(const std::string& text) {
  Lexer lexer(text);
  auto items = TRY(lexer.run());
  return Parser(lexer, std::move(items)).top();
}

}  // namespace isola::cli::tmpl
