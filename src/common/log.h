// Diagnostics on stderr. Errors for users go through the CLI; these are for
// warnings and for debugging (ISOLA_DEBUG=1 or --debug).
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace isola {

void set_debug(bool on);
bool debug_enabled();
void log_line(std::string_view level, std::string_view text);

// With ISOLA_TRACE=FILE, appends "<CLOCK_MONOTONIC ns> <pid> <phase>" to
// FILE: the phases of a container's start, which bench/run turns into a
// breakdown of where the time goes. Costs one getenv when off.
void trace(std::string_view phase);

template <class... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (debug_enabled()) log_line("debug", fmt::format(f, std::forward<Args>(args)...));
}

template <class... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  log_line("warning", fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace isola
