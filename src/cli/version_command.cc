// isola version: the client's version and how it was built (compiler,
// commit, target), the host kernel, and the guest kernel VM isolation boots.
#include <sys/utsname.h>

#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "git_commit.h"

namespace isola::cli {

namespace {

#if defined(__x86_64__)
constexpr const char* kArch = "amd64";
#elif defined(__aarch64__)
constexpr const char* kArch = "arm64";
#else
constexpr const char* kArch = "unknown";
#endif

#if defined(__clang__)
constexpr const char* kCompiler = "clang " __clang_version__;
#elif defined(__GNUC__)
constexpr const char* kCompiler = "gcc " __VERSION__;
#else
constexpr const char* kCompiler = "unknown";
#endif

Json version_json() {
  struct utsname un {};
  std::string kernel = ::uname(&un) == 0 ? un.release : "";
  return {{"Version", ISOLA_VERSION},     {"GitCommit", ISOLA_GIT_COMMIT}, {"Compiler", kCompiler},
          {"BuildType", ISOLA_BUILD_TYPE}, {"Os", "linux"},                {"Arch", kArch},
          {"KernelVersion", kernel},        {"GuestKernel", guest_kernel_version()}};
}

int cmd_version(const std::string& format) {
  if (format != "table" && format != "json")
    return report(make_error("version", format, "unknown --format; use 'table' or 'json'"));
  Json v = version_json();
  if (format == "json") {
    std::cout << v.dump(2) << "\n";
    return 0;
  }
  std::string guest = v["GuestKernel"].get<std::string>();
  std::cout << "isola version " << ISOLA_VERSION << "\n"
            << " Git commit:     " << ISOLA_GIT_COMMIT << "\n"
            << " Built with:     " << kCompiler << " (" << ISOLA_BUILD_TYPE << ")\n"
            << " OS/Arch:        linux/" << kArch << "\n"
            << " Host kernel:    " << v["KernelVersion"].get<std::string>() << "\n"
            << " Guest kernel:   " << (guest.empty() ? "- (not installed; run scripts/guest-kernel)" : guest) << "\n";
  return 0;
}

}  // namespace

void add_version_command(CLI::App& app, Globals& g) {
  auto format = std::make_shared<std::string>("table");
  auto* cmd = app.add_subcommand("version", "Show the isola version and how it was built");
  cmd->add_option("--format", *format, "Output format: table or json");
  cmd->callback([&g, format] { g.action = [format] { return cmd_version(*format); }; });
}

}  // namespace isola::cli
