// Execution of a parsed Go template over a JSON value. Every step counts
// against a budget and the output against a size limit, so nested ranges
// in a hostile template end with an error instead of running for ever.
#include "cli/gotemplate.h"

#include <fmt/core.h>

#include "cli/gotemplate_ast.h"

namespace isola::cli {

using namespace tmpl;

namespace {

constexpr size_t kMaxSteps = 2'000'000;

class Exec {
 public:
  explicit Exec(const Json& root) { vars_.push_back({"$", root}); }
  Result<void> run(const std::vector<Node>& nodes, const Json& dot);
  std::string out;

 private:
  Result<void> control(const Node& n, const Json& dot);
  Result<void> range(const Node& n, const Json& dot, const Json& over);
  Result<Json> pipe(const Pipe& p, const Json& dot);
  Result<Json> command(const Command& c, const Json& dot, const Json* last);
  Result<Json> operand(const Operand& o, const Json& dot);
  Result<Json> walk(const Json& start, const Operand& o, size_t from = 0);
  Result<Json> label(const Command& c, const Json& dot);
  Error error(const std::string& where, const std::string& at, const std::string& what) const {
    return plain_error(fmt::format("template: :{}: executing \"\" at <{}>: {}", where, at, what));
  }
  Result<void> step(const std::string& where) {
    if (++steps_ > kMaxSteps || out.size() > kMaxOutput)
      return fail(plain_error(fmt::format("template: :{}: the template does too much work", where)));
    return {};
  }
  void declare(const Pipe& p, const Json& v) {
    if (p.decl.empty()) return;
    if (p.assign) {
      for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
        if (it->first == p.decl[0]) return void(it->second = v);
    }
    vars_.push_back({p.decl[0], v});
  }

