// Health checks (--health-*, the image's HEALTHCHECK): the check a
// container has, the state its prober keeps (State.Health, in
// health.json), and what ps shows of it. The prober itself is in
// engine/health_probe.h.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "engine/container_store.h"
#include "engine/options.h"

namespace isola {

// The check as docker's Config.Healthcheck: the image's, with what the
// flags set over it (field by field); null when there is none or it is
// disabled (--no-healthcheck, or a test of ["NONE"]).
Json merge_healthcheck(const HealthOption& flags, const Json& image_config);

struct HealthConfig {
  std::vector<std::string> test;  // ["CMD-SHELL", cmd] or ["CMD", args...]
  int64_t interval_ns = 30'000'000'000, timeout_ns = 30'000'000'000;
  int64_t start_period_ns = 0, start_interval_ns = 5'000'000'000;
  int retries = 3;
  // What `isola exec` runs: the test without its CMD/CMD-SHELL word.
  std::vector<std::string> command() const;
};
std::optional<HealthConfig> health_config_of(const ContainerRecord& rec);

struct HealthProbe {
  int64_t start_ns = 0, end_ns = 0;
  int exit_code = 0;  // -1: it timed out
  std::string output;
};

struct HealthState {
  std::string status = "starting";  // starting, healthy, unhealthy
  int failing_streak = 0;
  std::vector<HealthProbe> log;  // the last five probes
  Json to_json() const;          // as docker's State.Health
  static HealthState from_json(const Json& j);
  // Counts one probe in: a success makes the container healthy; failures
  // in a row make it unhealthy after `retries`, except in the start period
  // (while it has not been healthy yet), where they are logged only.
  void record(const HealthProbe& probe, int retries, bool in_start_period);
};

std::optional<HealthState> read_health(const ContainerStore& store, const std::string& id);
Result<void> write_health(const ContainerStore& store, const std::string& id, const HealthState& state);

// What ps adds to "Up 5 seconds": " (healthy)", " (unhealthy)",
// " (health: starting)", or "" for a container without a check.
std::string health_suffix(const ContainerStore& store, const ContainerRecord& rec);

}  // namespace isola
