// The stdio of a process a supervisor starts (the process monitor, the
// guest agent): pipes, or a pty the process makes in its container's own
// devpts, with the supervisor's ends non-blocking. One implementation, so a
// container's terminal is the same whichever isolation level runs it.
#pragma once

#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/container.h"

namespace isola {

struct WindowSize {
  unsigned short rows = 24, cols = 80;
};

// A new process's stdio: our ends (non-blocking) and the child's, which are
// closed once the runtime has handed them over.
struct StdioSet {
  StdioFds fds;
  UniqueFd child_in, child_out, child_err, child_console_sock;
  UniqueFd in, out, err;  // with a pty: `out` is the master, `in` a copy of it
  UniqueFd console_sock;  // the master arrives here
};

// With a terminal, the process creates its pty inside the container (so
// `tty` names a /dev/pts/N it can see, as with runc and docker) and sends
// the master back: call receive_master once the runtime returns.
Result<StdioSet> make_stdio(bool tty, bool interactive);

// Takes the pty master the process sent before it exec'd (or before it
// reported ready) and sets its size. Does not wait.
Result<void> receive_master(StdioSet& s, WindowSize size);

}  // namespace isola
