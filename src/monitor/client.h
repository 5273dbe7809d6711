// One-shot requests to a container's monitor (signal, ps): connect, send
// the request, read the reply.
#pragma once

#include <string>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"

namespace isola {

Result<UniqueFd> connect_monitor(const std::string& socket_path);
Result<Json> monitor_call(const std::string& socket_path, const Json& request, int timeout_ms = 30000);

}  // namespace isola
