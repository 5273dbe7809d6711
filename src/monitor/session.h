// What both kinds of monitor share: the control socket, its clients, and
// the container log (JSON lines with log, stream and time).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"
#include "monitor/protocol.h"

namespace isola {

Result<void> write_all(int fd, std::string_view data);
void set_nonblock(int fd);
// How a start failure travels to the CLI: errno and op let it pick 126/127.
Json error_json(const Error& e);
Result<UniqueFd> listen_socket(const std::string& path);

struct Client {
  UniqueFd fd;
  FrameReader reader;
  std::string out;  // pending bytes to send
  bool attached = false;
  bool closed = false;
  uint32_t stream = 0;  // VM monitors: the guest process this client drives (0: none)
};

// Sends what is pending without blocking; marks the client closed on error.
void flush_client(Client& c);
// Queues a frame for a client, dropping clients that stopped reading.
void queue_frame(Client& c, FrameType type, std::string_view payload);

// Appends output to the log, one JSON line per line of output.
void log_output(int log_fd, std::string_view data, const char* stream);

}  // namespace isola
