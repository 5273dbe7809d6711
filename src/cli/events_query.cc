#include "cli/events_query.h"

#include <time.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace isola::cli {

const std::vector<std::string> kEventFilters = {"container", "event", "image", "label", "network", "type", "volume"};

namespace {

constexpr int64_t kSecond = 1000000000;

// Digits at `p`, at most `max` of them; false when there are none.
bool take_digits(const std::string& s, size_t& p, size_t max, int64_t& value, size_t* count = nullptr) {
  size_t start = p;
  value = 0;
  while (p < s.size() && p - start < max && std::isdigit(static_cast<unsigned char>(s[p])))
    value = value * 10 + (s[p++] - '0');
  if (count) *count = p - start;
  return p > start;
}

bool take(const std::string& s, size_t& p, char c) {
  if (p < s.size() && s[p] == c) return ++p, true;
  return false;
}

// A fraction of a second after the '.', as nanoseconds.
bool take_fraction(const std::string& s, size_t& p, int64_t& ns) {
  size_t n = 0;
  if (!take_digits(s, p, 9, ns, &n)) return false;
  for (; n < 9; ++n) ns *= 10;
  while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) ++p;  // beyond nanoseconds
  return true;
}

// Go's time.ParseDuration, for positive values: [0-9.]+ unit, repeated.
std::optional<int64_t> parse_duration(const std::string& s) {
  static const std::pair<const char*, int64_t> units[] = {
      {"ns", 1}, {"us", 1000}, {"µs", 1000}, {"ms", 1000000}, {"s", kSecond}, {"m", 60 * kSecond}, {"h", 3600 * kSecond}};
  size_t p = 0;
  long double total = 0;
  while (p < s.size()) {
    size_t start = p;
    while (p < s.size() && (std::isdigit(static_cast<unsigned char>(s[p])) || s[p] == '.')) ++p;
    if (p == start) return std::nullopt;
    long double number = std::strtold(s.substr(start, p - start).c_str(), nullptr);
    size_t best = 0;
    int64_t scale = 0;
    for (const auto& [name, ns] : units) {
      size_t len = std::char_traits<char>::length(name);
      if (s.compare(p, len, name) == 0 && len > best) best = len, scale = ns;
    }
    if (best == 0) return std::nullopt;
    p += best;
    total += number * scale;
  }
  if (s.empty() || total > 1e18L) return std::nullopt;
  return static_cast<int64_t>(total);
}

std::optional<int64_t> parse_unix(const std::string& s) {
  size_t p = 0;
  int64_t secs = 0, frac = 0;
  if (!take_digits(s, p, 12, secs)) return std::nullopt;
  if (take(s, p, '.') && !take_fraction(s, p, frac)) return std::nullopt;
  if (p != s.size()) return std::nullopt;
  return secs * kSecond + frac;
}

// 2006-01-02, 2006-01-02T15:04, ...T15:04:05, ...T15:04:05.999999999, each
// with an optional Z or +07:00.
std::optional<int64_t> parse_rfc3339(const std::string& s) {
  size_t p = 0;
  int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
  if (!take_digits(s, p, 4, y) || !take(s, p, '-') || !take_digits(s, p, 2, mo) || !take(s, p, '-') ||
      !take_digits(s, p, 2, d))
    return std::nullopt;
  if (take(s, p, 'T') || take(s, p, 't') || take(s, p, ' ')) {
    if (!take_digits(s, p, 2, h) || !take(s, p, ':') || !take_digits(s, p, 2, mi)) return std::nullopt;
    if (take(s, p, ':')) {
      if (!take_digits(s, p, 2, sec)) return std::nullopt;
      if (take(s, p, '.') && !take_fraction(s, p, frac)) return std::nullopt;
    }
  }
  struct tm tm {};
  tm.tm_year = static_cast<int>(y - 1900);
  tm.tm_mon = static_cast<int>(mo - 1);
  tm.tm_mday = static_cast<int>(d);
  tm.tm_hour = static_cast<int>(h);
  tm.tm_min = static_cast<int>(mi);
  tm.tm_sec = static_cast<int>(sec);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  time_t t;
  if (p == s.size()) {
    tm.tm_isdst = -1;
    t = ::mktime(&tm);  // no zone: local time, as docker
  } else if (take(s, p, 'Z') || take(s, p, 'z')) {
    t = ::timegm(&tm);
  } else {
    int sign = s[p] == '-' ? -1 : 1;
    int64_t zh, zm;
    if ((!take(s, p, '+') && !take(s, p, '-')) || !take_digits(s, p, 2, zh) || !take(s, p, ':') ||
        !take_digits(s, p, 2, zm))
      return std::nullopt;
    t = ::timegm(&tm) - sign * (zh * 3600 + zm * 60);
  }
  if (p != s.size()) return std::nullopt;
  return static_cast<int64_t>(t) * kSecond + frac;
}

