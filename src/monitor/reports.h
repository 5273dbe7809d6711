// Exit and error reports: the JSON payloads of exit and error frames, and of
// a monitor's start report. They come from other processes, one of them the
// guest agent, which a container that took over its VM controls; reading
// them never throws, and a field of the wrong type reads as absent.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

struct ExitReport {
  int exit_code = 125;      // 0-255; `fallback` when absent or out of range
  bool oom_killed = false;
  std::string error;        // why the process never ran, if it did not
};

// {"exit_code":N,"oom_killed":B,"error":"..."}
ExitReport read_exit_report(std::string_view payload, int fallback = 125);

// {"message" or "error":"...","exit_code":N,"op":"...","errno":N}: the text
// as the error's message; the exit code if one in 1-255 is given, otherwise
// derived from op and errno as start_failure_exit_code does.
Error read_error_report(std::string_view payload);

// Maps a start failure to docker's exit code: 127 not found, 126 cannot be
// invoked, 125 otherwise.
int start_failure_exit_code(const Error& error);

}  // namespace isola
