// The per-container monitor: a small process that outlives the CLI. It
// starts the container process and is its parent; holds its stdio or pty;
// writes the log (JSON lines with stream and time); serves attach and resize
// on a control socket; reaps the process, records the exit code, times and
// OOM kill atomically in state.json; and tears down the cgroup and rootfs
// mount (and the whole container for --rm).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "monitor/reports.h"

namespace isola {

struct MonitorRequest {
  std::string root;  // the store root
  std::string id;    // the container
  // Attached runs: the process execs only once a client has attached, so
  // not a byte of output is missed.
  bool wait_for_attach = false;
  // The monitor stays a child of the caller and dies with it (SIGKILL), for
  // a caller that is itself the container's process for someone else (the
  // VM keeper of isola-runtime). Otherwise it is a daemon of its own.
  bool child_of_caller = false;
};

// Starts the monitor and returns its PID once the container process runs
// (or, with wait_for_attach, is ready to). A failure to start (e.g. the
// command does not exist) comes back as the error; op "exec" and the errno
// tell 127 from 126.
Result<pid_t> launch_monitor(const MonitorRequest& request);

}  // namespace isola
