#include "monitor/reports.h"

#include <cerrno>

#include "common/json.h"

namespace isola {

namespace {

int exit_code_or(const Json& j, int fallback) {
  int64_t code = json_int_or(j, "exit_code", fallback);
  return code >= 0 && code <= 255 ? static_cast<int>(code) : fallback;
}

}  // namespace

ExitReport read_exit_report(std::string_view payload, int fallback) {
  ExitReport r;
  r.exit_code = fallback;
  auto j = parse_json(payload, "exit report");
  if (!j) return r;
  r.exit_code = exit_code_or(*j, fallback);
  r.oom_killed = json_bool_or(*j, "oom_killed", false);
  r.error = json_string_or(*j, "error");
  return r;
}

Error read_error_report(std::string_view payload) {
  auto j = parse_json(payload, "error report");
  if (!j) {
    Error e = plain_error("unknown error (the report was not JSON)");
    e.exit_code = 125;
    return e;
  }
  std::string text = json_string_or(*j, "message");
  if (text.empty()) text = json_string_or(*j, "error");
  Error e = plain_error(text.empty() ? "unknown error" : text);
  int64_t err = json_int_or(*j, "errno", 0);
  Error probe{err > 0 && err < 4096 ? static_cast<int>(err) : 0, json_string_or(*j, "op"), {}, {}};
  int given = exit_code_or(*j, 0);
  e.exit_code = given ? given : start_failure_exit_code(probe);
  return e;
}

int start_failure_exit_code(const Error& error) {
  if (error.op == "exec") {
    if (error.err == ENOENT) return 127;
    if (error.err == EACCES || error.err == ENOEXEC || error.err == EPERM || error.err == EISDIR) return 126;
  }
  return 125;
}

}  // namespace isola
