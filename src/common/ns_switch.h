// Visiting another namespace on this thread and coming back: setns into the
// target, and back into our own when the object goes. Failing to come back
// aborts, as the thread would otherwise go on in the container's namespace.
#pragma once

#include <fcntl.h>
#include <sched.h>

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace isola {

class NsSwitch {
 public:
  // `type` is CLONE_NEWNET or CLONE_NEWPID; `what` names the target in errors.
  static Result<NsSwitch> enter(int target_fd, int type, const std::string& what) {
    UniqueFd own = TRY(open_path(type == CLONE_NEWPID ? "/proc/self/ns/pid" : "/proc/self/ns/net", O_RDONLY));
    if (::setns(target_fd, type) != 0)
      return fail(sys_error(type == CLONE_NEWPID ? "join pid namespace" : "join network namespace", what));
    return NsSwitch(std::move(own), type);
  }
  NsSwitch(NsSwitch&&) = default;
  ~NsSwitch() {
    if (own_ && ::setns(own_.get(), type_) != 0) std::abort();
  }

 private:
  NsSwitch(UniqueFd own, int type) : own_(std::move(own)), type_(type) {}
  UniqueFd own_;
  int type_;
};

}  // namespace isola
