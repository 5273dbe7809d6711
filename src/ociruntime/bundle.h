// Reading a bundle's config.json for isola-runtime: the spec as isola's
// backends take it, the hooks, the isolation level, and the checks that
// refuse what isola cannot honour (rather than run a container less
// isolated or differently configured than the engine asked).
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "ociruntime/state.h"
#include "spec/spec.h"

namespace isola::oci {

struct Hook {
  std::string path;
  std::vector<std::string> args, env;
  int timeout = 0;  // seconds; 0: none
};

struct Hooks {
  std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart, poststop;
};

struct Bundle {
  std::string dir;  // absolute
  Json config;      // as written by the engine
  RuntimeSpec spec;  // root_path made absolute, cgroups path resolved
  Hooks hooks;
  Backend backend = Backend::process;
};

// The annotation that selects the isolation level per container.
inline constexpr const char* kIsolationAnnotation = "io.isola.isolation";
// "cold": the VM boots even when a VM template fits (isola run --vm-boot=cold).
inline constexpr const char* kVmBootAnnotation = "io.isola.vm.boot";

struct BundleOptions {
  std::string id;
  bool systemd_cgroup = false;  // cgroupsPath is "slice:prefix:name"
  bool vm_by_default = false;   // invoked as isola-runtime-vm
};

Result<Bundle> load_bundle(const std::string& dir, const BundleOptions& opts);

// Hooks from a spec document (also the copy kept in the state directory).
Result<Hooks> parse_hooks(const Json& config);

// systemd's "machine.slice:libpod:ID" → "machine.slice/libpod-ID.scope";
// a plain path is kept; empty gives "isola-runtime/<id>".
Result<std::string> resolve_cgroups_path(const std::string& path, bool systemd, const std::string& id);

}  // namespace isola::oci
