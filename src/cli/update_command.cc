// isola update (and isola container update): docker update's resource
// flags and --restart, over Engine::update. Prints each container as given
// once it is updated; any error is "isola: --flag: what; fix" and exit 125.
#include <charconv>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/restart.h"
#include "engine/spec_builder.h"

namespace isola::cli {
namespace {

// The flags as typed: each is checked here so that an error names it.
struct UpdateArgs {
  std::string memory, memory_swap, memory_reservation, cpus, cpuset_cpus, pids_limit, restart;
  std::vector<std::string> refs;
};

Result<int64_t> size_flag(const char* flag, const std::string& text) {
  auto size = parse_size(text);
  if (!size)
    return fail(make_error(flag, "", "invalid size \"" + text + "\" (" + size.error().detail +
                                         "); give a number with an optional unit b, k, m or g, like 256m"));
  return *size;
}

Result<int64_t> integer_flag(const char* flag, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return fail(make_error(flag, "", "invalid number \"" + text + "\"; give a whole number, or -1 for no limit"));
  return v;
}

Result<double> cpus_flag(const std::string& text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return fail(make_error("--cpus", "", "invalid number \"" + text + "\"; give a number of CPUs, like 1.5"));
  return v;
}

// Only the flags given (count() > 0) are set: docker's "absent: unchanged".
Result<UpdateOptions> update_options(const CLI::App& cmd, const UpdateArgs& a) {
  UpdateOptions o;
  auto given = [&](const char* name) { return cmd.count(name) > 0; };
  if (given("--memory")) o.memory = TRY(size_flag("--memory", a.memory));
  if (given("--memory-swap"))
    o.memory_swap = a.memory_swap == "-1" ? int64_t{-1} : TRY(size_flag("--memory-swap", a.memory_swap));
  if (given("--memory-reservation")) o.memory_reservation = TRY(size_flag("--memory-reservation", a.memory_reservation));
  if (given("--cpus")) o.cpus = TRY(cpus_flag(a.cpus));
  if (given("--cpuset-cpus")) o.cpuset_cpus = a.cpuset_cpus;
  if (given("--pids-limit")) o.pids_limit = TRY(integer_flag("--pids-limit", a.pids_limit));
  if (given("--restart")) {
    auto policy = parse_restart_policy(a.restart);
    if (!policy) return fail(policy.error());
    o.restart = *policy;
  }
  if (o.empty())
    return fail(make_error("update", "", "you must provide one or more flags: --memory, --memory-swap, "
                                         "--memory-reservation, --cpus, --cpuset-cpus, --pids-limit or --restart"));
  return o;
}

int cmd_update(const Globals& g, const CLI::App& cmd, const UpdateArgs& a) {
  auto opts = update_options(cmd, a);
  if (!opts) return report(opts.error());
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  int code = 0;
  for (const std::string& ref : a.refs) {
    auto rec = engine->containers().resolve(ref);
    Result<void> r = rec ? engine->update(*rec, *opts) : Result<void>(fail(rec.error()));
    if (!r) code = report(r.error());
    else std::cout << ref << "\n";
  }
  return code;
}

void add_update(CLI::App& parent, Globals& g) {
  auto a = std::make_shared<UpdateArgs>();
  auto* cmd = parent.add_subcommand("update", "Change the limits and restart policy of containers");
  cmd->add_option("-m,--memory", a->memory, "Memory limit (at least 6m)");
  cmd->add_option("--memory-swap", a->memory_swap, "Memory plus swap limit (-1: unlimited swap)");
  cmd->add_option("--memory-reservation", a->memory_reservation, "Memory soft limit");
  cmd->add_option("--cpus", a->cpus, "Number of CPUs");
  cmd->add_option("--cpuset-cpus", a->cpuset_cpus, "CPUs the container may run on (0-3, 0,1; process isolation)");
  cmd->add_option("--pids-limit", a->pids_limit, "Maximum number of processes (-1: unlimited)");
  cmd->add_option("--restart", a->restart, "Restart policy: no, always, unless-stopped, on-failure[:N]");
  cmd->add_option("CONTAINER", a->refs)->required();
  cmd->callback([&g, a, cmd] { g.action = [&g, a, cmd] { return cmd_update(g, *cmd, *a); }; });
}

}  // namespace

void add_update_command(CLI::App& app, Globals& g) {
  add_update(app, g);
  // Registered once: the container group may already alias it.
  auto named = [](CLI::App& parent, const char* name) -> CLI::App* {
    auto found = parent.get_subcommands([&](CLI::App* c) { return c->get_name() == name; });
    return found.empty() ? nullptr : found.front();
  };
  CLI::App* container = named(app, "container");
  if (container && !named(*container, "update")) add_update(*container, g);
}

}  // namespace isola::cli
