// Running OCI hooks on the host: each gets the container's state on stdin;
// a non-zero exit or a timeout is an error naming the hook.
#pragma once

#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "ociruntime/bundle.h"

namespace isola::oci {

Result<void> run_hooks(const std::vector<Hook>& hooks, const Json& state, const char* kind);

// For the hooks whose failure must not stop the lifecycle (poststart,
// poststop): every hook runs; a failure is a warning on stderr.
void run_hooks_warning(const std::vector<Hook>& hooks, const Json& state, const char* kind);

}  // namespace isola::oci
