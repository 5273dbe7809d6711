// A client of QEMU's machine protocol (QMP) on a Unix socket: just what
// saving and cloning a VM takes (commands, a descriptor passed with
// SCM_RIGHTS, waiting for an event). QEMU is the VM worker and is not
// trusted: every reply is parsed with a size limit and a deadline, and a
// reply that is not what QMP promises is an error, never a crash.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"

namespace isola {

class Qmp {
 public:
  // Connects to `path` (retrying while QEMU creates it, as long as `worker`
  // lives), reads the greeting and leaves capabilities negotiation done.
  // The socket's name is removed then: QMP commands the whole VM, and this
  // connection is the only one it gets.
  static Result<Qmp> connect(const std::string& path, pid_t worker, int timeout_ms);

  // Runs `command` with `arguments` (an object, or null for none) and
  // returns its "return" value; an "error" reply is an error naming it.
  Result<Json> execute(const std::string& command, const Json& arguments = nullptr);
  // `getfd`: hands `fd` to QEMU under `name`.
  Result<void> pass_fd(int fd, const std::string& name);
  // Waits for an event called `name` whose data has `key` == `value` (or
  // any data when `key` is empty); events seen earlier count too.
  Result<Json> wait_event(const std::string& name, const std::string& key, const std::string& value,
                          int timeout_ms);

 private:
  explicit Qmp(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<void> send(const Json& message, int pass = -1);
  // The next message (a reply or an event), or an error at the deadline.
  Result<Json> next(int timeout_ms);
  // The reply to the command just sent; events on the way are kept.
  Result<Json> reply(const std::string& command);

  UniqueFd fd_;
  std::string buf_;
  std::vector<Json> events_;
  int timeout_ms_ = 10000;
};

}  // namespace isola
