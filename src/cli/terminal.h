// The user's side of a container's stdio: raw mode for -t, window size
// changes, and the attach session with a container's monitor.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace isola::cli {

// Puts the terminal on `fd` into raw mode until destroyed.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  // What was typed before raw mode began, as raw mode would have read it.
  std::string take_pending() { return std::move(pending_); }

 private:
  int fd_;
  bool active_ = false;
  char saved_[64];  // struct termios
  std::string pending_;
};

struct AttachOptions {
  bool stdin = false;  // forward our stdin
  bool tty = false;    // the container has a terminal: raw mode + resize
  // The request that opens the session: {"op":"attach"} by default; an
  // "exec" request for a process in a VM's guest.
  std::string op = "attach";
  Json extra = Json::object();
  int out = 1, err = 2;  // where the container's output goes
  // Signals caught while attached and what to do with each (run's --sig-proxy).
  std::vector<int> signals;
  std::function<void(int)> on_signal;
};

// What attach_session returns when the user detached (Ctrl-P Ctrl-Q).
inline constexpr int kDetached = -1;

// Attaches to the monitor's socket, starts the process if it waits for us,
// relays stdio until it exits; returns the container's exit code. Errors
// before the process started carry the 126/127 exit code hint.
Result<int> attach_session(const std::string& socket_path, const AttachOptions& opts);

// Prints `warning` and asks "Are you sure you want to continue? [y/N]" on
// the terminal; refuses without one (naming `command` and -f), so that a
// script never prunes by accident.
Result<bool> confirm_on_terminal(const std::string& command, const std::string& warning);

}  // namespace isola::cli
