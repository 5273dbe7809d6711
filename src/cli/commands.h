// The isola command line: global options and the registration of each
// command group. Commands return an exit code; errors are printed once, in
// one place, as "isola: <message>".
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "common/error.h"
#include "common/json.h"
#include "engine/options.h"
#include "image/store.h"
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
// An image as `inspect` and `image inspect` show it.
Json image_inspect_json(const ImageStore& store, const ImageRecord& image);
void add_run_commands(CLI::App& app, Globals& globals);
// After add_run_commands: every container command, also as "container X"
// (run, create, start, attach and exec included).
void add_container_commands(CLI::App& app, Globals& globals);
// ps under `parent` as `name` (isola ps, isola container ls).
void add_ps_command(CLI::App& parent, const char* name, Globals& globals);
// "process" or "vm", as ps and inspect show it.
const char* isolation_text(Isolation isolation);
void add_info_command(CLI::App& app, Globals& globals);
// After add_container_commands: port is also "container port".
void add_network_commands(CLI::App& app, Globals& globals);
void add_volume_commands(CLI::App& app, Globals& globals);
// After add_image_commands: pull and push also go under `image`.
void add_registry_commands(CLI::App& app, Globals& globals);

// Before run/create: pulls the image per --pull (missing, always, never),
// progress on stderr.
Result<void> ensure_image(const Globals& globals, const std::string& image, const std::string& policy);
void add_system_commands(CLI::App& app, Globals& globals);
// isola system template ...
void add_template_commands(CLI::App& system, Globals& globals);
void add_version_command(CLI::App& app, Globals& globals);
// isola events; after add_system_commands, also as system events.
void add_events_command(CLI::App& app, Globals& globals);
// Generators that walk `app` when they run, so they see every command.
void add_completion_command(CLI::App& app, Globals& globals);
void add_man_command(CLI::App& app, Globals& globals);

// What the store holds, for isola info.
struct StoreSummary {
  size_t images = 0, containers = 0, running = 0;
  uint64_t size = 0;  // image layers (each once) and containers' upper directories
};
Result<StoreSummary> store_summary(const std::string& root);
// The installed guest kernel's version, "" when there is none.
std::string guest_kernel_version();
// After add_container_commands: also registers "container commit".
void add_commit_commands(CLI::App& app, Globals& globals);
// After add_container_commands and add_image_commands: cp, export, diff, history.
void add_file_commands(CLI::App& app, Globals& globals);
// After add_container_commands: update, also as "container update".
void add_update_command(CLI::App& app, Globals& globals);

// A container's NetworkSettings for inspect.
Json network_settings_json(const ContainerNetwork& net);

}  // namespace isola::cli
