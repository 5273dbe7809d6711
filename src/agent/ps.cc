#include "agent/ps.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "common/fs.h"
#include "common/json.h"

namespace isola::agent {
namespace {

template <class T>
bool to_number(std::string_view s, T& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::string two(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%02llu", static_cast<unsigned long long>(v));
  return buf;
}

// The effective uid from /proc/PID/status ("Uid:\treal\teffective\t...").
bool effective_uid(std::string_view status, uid_t& out) {
  size_t at = status.find("\nUid:");
  if (at == std::string_view::npos) return false;
  size_t end = status.find('\n', at + 1);
  auto f = fields(status.substr(at + 5, end == std::string_view::npos ? std::string_view::npos : end - at - 5));
  return f.size() >= 2 && to_number(f[1], out);
}

struct SystemClock {
  double uptime = 0;   // seconds
  time_t boot = 0;     // btime from /proc/stat
  long hz = 100;
};

SystemClock read_clock(const std::string& proc) {
  SystemClock c;
  long hz = ::sysconf(_SC_CLK_TCK);
  if (hz > 0) c.hz = hz;
  if (auto up = read_file(path_join(proc, "uptime"), 4096)) {
    auto f = fields(*up);
    if (!f.empty()) c.uptime = std::strtod(std::string(f[0]).c_str(), nullptr);
  }
  if (auto stat = read_file(path_join(proc, "stat"), 1u << 20)) {
    size_t at = stat->find("\nbtime ");
    if (at != std::string::npos) {
      size_t end = stat->find('\n', at + 1);
      long long bt = 0;
      if (to_number(std::string_view(*stat).substr(at + 7, end - at - 7), bt)) c.boot = static_cast<time_t>(bt);
    }
  }
  return c;
}

}  // namespace

Result<ProcStat> parse_proc_stat(std::string_view text) {
  auto bad = [&] { return fail(make_error("parse", "/proc/PID/stat", "unexpected format")); };
  size_t open = text.find(" (");
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return bad();
  ProcStat st;
  if (!to_number(text.substr(0, open), st.pid)) return bad();
  st.comm = std::string(text.substr(open + 2, close - open - 2));
  // After ") ": state(3) ppid(4) pgrp session tty_nr(7) tpgid flags(9)
  // minflt cminflt majflt cmajflt utime(14) stime(15) cutime cstime priority
  // nice num_threads itrealvalue starttime(22).
  auto f = fields(text.substr(close + 1));
  if (f.size() < 20 || f[0].size() != 1) return bad();
  st.state = f[0][0];
  if (!to_number(f[1], st.ppid) || !to_number(f[4], st.tty_nr) || !to_number(f[6], st.flags) ||
      !to_number(f[11], st.utime) || !to_number(f[12], st.stime) || !to_number(f[19], st.starttime))
    return bad();
  return st;
}

std::string format_cpu_time(uint64_t seconds) {
  uint64_t days = seconds / 86400;
  std::string hms = two(seconds % 86400 / 3600) + ":" + two(seconds % 3600 / 60) + ":" + two(seconds % 60);
  return days > 0 ? std::to_string(days) + "-" + hms : hms;
}

std::string format_start_time(time_t when) {
  struct tm tm {};
  if (!::gmtime_r(&when, &tm)) return "?";
  return two(static_cast<uint64_t>(tm.tm_hour)) + ":" + two(static_cast<uint64_t>(tm.tm_min));
}

std::string tty_name(int tty_nr) {
  unsigned nr = static_cast<unsigned>(tty_nr);
  unsigned major = (nr >> 8) & 0xfff;
  unsigned minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
  if (nr == 0) return "?";
  if (major >= 136 && major <= 143) return "pts/" + std::to_string((major - 136) * 256 + minor);
  if (major == 4) return minor >= 64 ? "ttyS" + std::to_string(minor - 64) : "tty" + std::to_string(minor);
  if (major == 5 && minor == 1) return "console";
  if (major == 229) return "hvc" + std::to_string(minor);
  return "?";
}

std::string user_name(uid_t uid, std::string_view passwd) {
  size_t start = 0;
  while (start < passwd.size()) {
    size_t end = passwd.find('\n', start);
    if (end == std::string_view::npos) end = passwd.size();
    std::string_view line = passwd.substr(start, end - start);
    start = end + 1;
    // name:password:uid:...
    size_t a = line.find(':');
    size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    size_t c = b == std::string_view::npos ? b : line.find(':', b + 1);
    if (c == std::string_view::npos || a == 0) continue;
    uid_t u;
    if (to_number(line.substr(b + 1, c - b - 1), u) && u == uid) return std::string(line.substr(0, a));
  }
  return std::to_string(uid);
}

std::string format_command(std::string_view cmdline, std::string_view comm) {
  while (!cmdline.empty() && cmdline.back() == '\0') cmdline.remove_suffix(1);
  if (cmdline.empty()) return "[" + std::string(comm) + "]";
  std::string out(cmdline);
  std::replace(out.begin(), out.end(), '\0', ' ');
  return out;
}

Result<PsTable> list_processes(const PsOptions& opts) {
  PsTable table;
  table.titles = {"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"};
  std::vector<std::string> names = TRY(list_dir(opts.proc));
  std::vector<pid_t> pids;
  for (const std::string& n : names) {
    pid_t pid;
    if (to_number(n, pid) && pid > 0) pids.push_back(pid);
  }
  std::sort(pids.begin(), pids.end());
  SystemClock clock = read_clock(opts.proc);
  for (pid_t pid : pids) {
    if (pid == opts.exclude) continue;
    std::string dir = path_join(opts.proc, std::to_string(pid));
    auto stat_text = read_file(dir + "/stat", 64 * 1024);
    if (!stat_text) continue;  // gone
    auto st = parse_proc_stat(*stat_text);
    if (!st || (st->flags & kPfKthread) || st->pid == 2 || st->ppid == 2) continue;
    auto status = read_file(dir + "/status", 64 * 1024);
    uid_t uid = 0;
    if (!status || !effective_uid(*status, uid)) continue;
    auto cmdline = read_file(dir + "/cmdline", 1u << 20);
    uint64_t cpu_ticks = st->utime + st->stime;
    double started = static_cast<double>(st->starttime) / static_cast<double>(clock.hz);
    double elapsed = clock.uptime - started;
    uint64_t percent = 0;
    if (elapsed > 0) {
      double p = static_cast<double>(cpu_ticks) / static_cast<double>(clock.hz) * 100.0 / elapsed;
      percent = static_cast<uint64_t>(std::clamp(p, 0.0, 9999.0));
    }
    table.rows.push_back({user_name(uid, opts.passwd), std::to_string(st->pid), std::to_string(st->ppid),
                          std::to_string(percent),
                          format_start_time(clock.boot + static_cast<time_t>(started)), tty_name(st->tty_nr),
                          format_cpu_time(cpu_ticks / static_cast<uint64_t>(clock.hz)),
                          format_command(cmdline ? *cmdline : std::string(), st->comm)});
  }
  return table;
}

std::string ps_reply_payload(const PsTable& table) {
  Json rows = Json::array();
  for (const auto& r : table.rows) rows.push_back(r);
  return Json{{"titles", table.titles}, {"processes", std::move(rows)}}.dump(-1, ' ', false,
                                                                            Json::error_handler_t::replace);
}

}  // namespace isola::agent
