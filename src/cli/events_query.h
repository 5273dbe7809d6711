// What `isola events` selects: --since/--until times and --filter matching,
// apart from the command so unit tests can reach them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/filters.h"
#include "common/error.h"
#include "engine/events.h"

namespace isola::cli {

// docker's event filter keys.
extern const std::vector<std::string> kEventFilters;

// A --since or --until value as nanoseconds since the epoch: an RFC 3339
// time (date only, with or without seconds, fraction and zone; local time
// when no zone is given), a Unix time with an optional fraction, or a Go
// duration ("10m", "1h30m", "1.5s") meaning that long before `now_ns`. The
// error names `flag`.
Result<int64_t> parse_event_time(const std::string& flag, const std::string& text, int64_t now_ns);

// Whether `e` passes the filters, as docker: values of one key OR, keys AND.
// Names and IDs match whole or by prefix; label filters test the
// attributes (a container's labels are among them).
bool event_matches(const Filters& f, const Event& e);

// docker's default line: "<time> <type> <action> <id> (k=v, ...)".
std::string event_text(const Event& e);

}  // namespace isola::cli
