// Restart policies (--restart): which exits the monitor restarts the
// container after, and docker's back-off between restarts.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/json.h"
#include "engine/container_store.h"
#include "engine/options.h"

namespace isola {

// "no", "always", "unless-stopped", "on-failure" or "on-failure:N".
Result<RestartPolicy> parse_restart_policy(const std::string& text);
// As docker's HostConfig.RestartPolicy: {"Name": ..., "MaximumRetryCount": N}.
Json restart_policy_json(const RestartPolicy& policy);
RestartPolicy restart_policy_of(const ContainerRecord& rec);

// Whether an exit with `exit_code` is followed by a restart: never after a
// user's stop or kill; `restart_count` restarts have happened so far.
bool should_restart(const RestartPolicy& policy, int exit_code, int restart_count, bool stopped_by_user);

// docker's back-off: 100 ms before the first restart, doubled before each
// next one up to a minute, and back to 100 ms once a run lasted 10 s.
int64_t next_restart_delay_ms(int64_t previous_delay_ms, int64_t ran_ms);

// In a monitor, once it has recorded its container's exit: when the
// record's policy (read now, so that isola update counts) says so, marks
// the container restarting, waits out the back-off and starts it again
// with a new monitor. A user's stop (SIGTERM to this process) ends the
// wait and leaves the container exited.
void restart_after_exit(const std::string& store_root, const std::string& id);

}  // namespace isola
