// Turns an image's config and the run flags into the OCI runtime spec that
// either isolation backend executes. Docker's defaults: its mounts, masked
// and read-only paths, capabilities and seccomp profile.
#pragma once

#include <string>

#include "common/error.h"
#include "common/json.h"
#include "engine/options.h"
#include "spec/spec.h"

namespace isola {

struct SpecInputs {
  std::string id;            // container ID
  std::string rootfs;        // mounted rootfs (absolute)
  std::string etc_dir;       // holds hostname, hosts, resolv.conf to bind in
  std::string init_path;     // static init for --init ("" when unavailable)
  Json image_config;         // the image config's "config" object
  uint32_t userns_base = 0;  // host id of the container's root; 0: no user namespace
};

// Resolves "user[:group]" against the rootfs's /etc/passwd and /etc/group.
struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  std::string home = "/";
};
Result<ResolvedUser> resolve_user(const std::string& rootfs, const std::string& spec);

// Writes hostname, hosts and resolv.conf into `etc_dir`. `network` is the
// container's network mode: for "bridge" only the hostname (the network
// code writes the other two), for "host" the host's own files.
Result<void> write_etc_files(const std::string& etc_dir, const std::string& hostname, const std::string& network);

Result<RuntimeSpec> build_spec(const RunOptions& opts, const SpecInputs& inputs);

// Splits -v /host:/dst[:modes], -v NAME:/dst[:modes] (a named volume) or
// -v /dst (an anonymous volume); creates nothing.
Result<VolumeOption> parse_volume(const std::string& text);
// Reads "--memory 512m" style sizes (b, k, m, g).
Result<int64_t> parse_size(const std::string& text);

}  // namespace isola
