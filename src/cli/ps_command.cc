// isola ps (and container ls): the container list, its columns, filters
// and formats.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "engine/engine.h"
#include "engine/health.h"
#include "engine/networking.h"

namespace isola::cli {

const char* isolation_text(Isolation i) { return i == Isolation::vm ? "vm" : "process"; }

namespace {

std::string human_duration(int64_t secs) {
  if (secs < 1) return "Less than a second";
  if (secs < 60) return std::to_string(secs) + " second" + (secs == 1 ? "" : "s");
  if (secs < 120) return "About a minute";
  if (secs < 3600) return std::to_string(secs / 60) + " minutes";
  if (secs < 7200) return "About an hour";
  if (secs < 172800) return std::to_string(secs / 3600) + " hours";
  return std::to_string(secs / 86400) + " days";
}

std::string status_text(const ContainerState& st, const std::string& health) {
  int64_t now = now_ns();
  if (st.status == "running") return "Up " + human_duration((now - st.started_ns) / 1000000000) + health;
  if (st.status == "paused") return "Up " + human_duration((now - st.started_ns) / 1000000000) + " (Paused)";
  if (st.status == "restarting")
    return "Restarting (" + std::to_string(st.exit_code) + ") " +
           human_ago(st.finished_ns / 1000000000, now / 1000000000);
  if (st.status == "exited")
    return "Exited (" + std::to_string(st.exit_code) + ") " + human_ago(st.finished_ns / 1000000000, now / 1000000000);
  return "Created";
}

std::string quoted_command(const std::vector<std::string>& args) {
  std::string cmd;
  for (const std::string& a : args) cmd += (cmd.empty() ? "" : " ") + a;
  if (cmd.size() > 20) cmd = cmd.substr(0, 19) + "…";
  return "\"" + cmd + "\"";
}

std::string created_at(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm {};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return buf;
}

// A ps row under docker's placeholder names, for --format templates.
Json ps_row(ContainerStore& cs, const ContainerRecord& r, const ContainerState& st, bool no_trunc, int64_t now) {
  ContainerNetwork net = load_container_network(cs, r.id).value_or(ContainerNetwork{});
  std::string ports, networks, labels, mounts, command;
  for (const PortMapping& p : net.ports)
    ports += (ports.empty() ? "" : ", ") + (p.host_ip.empty() ? std::string("0.0.0.0") : p.host_ip) + ":" +
             std::to_string(p.host_port) + "->" + std::to_string(p.container_port) + "/" + p.proto;
  for (const Endpoint& e : net.endpoints) networks += (networks.empty() ? "" : ",") + e.network;
  if (networks.empty()) networks = net.mode;
  for (const auto& [k, v] : r.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
  // As docker's MOUNTS: a volume by its name, a bind mount by its host path.
  if (auto list = r.options.find("Mounts"); list != r.options.end() && list->is_array())
    for (const Json& m : *list) {
      if (!m.is_object() || json_string_or(m, "Type") == "tmpfs") continue;
      std::string name = json_string_or(m, "Type") == "volume" ? json_string_or(m, "Name") : json_string_or(m, "Source");
      mounts += (mounts.empty() ? "" : ",") + name;
    }
  for (const std::string& arg : r.command) command += (command.empty() ? "" : " ") + arg;
  return {{"ID", no_trunc ? r.id : r.id.substr(0, 12)}, {"Image", r.image},
          {"Command", no_trunc ? "\"" + command + "\"" : quoted_command(r.command)},
          {"CreatedAt", created_at(r.created_ns)}, {"RunningFor", human_ago(r.created_ns / 1000000000, now)},
          {"Ports", ports}, {"Status", status_text(st, health_suffix(cs, r))}, {"State", st.status}, {"Names", r.name},
          {"Labels", labels}, {"Mounts", mounts}, {"Networks", networks}, {"Size", "0B"},
          {"Isolation", isolation_text(r.isolation)}};
}

const std::vector<Column> kPsColumns = {
    {"ID", "CONTAINER ID"}, {"Image", "IMAGE"},         {"Command", "COMMAND"},
    {"CreatedAt", "CREATED AT", false}, {"RunningFor", "CREATED"}, {"Ports", "PORTS", false},
    {"Status", "STATUS"},  {"State", "STATE", false},  {"Names", "NAMES"},
    {"Labels", "LABELS", false}, {"Mounts", "MOUNTS", false}, {"Networks", "NETWORKS", false},
    {"Size", "SIZE", false}, {"Isolation", "ISOLATION"}};

const std::vector<std::string> kPsFilters = {"ancestor", "before", "exited", "id", "isolation", "label",
                                             "name", "network", "since", "status"};

// Whether a container passes ps's --filter (docker's keys).
Result<bool> ps_matches(Engine& engine, const Filters& f, const ContainerRecord& r, const ContainerState& st) {
  static const std::set<std::string> statuses = {"created", "restarting", "running", "removing", "paused", "exited", "dead"};
  for (const std::string& v : f.values("status"))
    if (!statuses.contains(v))
      return fail(make_error("--filter", "status=" + v,
                             "unknown status; use created, restarting, running, removing, paused, exited or dead"));
  auto created_of = [&](const std::string& ref) -> Result<int64_t> {
    auto other = engine.containers().resolve(ref);
    if (!other) return fail(other.error());
    return other->created_ns;
  };
  for (const std::string& v : f.values("before"))
    if (r.created_ns >= TRY(created_of(v))) return false;
  for (const std::string& v : f.values("since"))
    if (r.created_ns <= TRY(created_of(v))) return false;
  ContainerNetwork net = load_container_network(engine.containers(), r.id).value_or(ContainerNetwork{});
  return f.any("name", [&](const std::string& v) { return r.name.find(v) != std::string::npos; }) &&
         f.any("id", [&](const std::string& v) { return r.id.starts_with(v); }) &&
         f.any("status", [&](const std::string& v) { return v == st.status; }) &&
         f.any("isolation", [&](const std::string& v) { return v == isolation_text(r.isolation); }) &&
         f.any("exited", [&](const std::string& v) { return st.status == "exited" && v == std::to_string(st.exit_code); }) &&
         f.any("ancestor", [&](const std::string& v) {
           std::string id = v.starts_with("sha256:") ? v.substr(7) : v;
           return r.image == v || r.image == v + ":latest" || (id.size() >= 4 && r.image_id.starts_with(id));
         }) &&
         f.any("network", [&](const std::string& v) {
           for (const Endpoint& e : net.endpoints)
             if (e.network == v || (v.size() >= 4 && e.network_id.starts_with(v))) return true;
           return v == net.mode;
         }) &&
         f.labels_match(r.labels);
}

int cmd_ps(const Globals& g, bool all, bool quiet, bool no_trunc, const std::string& format,
           const std::vector<std::string>& filter_args) {
  auto filters = Filters::parse(filter_args, kPsFilters);
  if (!filters) return report(filters.error());
  // As docker: asking for a status or an exit code looks at every container.
  all = all || filters->has("status") || filters->has("exited");
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto list = engine->containers().list();
  if (!list) return report(list.error());
  std::vector<Json> rows;
  Json json = Json::array();
  int64_t now = now_ns() / 1000000000;
  for (const ContainerRecord& r : *list) {
    ContainerState st = engine->containers().state(r.id);
    if (!all && st.status != "running" && st.status != "paused" && st.status != "restarting") continue;
    auto keep = ps_matches(*engine, *filters, r, st);
    if (!keep) return report(keep.error());
    if (!*keep) continue;
    if (quiet) {
      std::cout << (no_trunc ? r.id : r.id.substr(0, 12)) << "\n";
      continue;
    }
    if (format == "json") {
      json.push_back({{"Id", r.id}, {"Names", {r.name}}, {"Image", r.image}, {"ImageID", "sha256:" + r.image_id},
                      {"Command", r.command}, {"Created", r.created_ns / 1000000000}, {"State", st.status},
                      {"Status", status_text(st, health_suffix(engine->containers(), r))}, {"ExitCode", st.exit_code}, {"Pid", st.pid},
                      {"Isolation", isolation_text(r.isolation)}, {"Labels", r.labels}});
      continue;
    }
    rows.push_back(ps_row(engine->containers(), r, st, no_trunc, now));
  }
  if (quiet) return 0;
  if (format == "json") {
    std::cout << json.dump(2) << "\n";
    return 0;
  }
  return print_rows(rows, format, kPsColumns);
}

}  // namespace

void add_ps_command(CLI::App& parent, const char* name, Globals& g) {
  struct Args {
    std::vector<std::string> filters;
    std::string format = "table";
    bool all = false, quiet = false, no_trunc = false;
  };
  auto a = std::make_shared<Args>();
  auto* ps = parent.add_subcommand(name, "List containers");
  ps->add_flag("-a,--all", a->all, "Show all containers (default: running)");
  ps->add_flag("-q,--quiet", a->quiet, "Only IDs");
  ps->add_flag("--no-trunc", a->no_trunc, "Full IDs");
  ps->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  ps->add_option("-f,--filter", a->filters, "Filter KEY=VALUE (name, id, label, status, ancestor, network, ...)")
      ->allow_extra_args(false);
  ps->callback([&g, a] {
    g.action = [&g, a] { return cmd_ps(g, a->all, a->quiet, a->no_trunc, a->format, a->filters); };
  });
}

}  // namespace isola::cli
