#include "cli/lifecycle_flags.h"

#include <charconv>

#include "common/duration.h"
#include "engine/health.h"
#include "engine/restart.h"

namespace isola::cli {

namespace {

Result<std::optional<int64_t>> duration_flag(const char* flag, const std::string& text, int64_t minimum_ns) {
  if (text.empty()) return std::optional<int64_t>{};
  auto ns = parse_go_duration(text);
  if (!ns)
    return fail(make_error(flag, "", "invalid duration \"" + text + "\"; give one like 30s, 1m30s or 500ms"));
  // docker: 0 means "the default"; anything else has a floor.
  if (*ns != 0 && *ns < minimum_ns)
    return fail(make_error(flag, "", "must be at least " + format_go_duration(minimum_ns) + " (or 0 for the default)"));
  return std::optional<int64_t>{*ns};
}

}  // namespace

void add_lifecycle_flags(CLI::App* cmd, LifecycleArgs& a) {
  cmd->add_option("--restart", a.restart, "Restart policy: no, always, unless-stopped, on-failure[:max-retries]");
  cmd->add_option("--health-cmd", a.health_cmd, "Command that checks the container's health (run with /bin/sh -c)");
  cmd->add_option("--health-interval", a.health_interval, "Time between health checks (default 30s)");
  cmd->add_option("--health-timeout", a.health_timeout, "Time a health check may take (default 30s)");
  cmd->add_option("--health-retries", a.health_retries, "Failures in a row that make the container unhealthy (default 3)");
  cmd->add_option("--health-start-period", a.health_start_period,
                  "Time to start in, when failures do not count (default 0s)");
  cmd->add_option("--health-start-interval", a.health_start_interval,
                  "Time between health checks during the start period (default 5s)");
  cmd->add_flag("--no-healthcheck", a.no_healthcheck, "Disable the image's HEALTHCHECK");
}

Result<void> finish_lifecycle_flags(const LifecycleArgs& a, RunOptions& o) {
  if (!a.restart.empty()) {
    o.restart = TRY(parse_restart_policy(a.restart));
    if (o.auto_remove && o.restart.name != "no")
      return fail(make_error("--restart", a.restart,
                             "cannot be combined with --rm (a removed container cannot restart); drop one of them"));
  }
  HealthOption& h = o.health;
  constexpr int64_t kMs = 1000000;
  h.interval_ns = TRY(duration_flag("--health-interval", a.health_interval, kMs));
  h.timeout_ns = TRY(duration_flag("--health-timeout", a.health_timeout, kMs));
  h.start_period_ns = TRY(duration_flag("--health-start-period", a.health_start_period, 0));
  h.start_interval_ns = TRY(duration_flag("--health-start-interval", a.health_start_interval, kMs));
  if (!a.health_retries.empty()) {
    int n = 0;
    const std::string& r = a.health_retries;
    auto [end, ec] = std::from_chars(r.data(), r.data() + r.size(), n);
    if (ec != std::errc() || end != r.data() + r.size() || n < 0)
      return fail(make_error("--health-retries", "", "invalid count \"" + r + "\"; give a whole number of 0 or more"));
    h.retries = n;
  }
  if (!a.health_cmd.empty()) h.test = {"CMD-SHELL", a.health_cmd};
  bool tuned = !a.health_cmd.empty() || h.interval_ns || h.timeout_ns || h.start_period_ns || h.start_interval_ns ||
               h.retries;
  if (a.no_healthcheck && tuned)
    return fail(make_error("--no-healthcheck", "", "conflicts with the --health-* flags; drop one of them"));
  h.disable = a.no_healthcheck;
  return {};
}

}  // namespace isola::cli
