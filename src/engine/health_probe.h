// The health prober: a child of the container's monitor that runs the
// container's health check every interval, through `isola exec` as a
// user would (the same path for both isolation levels), and keeps
// State.Health in health.json.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.h"
#include "engine/container_store.h"

namespace isola {

// Forks the prober for `rec` if it has a health check; returns a pidfd of
// it, or none when there is nothing to probe. It dies with the monitor.
// A pidfd, because the monitors reap with waitpid(-1): its PID may be
// reused by the time it is stopped.
UniqueFd start_health_prober(const std::string& store_root, const ContainerRecord& rec);
// Ends it (and the probe it may be running).
void stop_health_prober(UniqueFd prober);

}  // namespace isola
