#include "engine/health.h"

#include <algorithm>

#include "common/duration.h"

namespace isola {

namespace {

constexpr size_t kLogEntries = 5;

std::optional<int64_t> json_ns(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  // An image's values are untrusted: at least 1 ms (as the flags), at most
  // a day, so a probe can neither spin nor overflow a deadline.
  int64_t v = it->get<int64_t>();
  if (v <= 0) return std::nullopt;
  return std::clamp<int64_t>(v, 1'000'000, 86'400'000'000'000);
}

}  // namespace

Json merge_healthcheck(const HealthOption& flags, const Json& image_config) {
  if (flags.disable) return nullptr;
  Json hc = Json::object();
  if (auto it = image_config.find("Healthcheck"); it != image_config.end() && it->is_object()) {
    for (const char* key : {"Interval", "Timeout", "StartPeriod", "StartInterval"})
      if (auto v = json_ns(*it, key)) hc[key] = *v;
    if (auto r = it->find("Retries"); r != it->end() && r->is_number_integer() && r->get<int64_t>() > 0 &&
                                       r->get<int64_t>() < 1000000)
      hc["Retries"] = r->get<int>();
    if (auto t = it->find("Test"); t != it->end() && t->is_array()) {
      Json test = Json::array();
      for (const Json& w : *t)
        if (w.is_string()) test.push_back(w);
      hc["Test"] = test;
    }
  }
  if (!flags.test.empty()) hc["Test"] = flags.test;
  auto set = [&](const char* key, const std::optional<int64_t>& v) {
    if (v && *v > 0) hc[key] = *v;
  };
  set("Interval", flags.interval_ns);
  set("Timeout", flags.timeout_ns);
  set("StartPeriod", flags.start_period_ns);
  set("StartInterval", flags.start_interval_ns);
  if (flags.retries && *flags.retries > 0) hc["Retries"] = *flags.retries;
  const Json test = hc.value("Test", Json::array());
  // A check needs a command: ["CMD-SHELL", cmd] or ["CMD", arg...].
  bool runnable = test.size() >= 2 && (test[0] == "CMD" || test[0] == "CMD-SHELL");
  if (!runnable) return nullptr;
  return hc;
}

std::vector<std::string> HealthConfig::command() const {
  if (test.empty()) return {};
  if (test[0] == "CMD-SHELL") return {"/bin/sh", "-c", test.size() > 1 ? test[1] : ""};
  return std::vector<std::string>(test.begin() + 1, test.end());
}

std::optional<HealthConfig> health_config_of(const ContainerRecord& rec) {
  auto it = rec.options.find("Healthcheck");
  if (it == rec.options.end() || !it->is_object()) return std::nullopt;
  HealthConfig c;
  if (auto t = it->find("Test"); t != it->end() && t->is_array())
    for (const Json& w : *t)
      if (w.is_string()) c.test.push_back(w.get<std::string>());
  if (c.test.size() < 2 || (c.test[0] != "CMD" && c.test[0] != "CMD-SHELL")) return std::nullopt;
  if (auto v = json_ns(*it, "Interval")) c.interval_ns = *v;
  if (auto v = json_ns(*it, "Timeout")) c.timeout_ns = *v;
  if (auto v = json_ns(*it, "StartPeriod")) c.start_period_ns = *v;
  if (auto v = json_ns(*it, "StartInterval")) c.start_interval_ns = *v;
  if (auto r = it->find("Retries"); r != it->end() && r->is_number_integer() && r->get<int64_t>() > 0 &&
                                     r->get<int64_t>() < 1000000)
    c.retries = r->get<int>();
  return c;
}

Json HealthState::to_json() const {
  Json log_json = Json::array();
  for (const HealthProbe& p : log)
    log_json.push_back({{"Start", format_time_ns(p.start_ns)},
                        {"End", format_time_ns(p.end_ns)},
                        {"ExitCode", p.exit_code},
                        {"Output", p.output},
                        {"StartNano", p.start_ns},
                        {"EndNano", p.end_ns}});
  return {{"Status", status}, {"FailingStreak", failing_streak}, {"Log", log_json}};
}

HealthState HealthState::from_json(const Json& j) {
  HealthState s;
  if (!j.is_object()) return s;
  s.status = json_string_or(j, "Status", "starting");
  s.failing_streak = static_cast<int>(json_int_or(j, "FailingStreak", 0));
  if (auto it = j.find("Log"); it != j.end() && it->is_array())
    for (const Json& e : *it) {
      if (!e.is_object()) continue;
      s.log.push_back({json_int_or(e, "StartNano", 0), json_int_or(e, "EndNano", 0),
                       static_cast<int>(json_int_or(e, "ExitCode", 0)), json_string_or(e, "Output")});
    }
  return s;
}

void HealthState::record(const HealthProbe& probe, int retries, bool in_start_period) {
  log.push_back(probe);
  if (log.size() > kLogEntries) log.erase(log.begin(), log.end() - kLogEntries);
  if (probe.exit_code == 0) {
    status = "healthy";
    failing_streak = 0;
    return;
  }
  if (in_start_period && status == "starting") return;
  if (++failing_streak >= retries) status = "unhealthy";
}

std::optional<HealthState> read_health(const ContainerStore& store, const std::string& id) {
  auto text = read_file(store.health_path(id), 1u << 20);
  if (!text) return std::nullopt;
  auto j = parse_json(*text, "health");
  if (!j) return std::nullopt;
  return HealthState::from_json(*j);
}

Result<void> write_health(const ContainerStore& store, const std::string& id, const HealthState& state) {
  return write_file_atomic(store.health_path(id), state.to_json().dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", 0600);
}

std::string health_suffix(const ContainerStore& store, const ContainerRecord& rec) {
  if (!health_config_of(rec)) return "";
  auto h = read_health(store, rec.id);
  std::string status = h ? h->status : "starting";
  return status == "starting" ? " (health: starting)" : " (" + status + ")";
}

}  // namespace isola
