#include "cli/table.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace isola::cli {

// Display width: UTF-8 continuation bytes take no column.
static size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

std::string Table::render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - width(row[i]) + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string human_size(uint64_t bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 5) {
    v /= 1000.0;
    ++u;
  }
  if (u == 0) return fmt::format("{}B", bytes);
  // Three significant digits, trailing zeros trimmed: 4.26MB, 12.3kB, 100MB.
  std::string num = fmt::format("{:.{}f}", v, v < 10 ? 2 : v < 100 ? 1 : 0);
  if (num.find('.') != std::string::npos) {
    while (num.back() == '0') num.pop_back();
    if (num.back() == '.') num.pop_back();
  }
  return num + units[u];
}

std::string human_ago(int64_t then, int64_t now) {
  if (then <= 0) return "N/A";
  int64_t s = std::max<int64_t>(0, now - then);
  auto plural = [](int64_t n, const char* unit) {
    return fmt::format("{} {}{} ago", n, unit, n == 1 ? "" : "s");
  };
  if (s < 1) return "Less than a second ago";
  if (s < 60) return plural(s, "second");
  if (s < 3600) return s < 120 ? "About a minute ago" : plural(s / 60, "minute");
  if (s < 86400) return s < 7200 ? "About an hour ago" : plural(s / 3600, "hour");
  if (s < 86400 * 14) return plural(s / 86400, "day");
  if (s < 86400 * 60) return plural(s / (86400 * 7), "week");
  if (s < 86400 * 365 * 2) return plural(s / (86400 * 30), "month");
  return plural(s / (86400 * 365), "year");
}

int64_t parse_rfc3339(const std::string& text) {
  struct tm tm {};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t t = static_cast<int64_t>(::timegm(&tm));
  // Skip fractional seconds, then apply a numeric zone offset if present.
  const char* p = text.c_str() + consumed;
  if (*p == '.')
    while (*++p >= '0' && *p <= '9') {
    }
  if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2) t -= (*p == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
  }
  return t;
}

}  // namespace isola::cli
