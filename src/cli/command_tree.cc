// Walks the CLI11 command tree into CommandInfo (see command_tree.h).
#include "cli/command_tree.h"

#include <sstream>

namespace isola::cli {

namespace {

constexpr const char* kOperandsPrefix = "Arguments: ";

// The kind of value an operand or option names, by the name the command
// gives it: operands are named for what they take (CONTAINER, IMAGE).
ValueKind kind_of(const std::string& name) {
  if (name == "CONTAINER") return ValueKind::container;
  if (name == "IMAGE" || name == "SOURCE") return ValueKind::image;
  if (name == "NETWORK" || name == "--network" || name == "--net") return ValueKind::network;
  return ValueKind::none;
}

OptionInfo option_info(const CLI::Option& opt) {
  OptionInfo o;
  for (const std::string& s : opt.get_snames()) o.names.push_back("-" + s);
  for (const std::string& l : opt.get_lnames()) o.names.push_back("--" + l);
  o.takes_value = opt.get_items_expected_max() > 0;  // flags expect none
  if (o.takes_value) o.value_name = opt.get_type_name().empty() ? "VALUE" : opt.get_type_name();
  o.description = opt.get_description();
  for (const std::string& n : o.names)
    if (kind_of(n) != ValueKind::none) o.kind = kind_of(n);
  return o;
}

// "IMAGE [COMMAND [ARG...]]": words outside brackets are required, "..."
// repeats.
std::vector<OperandInfo> parse_operands(const std::string& synopsis) {
  std::vector<OperandInfo> out;
  int depth = 0;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    OperandInfo op;
    op.repeats = word.ends_with("...");
    op.name = op.repeats ? word.substr(0, word.size() - 3) : word;
    op.required = depth == 0;
    op.kind = kind_of(op.name);
    out.push_back(op);
    word.clear();
  };
  for (char c : synopsis) {
    if (c == '[' || c == ']' || c == ' ') flush();
    if (c == '[') ++depth;
    else if (c == ']') --depth;
    else if (c != ' ') word += c;
  }
  flush();
  return out;
}

CommandInfo walk(const CLI::App& app, std::vector<std::string> path) {
  CommandInfo cmd;
  cmd.path = std::move(path);
  cmd.aliases = app.get_aliases();
  cmd.description = app.get_description();
  cmd.needs_subcommand = app.get_require_subcommand_min() > 0;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->nonpositional()) {
      cmd.options.push_back(option_info(*opt));
      continue;
    }
    std::string name = opt->get_name();
    cmd.operands.push_back({name, opt->get_required(), opt->get_expected_max() > 1, kind_of(name)});
  }
  if (app.get_prefix_command()) {
    cmd.takes_rest = true;
    std::string footer = app.get_footer();
    if (footer.starts_with(kOperandsPrefix)) cmd.operands = parse_operands(footer.substr(std::string(kOperandsPrefix).size()));
  }
  auto subs = app.get_subcommands([](const CLI::App* s) { return !s->get_name().empty() && !s->get_group().empty(); });
  for (const CLI::App* sub : subs) {
    std::vector<std::string> sub_path = cmd.path;
    sub_path.push_back(sub->get_name());
    cmd.subcommands.push_back(walk(*sub, std::move(sub_path)));
  }
  return cmd;
}

void flatten_into(const CommandInfo& cmd, std::vector<const CommandInfo*>& out) {
  out.push_back(&cmd);
  for (const CommandInfo& sub : cmd.subcommands) flatten_into(sub, out);
}

}  // namespace

const char* value_kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::container: return "container";
    case ValueKind::image: return "image";
    case ValueKind::network: return "network";
    case ValueKind::none: break;
  }
  return "none";
}

std::string CommandInfo::joined(char sep) const {
  std::string out;
  for (const std::string& p : path) out += (out.empty() ? "" : std::string(1, sep)) + p;
  return out;
}

CommandInfo describe_commands(const CLI::App& app) { return walk(app, {app.get_name()}); }

void set_operands(CLI::App& cmd, const std::string& synopsis) { cmd.footer(kOperandsPrefix + synopsis); }

std::vector<const CommandInfo*> flatten(const CommandInfo& root) {
  std::vector<const CommandInfo*> out;
  flatten_into(root, out);
  return out;
}

}  // namespace isola::cli
