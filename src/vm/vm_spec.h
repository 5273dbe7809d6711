// Turning a container's runtime spec (host paths) into the spec the guest
// agent runs (guest paths) plus the 9p shares that carry those paths, and
// the VM's size. Written to the container's vm.json at create time.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "spec/spec.h"
#include "vm/qemu.h"
#include "vm/vm_network.h"

namespace isola {

struct VmPlan {
  std::vector<VmShare> shares;
  uint64_t memory_mb = 0;
  unsigned cpus = 1;

  Json to_json() const;
  static Result<VmPlan> from_json(const Json& j);
};

// Rewrites `spec` in place for the guest; `etc_dir` holds the container's
// hostname/hosts/resolv.conf on the host.
Result<VmPlan> plan_vm(RuntimeSpec& spec, const std::string& etc_dir);

}  // namespace isola