bool fuzzy(const std::string& want, const std::string& have) { return !have.empty() && have.starts_with(want); }

std::string attribute(const Event& e, const char* key) {
  auto it = e.attributes.find(key);
  return it == e.attributes.end() ? std::string() : it->second;
}

// Actor ID or name, by prefix, for events of `type` only.
bool names_match(const Filters& f, const char* key, const Event& e) {
  return f.any(key, [&](const std::string& v) {
    return e.type == key && (fuzzy(v, e.id) || fuzzy(v, attribute(e, "name")));
  });
}

std::string without_latest(std::string ref) {
  if (ref.ends_with(":latest")) ref.resize(ref.size() - 7);
  return ref;
}

bool image_matches(const std::string& want, const Event& e) {
  std::string w = without_latest(want);
  for (const std::string& have : {e.type == "container" ? attribute(e, "image") : std::string(),
                                  e.type == "image" ? e.id : std::string(),
                                  e.type == "image" ? attribute(e, "name") : std::string()})
    if (!have.empty() && (without_latest(have) == w ||
                          (have.starts_with("sha256:") && (fuzzy(want, have) || fuzzy(want, have.substr(7))))))
      return true;
  return false;
}

}  // namespace

Result<int64_t> parse_event_time(const std::string& flag, const std::string& text, int64_t now_ns) {
  if (auto ns = parse_unix(text)) return *ns;
  if (auto ns = parse_rfc3339(text)) return *ns;
  if (auto ago = parse_duration(text)) return now_ns - *ago;
  return fail(make_error(flag, text,
                         "not a time; use an RFC 3339 time (2026-01-02T15:04:05Z), a Unix time (1767366245) or a "
                         "duration before now (10m, 1h30m)"));
}

bool event_matches(const Filters& f, const Event& e) {
  // "exec_start: sh -c ..." and "health_status: healthy" match their verb too.
  std::string verb = e.action.substr(0, e.action.find(':'));
  return f.any("type", [&](const std::string& v) { return v == e.type; }) &&
         f.any("event", [&](const std::string& v) { return v == e.action || v == verb; }) &&
         names_match(f, "container", e) && names_match(f, "network", e) && names_match(f, "volume", e) &&
         f.any("image", [&](const std::string& v) { return image_matches(v, e); }) && f.labels_match(e.attributes);
}

std::string event_text(const Event& e) {
  time_t secs = static_cast<time_t>(e.time_ns / kSecond);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char when[64];
  size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%09lldZ", static_cast<long long>(e.time_ns % kSecond));
  std::string line = std::string(when) + " " + e.type + " " + e.action + " " + e.id;
  std::string attrs;
  for (const auto& [k, v] : e.attributes) attrs += (attrs.empty() ? "" : ", ") + k + "=" + v;
  if (!attrs.empty()) line += " (" + attrs + ")";
  return line;
}

}  // namespace isola::cli
