// The client side of an attach or exec session with a container's monitor:
// send the request, relay stdin to it and its output to our descriptors,
// follow window size changes, and end with the process's exit code. Used by
// the CLI (attach, start -a, exec in a VM) and by isola-runtime's VM keeper
// and exec relay, which stand in for a guest process on the host.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"
#include "monitor/protocol.h"

namespace isola {

struct SessionOptions {
  // The request that opens the session: {"op":"attach"} or an "exec"
  // request ({"process":{...}}) for a process in a VM's guest.
  std::string op = "attach";
  Json extra = Json::object();
  bool stdin = false;  // forward `in`
  bool tty = false;    // the process has a terminal: follow `size_fd`'s window size
  int in = 0, out = 1, err = 2;
  int size_fd = 0;     // the terminal whose size the process gets
  // Ctrl-P Ctrl-Q on `in` ends the session without stopping the process.
  bool detach_keys = false;
  // Signals to catch while relaying, and what to do with each (the VM
  // keeper forwards them to the guest). SIGWINCH is always caught with tty.
  std::vector<int> signals;
  std::function<void(int)> on_signal;
  // Input already read from `in` (typed before raw mode began), sent first.
  std::string first_input;
};

// What run() returns when the user detached (Ctrl-P Ctrl-Q).
inline constexpr int kSessionDetached = -1;

class SessionClient {
 public:
  // Connects and sends the request (with the window size for a tty).
  static Result<SessionClient> open(const std::string& socket_path, SessionOptions opts);
  // Relays until the process runs (a "started" frame), so a caller can
  // report that it started. An error before that carries docker's exit
  // code hint (126/127) when the command could not be run.
  Result<void> wait_started();
  // Relays until the process exits; returns its exit code.
  Result<int> run();

 private:
  SessionClient(UniqueFd sock, SessionOptions opts);
  // Handles the frames read so far, up to the exit.
  Result<void> drain_frames();
  Result<bool> relay_once();
  Result<void> send_size();
  Result<void> forward_input();

  UniqueFd sock_;
  SessionOptions opts_;
  UniqueFd sigfd_;
  FrameReader reader_;
  std::string socket_path_;
  bool stdin_open_ = false;
  bool held_ctrl_p_ = false;
  bool started_ = false;
  bool exited_ = false;
  int exit_code_ = 0;
  bool detached_ = false;
};

}  // namespace isola
