// The run/create flags that keep a container going after it started:
// --restart and the health check (--health-cmd, --health-interval,
// --health-timeout, --health-retries, --health-start-period,
// --health-start-interval, --no-healthcheck).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "common/error.h"
#include "engine/options.h"

namespace isola::cli {

struct LifecycleArgs {
  std::string restart;
  std::string health_cmd, health_interval, health_timeout, health_start_period, health_start_interval;
  std::string health_retries;
  bool no_healthcheck = false;
};

void add_lifecycle_flags(CLI::App* cmd, LifecycleArgs& a);

// Checks the values and fills o.restart and o.health; needs --rm in `o`.
Result<void> finish_lifecycle_flags(const LifecycleArgs& a, RunOptions& o);

}  // namespace isola::cli
