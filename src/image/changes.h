// Dockerfile instructions applied to an image config by `isola import
// --change` and `isola commit --change`, as docker's: CMD, ENTRYPOINT, ENV,
// EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR; and HEALTHCHECK,
// which docker's --change lacks (isola build will share it).
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace isola {

// Applies each change, in order, to the "config" object of an image config.
Result<void> apply_changes(Json& config, const std::vector<std::string>& changes);

}  // namespace isola
