// The command line as data: CLI11's App tree walked into plain structs for
// the generators that must follow every command other files register (the
// bash completion, the man pages). No command is listed here by hand; what
// CLI11 cannot say (the operands of commands that take the rest of the line,
// such as "run IMAGE [COMMAND [ARG...]]") the commands say in their help
// footer with set_operands().
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace isola::cli {

// What a value names, so a completion can offer the ones that exist.
enum class ValueKind { none, container, image, network };
const char* value_kind_name(ValueKind kind);

struct OptionInfo {
  std::vector<std::string> names;  // "-e", "--env"
  bool takes_value = false;
  std::string value_name;  // "TEXT", "INT"
  std::string description;
  ValueKind kind = ValueKind::none;
};

struct OperandInfo {
  std::string name;  // "CONTAINER"
  bool required = false, repeats = false;
  ValueKind kind = ValueKind::none;
};

struct CommandInfo {
  std::vector<std::string> path;  // {"isola", "image", "ls"}
  std::vector<std::string> aliases;
  std::string description;
  std::vector<OptionInfo> options;
  std::vector<OperandInfo> operands;
  // Everything from the first operand on is the command's own (no more options).
  bool takes_rest = false;
  bool needs_subcommand = false;
  std::vector<CommandInfo> subcommands;

  // "isola image ls" with sep ' ', "isola-image-ls" with '-'.
  std::string joined(char sep) const;
};

// The visible commands under `app` (CLI11 hides those with an empty group).
CommandInfo describe_commands(const CLI::App& app);

// Declares the operands of a prefix command, e.g. "IMAGE [COMMAND [ARG...]]":
// shown in its --help and read back by describe_commands().
void set_operands(CLI::App& cmd, const std::string& synopsis);

// Every command of the tree, parents first.
std::vector<const CommandInfo*> flatten(const CommandInfo& root);

}  // namespace isola::cli
