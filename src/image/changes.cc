#include "image/changes.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/duration.h"

namespace isola {

namespace {

std::string trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
  return s;
}

// A JSON array of strings (exec form) or a command line run by /bin/sh -c.
Result<Json> command_form(const std::string& args, const std::string& change) {
  if (args.starts_with("[")) {
    auto j = parse_json(args, "--change '" + change + "'");
    if (!j || !j->is_array() || !std::all_of(j->begin(), j->end(), [](const Json& v) { return v.is_string(); }))
      return fail(make_error("parse --change", change, "expected a JSON array of strings or a shell command"));
    return *j;
  }
  return Json::array({"/bin/sh", "-c", args});
}

// "K=V" pairs, or the old "K V" form of one pair.
Result<std::vector<std::pair<std::string, std::string>>> pairs(const std::string& args, const std::string& change) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t eq = args.find('='), space = args.find_first_of(" \t");
  if (eq == std::string::npos || (space != std::string::npos && space < eq)) {
    if (space == std::string::npos) return fail(make_error("parse --change", change, "expected KEY=VALUE"));
    out.emplace_back(args.substr(0, space), trim(args.substr(space)));
    return out;
  }
  size_t pos = 0;
  while (pos < args.size()) {
    size_t end = args.find_first_of(" \t", pos);
    std::string item = args.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? args.size() : args.find_first_not_of(" \t", end);
    if (pos == std::string::npos) pos = args.size();
    size_t e = item.find('=');
    if (e == std::string::npos || e == 0) return fail(make_error("parse --change", change, "expected KEY=VALUE"));
    std::string value = item.substr(e + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.emplace_back(item.substr(0, e), value);
  }
  return out;
}

void set_env(Json& config, const std::string& key, const std::string& value) {
  Json& env = config["Env"];
  if (!env.is_array()) env = Json::array();
  std::string entry = key + "=" + value;
  for (Json& e : env)
    if (e.is_string() && e.get<std::string>().starts_with(key + "=")) {
      e = entry;
      return;
    }
  env.push_back(entry);
}

// HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
// [--start-interval=D] [--retries=N] CMD command | NONE
Result<Json> healthcheck(std::string args, const std::string& change) {
  Json hc = Json::object();
  while (args.starts_with("--")) {
    size_t end = std::min(args.find_first_of(" \t"), args.size());
    std::string opt = args.substr(2, end - 2);
    args = trim(args.substr(end));
    size_t eq = opt.find('=');
    std::string name = opt.substr(0, eq), value = eq == std::string::npos ? "" : opt.substr(eq + 1);
    if (name == "retries") {
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 0)
        return fail(make_error("parse --change", change, "--retries takes a whole number"));
      hc["Retries"] = n;
      continue;
    }
    const char* key = name == "interval" ? "Interval" : name == "timeout" ? "Timeout"
                    : name == "start-period" ? "StartPeriod" : name == "start-interval" ? "StartInterval" : nullptr;
    if (!key)
      return fail(make_error("parse --change", change, "unknown HEALTHCHECK option --" + name +
                                                           "; use --interval, --timeout, --start-period, "
                                                           "--start-interval or --retries"));
    auto ns = parse_go_duration(value);
    if (!ns) return fail(make_error("parse --change", change, "--" + name + " takes a duration like 30s"));
    hc[key] = *ns;
  }
  size_t space = args.find_first_of(" \t");
  std::string kind = args.substr(0, space), rest = space == std::string::npos ? "" : trim(args.substr(space));
  std::transform(kind.begin(), kind.end(), kind.begin(), [](unsigned char c) { return std::toupper(c); });
  if (kind == "NONE" && rest.empty()) return Json{{"Test", {"NONE"}}};
  if (kind != "CMD" || rest.empty())
    return fail(make_error("parse --change", change, "expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE"));
  Json test = Json::array({"CMD-SHELL", rest});
  if (rest.starts_with("[")) {
    test = Json::array({"CMD"});
    for (const Json& a : TRY(command_form(rest, change))) test.push_back(a);
  }
  hc["Test"] = test;
  return hc;
}

Result<void> apply_one(Json& config, const std::string& change) {
  std::string text = trim(change);
  size_t space = text.find_first_of(" \t");
  std::string word = text.substr(0, space);
  std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::toupper(c); });
  std::string args = space == std::string::npos ? "" : trim(text.substr(space));
  if (args.empty()) return fail(make_error("parse --change", change, "missing arguments"));
  if (word == "CMD") {
    config["Cmd"] = TRY(command_form(args, change));
  } else if (word == "ENTRYPOINT") {
    config["Entrypoint"] = TRY(command_form(args, change));
  } else if (word == "ENV") {
    for (const auto& [k, v] : TRY(pairs(args, change))) set_env(config, k, v);
  } else if (word == "LABEL") {
    for (const auto& [k, v] : TRY(pairs(args, change))) config["Labels"][k] = v;
  } else if (word == "EXPOSE") {
    for (size_t pos = 0; pos < args.size();) {
      size_t end = std::min(args.find_first_of(" \t", pos), args.size());
      std::string port = args.substr(pos, end - pos);
      if (port.find('/') == std::string::npos) port += "/tcp";
      config["ExposedPorts"][port] = Json::object();
      pos = std::min(args.find_first_not_of(" \t", end), args.size());
    }
  } else if (word == "VOLUME") {
    Json list = args.starts_with("[") ? TRY(command_form(args, change)) : Json::array({args});
    for (const Json& v : list) config["Volumes"][v.get<std::string>()] = Json::object();
  } else if (word == "WORKDIR") {
    config["WorkingDir"] = args;
  } else if (word == "USER") {
    config["User"] = args;
  } else if (word == "STOPSIGNAL") {
    config["StopSignal"] = args;
  } else if (word == "HEALTHCHECK") {
    config["Healthcheck"] = TRY(healthcheck(args, change));
  } else {
    return fail(make_error("parse --change", change,
                           "unknown instruction; use CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, STOPSIGNAL, "
                           "USER, VOLUME or WORKDIR"));
  }
  return {};
}

}  // namespace

Result<void> apply_changes(Json& config, const std::vector<std::string>& changes) {
  for (const std::string& c : changes) TRYV(apply_one(config, c));
  return {};
}

}  // namespace isola
