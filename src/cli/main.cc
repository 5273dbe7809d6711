// isola: the container engine's command line.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "common/log.h"

namespace isola::cli {

int report(const Error& error) {
  std::string text = "isola: " + error.message() + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
  return kExitEngine;
}

}  // namespace isola::cli

int main(int argc, char** argv) {
  using namespace isola::cli;
  isola::trace("cli: started");
  Globals globals;
  const char* env_root = std::getenv("ISOLA_ROOT");
  globals.root = env_root && *env_root ? env_root : "/var/lib/isola";

  CLI::App app{"isola: run OCI/Docker images with process or VM isolation", "isola"};
  app.set_version_flag("--version", std::string("isola version ") + ISOLA_VERSION);
  app.add_option("--root", globals.root, "State directory (default $ISOLA_ROOT or /var/lib/isola)");
  app.add_flag("--debug", globals.debug, "Print debug messages");
  app.require_subcommand(1);

  add_image_commands(app, globals);
  add_run_commands(app, globals);
  add_container_commands(app, globals);
  add_info_command(app, globals);
  add_network_commands(app, globals);
  add_volume_commands(app, globals);
  add_commit_commands(app, globals);
  add_file_commands(app, globals);
  add_update_command(app, globals);
  add_registry_commands(app, globals);
  add_system_commands(app, globals);
  add_events_command(app, globals);
  add_version_command(app, globals);
  add_completion_command(app, globals);
  add_man_command(app, globals);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "isola: " << e.what() << "\nSee 'isola --help'.\n";
    return kExitEngine;
  }
  if (globals.debug) isola::set_debug(true);
  return globals.action ? globals.action() : 0;
}
