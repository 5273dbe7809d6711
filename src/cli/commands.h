// The isola command line: global options and the registration of each
// command group. Commands return an exit code; errors are printed once, in
// one place, as "isola: <message>".
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "common/error.h"
#include "common/json.h"
#include "net/endpoint.h"

namespace isola::cli {

// Exit codes, as docker's: 125 means isola itself failed.
inline constexpr int kExitEngine = 125;

struct Globals {
  std::string root;  // --root, $ISOLA_ROOT, or /var/lib/isola
  bool debug = false;
  // Set by the chosen command's parse callback, run after parsing.
  std::function<int()> action;
};

// Prints the error and returns kExitEngine.
int report(const Error& error);

void add_image_commands(CLI::App& app, Globals& globals);
void add_run_commands(CLI::App& app, Globals& globals);
void add_container_commands(CLI::App& app, Globals& globals);
void add_info_command(CLI::App& app, Globals& globals);
void add_network_commands(CLI::App& app, Globals& globals);
// After add_container_commands: also registers "container commit".
void add_commit_commands(CLI::App& app, Globals& globals);

// A container's NetworkSettings for inspect.
Json network_settings_json(const ContainerNetwork& net);

}  // namespace isola::cli
