// Durations as Go writes them, which is how docker users type them
// (--health-interval 30s, HEALTHCHECK --timeout=1m30s).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace isola {

// Go's time.ParseDuration for what users type: "30s", "1m30s", "500ms",
// "1.5h", "0"; nanoseconds, or nullopt (negative and overflowing ones too).
std::optional<int64_t> parse_go_duration(const std::string& text);
// 30000000000 -> "30s", 90000000000 -> "1m30s", 500000000 -> "500ms".
std::string format_go_duration(int64_t ns);

}  // namespace isola
