// isola-runtime: the OCI runtime command line (runc's), over isola's two
// backends. Each command is a function from its arguments to an exit code.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "ociruntime/args.h"
#include "ociruntime/state.h"

namespace isola::oci {

struct Context {
  std::string root = "/run/isola-runtime";
  bool systemd_cgroup = false;
  bool vm_by_default = false;  // invoked as isola-runtime-vm
};

using Args = std::vector<std::string>;

// create, run, start, state, list, kill, delete, pause, resume, ps, update
Result<int> cmd_create(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_run(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_start(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_state(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_list(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_kill(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_delete(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_pause(const Context& ctx, const Args& args, size_t begin, bool paused);
Result<int> cmd_ps(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_update(const Context& ctx, const Args& args, size_t begin);
// exec.cc
Result<int> cmd_exec(const Context& ctx, const Args& args, size_t begin);
// info.cc
Result<int> cmd_features(const Context& ctx, const Args& args, size_t begin);
Result<int> cmd_spec(const Context& ctx, const Args& args, size_t begin);

// Shared by the commands.
Result<void> write_pid_file(const std::string& path, pid_t pid);
// "isola-runtime: warning: TEXT" on stderr, for what runc also only warns about.
void print_warning(const std::string& text);
// The one positional argument a command takes (the container ID).
Result<std::string> one_id(const ParsedArgs& p, const char* command);

}  // namespace isola::oci
