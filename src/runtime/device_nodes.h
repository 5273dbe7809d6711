// The device nodes of a process container's /dev: isola's default set
// (null, zero, full, random, urandom, tty) and the spec's linux.devices,
// worked out in the parent and made by the child before pivot_root. Making
// a node does not let the container use it: the device cgroup decides that
// (linux.resources.devices), as with runc.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "spec/spec.h"

namespace isola {

struct DeviceNodePlan {
  std::string dir;        // the parent, relative to the rootfs: "dev", "dev/net"
  std::string name;       // "fuse"
  std::string host_path;  // bound from the host where mknod is not allowed (a user namespace)
  mode_t mode = 0;        // S_IFCHR | 0666, ...
  dev_t rdev = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The default set followed by `extra` (linux.devices), each checked.
Result<std::vector<DeviceNodePlan>> plan_device_nodes(const std::vector<DeviceNodeSpec>& extra);

// In the child: makes `d` in `dir_fd` (its parent directory), replacing
// whatever the image put there, owned and moded as planned; in a user
// namespace binds the host's node instead. 0, or an errno with `*step` the
// call that failed. Allocates nothing.
int make_device_node(int dir_fd, const DeviceNodePlan& d, const char** step);

}  // namespace isola
