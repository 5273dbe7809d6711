// Unix domain sockets by path. Paths longer than sun_path (108 bytes, easy
// to exceed under an engine's state directory) are reached through an
// O_PATH descriptor of their directory: /proc/self/fd/N/name.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace isola {

// Binds and listens on `path` (replacing a stale socket file), mode 0600.
// `type` is SOCK_STREAM or SOCK_SEQPACKET, optionally | SOCK_NONBLOCK.
Result<UniqueFd> unix_listen(const std::string& path, int type);
// Connects to `path`; `what` names the peer in errors.
Result<UniqueFd> unix_connect(const std::string& path, int type, const std::string& what);

// Sends `fd` over the Unix socket `sock` with SCM_RIGHTS, with `data` (at
// least one byte is sent) as the message, as runc sends a console.
Result<void> send_fd(int sock, int fd, std::string_view data);
// Receives one descriptor sent with SCM_RIGHTS (close-on-exec); anything
// else is an error. `flags` as for recvmsg (MSG_DONTWAIT).
Result<UniqueFd> recv_fd(int sock, int flags = 0);

}  // namespace isola
