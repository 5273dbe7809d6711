// The stdio of a process the agent starts: pipes, or a pty made in the
// guest or inside the container, with the agent's ends non-blocking.
#pragma once

#include "agent/requests.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/container.h"

namespace isola::agent {

// A new process's stdio: our ends (non-blocking) and the child's, which are
// closed once the runtime has handed them over.
struct StdioSet {
  StdioFds fds;
  UniqueFd child_in, child_out, child_err, slave, child_console_sock;
  UniqueFd in, out, err;  // with a pty: `out` is the master, `in` a copy of it
  UniqueFd console_sock;  // the master arrives here (exec with a terminal)
};

// With a terminal, `in_container` makes the process create its pty inside
// the container (so `tty` names a /dev/pts/N it can see) and send the master
// back: call receive_master once the process runs. Otherwise the guest makes
// the pty and the runtime binds the slave to the container's /dev/console.
Result<StdioSet> make_stdio(bool tty, bool interactive, WindowSize size, bool in_container);

// Takes the pty master the process sent before it exec'd and sets its size.
Result<void> receive_master(StdioSet& s, WindowSize size);

}  // namespace isola::agent
