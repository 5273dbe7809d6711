// The monitor of a VM-isolated container: it runs the VM worker (QEMU) as
// its child, talks to isola-agent in the guest over the agent channel, and
// serves the same control socket as the process-isolation monitor (attach,
// resize) plus the requests that must go through the guest (signal, ps,
// exec). It records the exit the agent reports, or an error when the VM or
// the agent dies without one.
#pragma once

#include <functional>

#include "common/json.h"
#include "engine/container_store.h"

namespace isola {

// Boots the VM, reports {"ok":true,"pid":<worker pid>} or the error on
// `report_fd`, calls `on_started`, then serves until the container has
// exited and been recorded. False when the VM could not be started.
bool run_vm_monitor(ContainerStore store, ContainerRecord rec, Json spec, bool wait_for_attach, int report_fd,
                    const std::function<void()>& on_started);

}  // namespace isola