  std::vector<std::pair<std::string, Json>> vars_;
  size_t steps_ = 0;
};

Result<void> Exec::run(const std::vector<Node>& nodes, const Json& dot) {
  size_t mark = vars_.size();
  for (const Node& n : nodes) {
    TRYV(step(n.pipe.where));
    switch (n.kind) {
      case Node::text_: out += n.text; break;
      case Node::action: {
        Json v = TRY(pipe(n.pipe, dot));
        if (n.pipe.decl.empty()) out += go_print(v);
        else declare(n.pipe, v);
        break;
      }
      default: TRYV(control(n, dot));
    }
  }
  vars_.resize(mark);
  return {};
}

Result<void> Exec::control(const Node& n, const Json& dot) {
  size_t mark = vars_.size();
  Json v = TRY(pipe(n.pipe, dot));
  Result<void> r;
  if (n.kind == Node::range) r = range(n, dot, v);
  else if (!truthy(v)) r = run(n.else_body, dot);
  else {
    if (n.kind == Node::if_) declare(n.pipe, v);
    else vars_.push_back({n.pipe.decl.empty() ? "" : n.pipe.decl[0], v});
    r = run(n.body, n.kind == Node::with ? v : dot);
  }
  vars_.resize(mark);
  return r;
}

Result<void> Exec::range(const Node& n, const Json& dot, const Json& over) {
  if (!over.is_array() && !over.is_object() && !over.is_null() && !(over.is_number_integer()))
    return fail(error(n.pipe.where, "range", "range can't iterate over " + go_print(over)));
  if (over.is_number_integer()) {  // Go 1.22: range over an integer
    Json items = Json::array();
    for (int64_t k = 0; k < over.get<int64_t>() && k < static_cast<int64_t>(kMaxSteps); ++k) items.push_back(k);
    return range(n, dot, items);
  }
  if (over.empty()) return run(n.else_body, dot);
  size_t mark = vars_.size();
  size_t index = 0;
  for (auto it = over.begin(); it != over.end(); ++it, ++index) {
    TRYV(step(n.pipe.where));
    vars_.resize(mark);
    Json key = over.is_object() ? Json(it.key()) : Json(index);
    if (n.pipe.decl.size() == 2) vars_.push_back({n.pipe.decl[0], key}), vars_.push_back({n.pipe.decl[1], *it});
    else if (n.pipe.decl.size() == 1) vars_.push_back({n.pipe.decl[0], *it});
    TRYV(run(n.body, *it));
  }
  vars_.resize(mark);
  return {};
}

Result<Json> Exec::pipe(const Pipe& p, const Json& dot) {
  Json v;
  bool first = true;
  for (const Command& c : p.cmds) {
    v = TRY(command(c, dot, first ? nullptr : &v));
    first = false;
  }
  return v;
}

Result<Json> Exec::command(const Command& c, const Json& dot, const Json* last) {
  const Operand& head = c.args[0];
  if (head.kind != Operand::ident) {
    if (c.args.size() > 1 || last) {
      // .Label "key" on a row: docker's method for one label.
      if (head.kind == Operand::field && !head.fields.empty() && head.fields.back() == "Label" &&
          c.args.size() == 2 && !last)
        return label(c, dot);
      return fail(error(head.where, head.source, "can't give argument to non-function " + head.source));
    }
    return operand(head, dot);
  }
  Function fn = find_function(head.name);
  if (!fn) return fail(plain_error(fmt::format("template: :{}: function \"{}\" not defined", head.where, head.name)));
  std::vector<Json> args;
  for (size_t i = 1; i < c.args.size(); ++i) args.push_back(TRY(operand(c.args[i], dot)));
  if (last) args.push_back(*last);
  auto r = fn(args);
  if (!r) return fail(error(head.where, head.source, "error calling " + head.name + ": " + r.error().message()));
  // Strings that double through a variable must not outgrow the output limit.
  if (r->is_string() && r->get_ref<const std::string&>().size() > kMaxOutput)
    return fail(error(head.where, head.source, "the value is too large"));
  return r;
}

// The row's Labels are an object or docker's "k=v,k2=v2" text.
Result<Json> Exec::label(const Command& c, const Json& dot) {
  Operand parent = c.args[0];
  parent.fields.back() = "Labels";
  Json labels = TRY(walk(dot, parent));
  Json key = TRY(operand(c.args[1], dot));
  if (!key.is_string()) return Json("");
  const std::string k = key.get<std::string>();
  if (labels.is_object()) return labels.contains(k) ? labels[k] : Json("");
  if (!labels.is_string()) return Json("");
  const std::string text = labels.get<std::string>();
  for (size_t b = 0; b <= text.size();) {
    size_t e = std::min(text.find(',', b), text.size());
    std::string pair = text.substr(b, e - b);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == k) return Json(eq == std::string::npos ? "" : pair.substr(eq + 1));
    b = e + 1;
  }
  return Json("");
}

Result<Json> Exec::operand(const Operand& o, const Json& dot) {
  switch (o.kind) {
    case Operand::literal: return o.value;
    case Operand::field: return walk(dot, o);
    case Operand::variable:
      for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
        if (it->first == o.name) return walk(it->second, o);
      return fail(plain_error(fmt::format("template: :{}: undefined variable: {}", o.where, o.name)));
    case Operand::sub: return walk(TRY(pipe(*o.pipe, dot)), o);
    case Operand::ident: {
      Function fn = find_function(o.name);
      if (!fn) return fail(plain_error(fmt::format("template: :{}: function \"{}\" not defined", o.where, o.name)));
      auto r = fn({});
      if (!r) return fail(error(o.where, o.source, "error calling " + o.name + ": " + r.error().message()));
      return r;
    }
  }
  return Json(nullptr);
}

Result<Json> Exec::walk(const Json& start, const Operand& o, size_t from) {
  const Json* v = &start;
  for (size_t i = from; i < o.fields.size(); ++i) {
    const std::string& f = o.fields[i];
    if (v->is_object()) {
      auto it = v->find(f);
      if (it == v->end()) return fail(error(o.where, o.source, "map has no entry for key \"" + f + "\""));
      v = &*it;
    } else if (v->is_null()) {
      return fail(error(o.where, o.source, "nil pointer evaluating interface {}." + f));
    } else {
      return fail(error(o.where, o.source, "can't evaluate field " + f + " in type " + go_type(*v)));
    }
  }
  return *v;
}

}  // namespace

Result<GoTemplate> GoTemplate::parse(std::string_view text) {
  auto nodes = TRY(parse_template(std::string(text)));
  GoTemplate t;
  t.nodes_ = std::make_shared<const std::vector<Node>>(std::move(nodes));
  return t;
}

Result<std::string> GoTemplate::execute(const Json& dot) const {
  Exec exec(dot);
  TRYV(exec.run(*nodes_, dot));
  return std::move(exec.out);
}

}  // namespace isola::cli
