// What the agent keeps of each process and container; shared by its
// event loop (agent.cc) and its container creation (agent_create.cc).
#pragma once

#include <sys/types.h>

#include <string>

#include "agent/agent.h"
#include "spec/spec.h"

namespace isola::agent {

struct Agent::Proc {
  uint32_t stream = 0;
  pid_t pid = -1;
  bool init = false;    // the VM's first container's
  bool member = false;  // a pod's further container's
  bool tty = false;
  UniqueFd in, out, err;
  std::string in_buf;
  bool in_eof = false;  // close `in` once in_buf is written
  bool exited = false;
  int status = 0;
  Clock::time_point drain_until{};
};

struct Agent::Container {
  std::string id;
  RuntimeSpec spec;
  pid_t init_pid = -1;
};

}  // namespace isola::agent
