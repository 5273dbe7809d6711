// Commands that manage existing containers: inspect, logs, top, stats,
// stop, kill, restart, rm, wait, pause, unpause, rename, container prune
// (ps: ps_command.cc).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "cli/command_tree.h"
#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/health.h"
#include "engine/networking.h"
#include "engine/volumes.h"
#include "vm/jail.h"
#include "monitor/client.h"

namespace isola::cli {

namespace {

// Runs a function per container reference, printing the reference on success.
template <class F>
int for_each_ref(const Globals& g, const std::vector<std::string>& refs, F&& fn) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  int code = 0;
  for (const std::string& ref : refs) {
    auto rec = engine->containers().resolve(ref);
    if (!rec) {
      code = report(rec.error());
      continue;
    }
    Result<void> r = fn(*engine, *rec);
    if (!r) code = report(r.error());
    else std::cout << ref << "\n";
  }
  return code;
}

// "2026-12-07 05:22:33 +0000 UTC", docker's .CreatedAt.

Json container_json(Engine& engine, const ContainerRecord& r) {
  ContainerStore& cs = engine.containers();
  ContainerState st = cs.state(r.id);
  Json mounts = Json::array();
  if (auto recorded = r.options.find("Mounts"); recorded != r.options.end() && recorded->is_array()) {
    for (Json m : *recorded) {
      m.erase("Anonymous");  // isola's own, for rm -v
      mounts.push_back(m);
    }
  } else if (auto vols = r.options.find("Volumes"); vols != r.options.end() && vols->is_array())
    for (const Json& v : *vols) {
      std::string s = v.get<std::string>();
      std::vector<std::string> parts;
      std::stringstream ss(s);
      for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
      if (parts.size() >= 2)
        mounts.push_back({{"Type", "bind"}, {"Source", parts[0]}, {"Destination", parts[1]},
                          {"RW", !(parts.size() == 3 && parts[2] == "ro")}});
    }
  Json args = Json::array();
  for (size_t i = 1; i < r.command.size(); ++i) args.push_back(r.command[i]);
  Json config = {{"Image", r.image}, {"Cmd", r.options.value("Cmd", Json::array())},
                 {"Env", r.options.value("Env", Json::array())}, {"WorkingDir", r.options.value("WorkingDir", "")},
                 {"User", r.options.value("User", "")}, {"Tty", r.tty}, {"OpenStdin", r.interactive},
                 {"Labels", r.labels}, {"StopSignal", r.stop_signal}};
  if (auto t = r.options.find("StopTimeout"); t != r.options.end()) config["StopTimeout"] = *t;
  if (auto h = r.options.find("Healthcheck"); h != r.options.end() && h->is_object()) config["Healthcheck"] = *h;
  if (auto spec_text = read_file(cs.spec_path(r.id)); spec_text)
    if (auto spec = parse_json(*spec_text, "config.json"); spec) {
      config["Hostname"] = spec->value("hostname", "");
      if (auto p = spec->find("process"); p != spec->end()) {
        config["Env"] = p->value("env", Json::array());
        config["WorkingDir"] = p->value("cwd", "/");
      }
    }
  Json out = {{"Id", r.id},
          {"Name", "/" + r.name},
          {"Created", format_time_ns(r.created_ns)},
          {"Path", r.command.empty() ? "" : r.command[0]},
          {"Args", args},
          {"State",
           {{"Status", st.status},
            // Running too while restarting, as docker shows it (Pid 0).
            {"Running", st.status == "running" || st.status == "paused" || st.status == "restarting"},
            {"Paused", st.status == "paused"},
            {"Restarting", st.status == "restarting"},
            {"OOMKilled", st.oom_killed},
            {"Dead", false},
            {"Pid", (st.status == "running" || st.status == "paused") ? st.pid : 0},
            {"MonitorPid", (st.status == "running" || st.status == "paused") ? st.monitor_pid : 0},
            {"ExitCode", st.exit_code},
            {"Error", st.error},
            {"StartedAt", format_time_ns(st.started_ns)},
            {"FinishedAt", format_time_ns(st.finished_ns)}}},
          {"RestartCount", st.restart_count},
          {"Image", "sha256:" + r.image_id},
          {"Platform", "linux"},
          {"Driver", "overlay"},
          {"Isolation", isolation_text(r.isolation)},
          {"VM", r.isolation != Isolation::vm ? Json(nullptr)
                                              : Json{{"WorkerPid", (st.status == "running") ? st.pid : 0},
                                                     {"WorkerName", "isola-vm-" + r.id.substr(0, 6)},
                                                     {"Accelerator", st.accelerator},
                                                     {"GuestKernel", st.guest_kernel},
                                                     {"BootMs", st.boot_ms},
                                                     {"StartMs", st.exec_ms},
                                                     {"Boot", st.boot},
                                                     {"BootReason", st.boot_reason},
                                                     {"Template", st.template_key},
                                                     {"Phases", st.boot_phases},
                                                     {"Worker", worker_confinement(st.status == "running" ? st.pid : 0)}}},
          {"LogPath", cs.log_path(r.id)},
          {"Config", config},
          {"HostConfig", r.options},
          {"Mounts", mounts},
          {"NetworkSettings", network_settings_json(load_container_network(cs, r.id).value_or(ContainerNetwork{}))},
          {"GraphDriver",
           {{"Name", "overlay"},
            {"Data", {{"MergedDir", cs.rootfs_dir(r.id)}, {"UpperDir", cs.upper_dir(r.id)}, {"WorkDir", cs.work_dir(r.id)}}}}}};
  if (health_config_of(r)) out["State"]["Health"] = read_health(cs, r.id).value_or(HealthState{}).to_json();
  return out;
}

int cmd_inspect(const Globals& g, const std::vector<std::string>& refs, const std::string& format) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  Json out = Json::array();
  int code = 0;
  for (const std::string& ref : refs) {
    if (auto rec = engine->containers().resolve(ref); rec) {
      out.push_back(container_json(*engine, *rec));
      continue;
    }
    if (auto image = engine->images().resolve(ref); image) {
      out.push_back(image_inspect_json(engine->images(), *image));
      continue;
    }
    code = report(make_error("inspect", ref, "no such container or image"));
  }
  return print_inspect(out, format, code);
}

struct LogEntry {
  std::string stream, text, time;
};

// Prints whole lines of the log file from `offset`; returns the new offset.
size_t print_log(const std::string& path, size_t offset, bool timestamps, std::vector<LogEntry>* collect) {
  auto text = read_file(path, 1u << 30);
  if (!text || text->size() <= offset) return offset;
  size_t pos = offset;
  while (pos < text->size()) {
    size_t nl = text->find('\n', pos);
    if (nl == std::string::npos) break;  // a line still being written
    auto j = parse_json(std::string_view(*text).substr(pos, nl - pos), "log line");
    pos = nl + 1;
    if (!j) continue;
    LogEntry e{json_string_or(*j, "stream"), json_string_or(*j, "log"), json_string_or(*j, "time")};
    if (collect) {
      collect->push_back(std::move(e));
      continue;
    }
    std::string out = (timestamps ? e.time + " " : "") + e.text;
    (e.stream == "stderr" ? std::cerr : std::cout) << out << std::flush;
  }
  return pos;
}

int cmd_logs(const Globals& g, const std::string& ref, bool follow, int tail, bool timestamps) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(ref);
  if (!rec) return report(rec.error());
  std::string path = engine->containers().log_path(rec->id);
  std::vector<LogEntry> entries;
  size_t offset = print_log(path, 0, timestamps, &entries);
  size_t first = (tail >= 0 && static_cast<size_t>(tail) < entries.size()) ? entries.size() - tail : 0;
  for (size_t i = first; i < entries.size(); ++i) {
    std::string out = (timestamps ? entries[i].time + " " : "") + entries[i].text;
    (entries[i].stream == "stderr" ? std::cerr : std::cout) << out;
  }
  std::cout << std::flush;
  while (follow) {
    ContainerState st = engine->containers().state(rec->id);
    bool running = st.status == "running" || st.status == "paused";
    offset = print_log(path, offset, timestamps, nullptr);
    if (!running || !path_exists(engine->containers().dir(rec->id))) {
      print_log(path, offset, timestamps, nullptr);
      break;
    }
    ::usleep(100000);
  }
  return 0;
}

// A VM's processes are the guest's: the agent lists them (guest PIDs).
int top_in_vm(Engine& engine, const ContainerRecord& rec) {
  ContainerState st = engine.containers().state(rec.id);
  if (st.status == "paused")
    return report(make_error("top", rec.name, "its VM is frozen while the container is paused; unpause it first"));
  if (st.status != "running") return report(make_error("top", rec.name, "the container is not running"));
  auto reply = monitor_call(ContainerStore::socket_path(rec.id), {{"op", "ps"}});
  if (!reply) return report(reply.error());
  std::vector<std::string> titles;
  for (const Json& t : reply->value("titles", Json::array()))
    if (t.is_string()) titles.push_back(t.get<std::string>());
  if (titles.empty()) return report(make_error("top", rec.name, json_string_or(*reply, "error", "no answer from the guest")));
  Table table(titles);
  for (const Json& row : reply->value("processes", Json::array())) {
    std::vector<std::string> cells;
    if (!row.is_array()) continue;
    for (const Json& cell : row) cells.push_back(cell.is_string() ? cell.get<std::string>() : cell.dump());
    table.add(cells);
  }
  std::cout << table.render();
  return 0;
}

int cmd_top(const Globals& g, const std::string& ref, const std::vector<std::string>& ps_args) {
  if (ref.empty()) return report(make_error("top", "", "usage: isola top CONTAINER [ps OPTIONS]"));
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(ref);
  if (!rec) return report(rec.error());
  if (rec->isolation == Isolation::vm) return top_in_vm(*engine, *rec);
  auto pids = engine->pids(*rec);
  if (!pids) return report(pids.error());
  std::set<pid_t> wanted(pids->begin(), pids->end());

  // The host's ps, filtered to the container's processes (as docker does).
  std::vector<std::string> args = {"ps"};
  if (ps_args.empty()) args.push_back("-ef");
  else args.insert(args.end(), ps_args.begin(), ps_args.end());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return report(sys_error("pipe"));
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(p[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("ps", argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  auto out = read_fd(p[0], "ps output");
  ::close(p[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!out || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return report(make_error("top", ref, "ps failed; check the ps options"));
  std::istringstream lines(*out);
  std::string header;
  std::getline(lines, header);
  std::istringstream hs(header);
  int pid_col = -1, col = 0;
  for (std::string h; hs >> h; ++col)
    if (h == "PID") pid_col = col;
  if (pid_col < 0) return report(make_error("top", ref, "ps output has no PID column; include pid in the options"));
  std::cout << header << "\n";
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ls(line);
    std::string field;
    for (int i = 0; i <= pid_col && ls >> field; ++i) {
    }
    if (!field.empty() && field.find_first_not_of("0123456789") == std::string::npos &&
        wanted.contains(static_cast<pid_t>(std::stol(field))))
      std::cout << line << "\n";
  }
  return 0;
}

int cmd_stats(const Globals& g, std::vector<std::string> refs, const std::string& format) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  std::vector<ContainerRecord> recs;
  if (refs.empty()) {
    auto list = engine->containers().list();
    if (!list) return report(list.error());
    for (const auto& r : *list)
      if (engine->containers().state(r.id).status == "running") recs.push_back(r);
  } else {
    for (const std::string& ref : refs) {
      auto r = engine->containers().resolve(ref);
      if (!r) return report(r.error());
      recs.push_back(*r);
    }
  }
  std::vector<CgroupStats> before(recs.size());
  for (size_t i = 0; i < recs.size(); ++i) before[i] = engine->usage(recs[i]);
  constexpr int64_t kSampleNs = 500000000;
  ::usleep(kSampleNs / 1000);
  std::vector<Json> rows;
  Json json = Json::array();
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  for (size_t i = 0; i < recs.size(); ++i) {
    CgroupStats now = engine->usage(recs[i]);
    double cpu = 100.0 * static_cast<double>(now.cpu_usage_ns - std::min(now.cpu_usage_ns, before[i].cpu_usage_ns)) /
                 static_cast<double>(kSampleNs);
    uint64_t limit = now.memory_limit ? now.memory_limit : static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
                                                                static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    double mem_pct = limit ? 100.0 * static_cast<double>(now.memory_usage) / static_cast<double>(limit) : 0;
    char cpu_s[32], mem_s[32];
    std::snprintf(cpu_s, sizeof cpu_s, "%.2f%%", cpu);
    std::snprintf(mem_s, sizeof mem_s, "%.2f%%", mem_pct);
    rows.push_back({{"Container", refs.empty() ? recs[i].id.substr(0, 12) : refs[i]}, {"ID", recs[i].id.substr(0, 12)},
                    {"Name", recs[i].name}, {"CPUPerc", cpu_s},
                    {"MemUsage", human_size(now.memory_usage) + " / " + human_size(limit)}, {"MemPerc", mem_s},
                    {"NetIO", "--"}, {"BlockIO", "--"}, {"PIDs", std::to_string(now.pids_current)}});
    json.push_back({{"ID", recs[i].id}, {"Name", recs[i].name}, {"CPUPerc", cpu}, {"MemUsage", now.memory_usage},
                    {"MemLimit", limit}, {"MemPerc", mem_pct}, {"PIDs", now.pids_current}, {"OnlineCPUs", cpus}});
  }
  if (format == "json") {
    std::cout << json.dump(2) << "\n";
    return 0;
  }
  static const std::vector<Column> columns = {
      {"ID", "CONTAINER ID"}, {"Name", "NAME"}, {"CPUPerc", "CPU %"}, {"MemUsage", "MEM USAGE / LIMIT"},
      {"MemPerc", "MEM %"}, {"NetIO", "NET I/O", false}, {"BlockIO", "BLOCK I/O", false}, {"PIDs", "PIDS"},
      {"Container", "CONTAINER", false}};
  return print_rows(rows, format, columns);
}

int cmd_wait(const Globals& g, const std::vector<std::string>& refs) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  int code = 0;
  for (const std::string& ref : refs) {
    auto rec = engine->containers().resolve(ref);
    if (!rec) {
      code = report(rec.error());
      continue;
    }
    auto exit_code = engine->wait(*rec);
    if (!exit_code) code = report(exit_code.error());
    else std::cout << *exit_code << "\n";
  }
  return code;
}

int cmd_prune(const Globals& g) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  ContainerPrune pruned = engine->prune_containers();
  std::cout << "Deleted Containers:\n";
  for (const ContainerRecord& r : pruned.removed) std::cout << r.id << "\n";
  int code = 0;
  for (const Error& e : pruned.errors) code = report(e);
  return code;
}

// The commands docker has both as `docker X` and `docker container X`;
// registered once under each parent.
void add_container_verbs(CLI::App& app, Globals& g) {
  struct Args {
    std::vector<std::string> refs, ps_args, filters;
    std::string ref, name, format = "table", inspect_format, signal = "KILL";
    bool all = false, quiet = false, no_trunc = false, force = false, volumes = false, follow = false,
         timestamps = false, no_stream = false;
    int tail = -1;
    std::optional<int> timeout;  // -t; else the container's --stop-timeout
  };
  auto a = std::make_shared<Args>();

  auto* inspect = app.add_subcommand("inspect", "Show containers or images as JSON");
  inspect->add_option("-f,--format", a->inspect_format, "Print each object through a Go template, e.g. '{{.State.Pid}}'");
  inspect->add_option("NAME", a->refs)->required();
  inspect->callback([&g, a] { g.action = [&g, a] { return cmd_inspect(g, a->refs, a->inspect_format); }; });

  auto* logs = app.add_subcommand("logs", "Show a container's output");
  logs->add_flag("-f,--follow", a->follow, "Follow the output until the container exits");
  logs->add_option("-n,--tail", a->tail, "Only the last N lines");
  logs->add_flag("-t,--timestamps", a->timestamps, "Show timestamps");
  logs->add_option("CONTAINER", a->ref)->required();
  logs->callback([&g, a] { g.action = [&g, a] { return cmd_logs(g, a->ref, a->follow, a->tail, a->timestamps); }; });

  auto* top = app.add_subcommand("top", "Show a container's processes (host PIDs)");
  top->prefix_command();
  set_operands(*top, "CONTAINER [PS_OPTION...]");
  top->callback([&g, a, top] {
    std::vector<std::string> rest = top->remaining();
    if (!rest.empty()) {
      a->ref = rest[0];
      a->ps_args.assign(rest.begin() + 1, rest.end());
    }
    g.action = [&g, a] { return cmd_top(g, a->ref, a->ps_args); }; });

  auto* stats = app.add_subcommand("stats", "Show containers' resource usage");
  stats->add_flag("--no-stream", a->no_stream, "One sample, then exit (the only mode)");
  stats->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  stats->add_option("CONTAINER", a->refs);
  stats->callback([&g, a] { g.action = [&g, a] { return cmd_stats(g, a->refs, a->format); }; });

  auto* stop = app.add_subcommand("stop", "Stop containers: stop signal, then SIGKILL after a timeout");
  stop->add_option("-t,--time", a->timeout, "Seconds to wait before killing (default: the container's, 10)");
  stop->add_option("CONTAINER", a->refs)->required();
  stop->callback([&g, a] {
    g.action = [&g, a] {
      return for_each_ref(g, a->refs, [&](Engine& e, const ContainerRecord& r) {
        return e.stop(r, a->timeout.value_or(stop_timeout_of(r)));
      });
    };
  });

  auto* restart = app.add_subcommand("restart", "Stop and start containers");
  restart->add_option("-t,--time", a->timeout, "Seconds to wait before killing (default: the container's, 10)");
  restart->add_option("CONTAINER", a->refs)->required();
  restart->callback([&g, a] {
    g.action = [&g, a] {
      return for_each_ref(g, a->refs, [&](Engine& e, const ContainerRecord& r) -> Result<void> {
        TRYV(e.stop(r, a->timeout.value_or(stop_timeout_of(r))));
        TRY(e.start(r, false));
        return {};
      });
    };
  });

  auto* kill = app.add_subcommand("kill", "Send a signal to containers");
  kill->add_option("-s,--signal", a->signal, "Signal (default KILL)");
  kill->add_option("CONTAINER", a->refs)->required();
  kill->callback([&g, a] {
    g.action = [&g, a] {
      auto sig = parse_signal(a->signal);
      if (!sig) return report(sig.error());
      return for_each_ref(g, a->refs, [&](Engine& e, const ContainerRecord& r) { return e.kill(r, *sig); });
    };
  });

  auto* rm = app.add_subcommand("rm", "Remove containers");
  rm->add_flag("-f,--force", a->force, "Kill a running container first");
  rm->add_flag("-v,--volumes", a->volumes, "Remove the container's anonymous volumes");
  rm->add_option("CONTAINER", a->refs)->required();
  rm->callback([&g, a] {
    g.action = [&g, a] {
      return for_each_ref(g, a->refs, [&](Engine& e, const ContainerRecord& r) -> Result<void> {
        TRYV(e.remove(r, a->force));
        if (a->volumes) remove_anonymous_volumes(e.containers().root(), r);
        return {};
      });
    };
  });

  auto* wait = app.add_subcommand("wait", "Wait for containers to exit and print their exit codes");
  wait->add_option("CONTAINER", a->refs)->required();
  wait->callback([&g, a] { g.action = [&g, a] { return cmd_wait(g, a->refs); }; });

  for (bool paused : {true, false}) {
    auto* cmd = app.add_subcommand(paused ? "pause" : "unpause", paused ? "Freeze containers" : "Thaw containers");
    cmd->add_option("CONTAINER", a->refs)->required();
    cmd->callback([&g, a, paused] {
      g.action = [&g, a, paused] {
        return for_each_ref(g, a->refs, [&](Engine& e, const ContainerRecord& r) { return e.pause(r, paused); });
      };
    });
  }

  auto* rename = app.add_subcommand("rename", "Rename a container");
  rename->add_option("CONTAINER", a->ref)->required();
  rename->add_option("NEW_NAME", a->name)->required();
  rename->callback([&g, a] {
    g.action = [&g, a] {
      auto engine = Engine::open(g.root);
      if (!engine) return report(engine.error());
      auto before = engine->containers().resolve(a->ref);
      if (!before) return report(before.error());
      if (auto r = engine->containers().rename(before->id, a->name); !r) return report(r.error());
      ContainerRecord renamed = *before;
      renamed.name = a->name;
      record_container_event(g.root, renamed, "rename", {{"oldName", "/" + before->name}});
      return 0;
    };
  });

}

}  // namespace

void add_container_commands(CLI::App& app, Globals& g) {
  add_ps_command(app, "ps", g);
  add_container_verbs(app, g);
  auto* container = app.add_subcommand("container", "Manage containers");
  container->require_subcommand(1);
  add_ps_command(*container, "ls", g);
  add_container_verbs(*container, g);
  add_run_commands(*container, g);
  auto* prune = container->add_subcommand("prune", "Remove all stopped containers");
  auto force = std::make_shared<bool>(false);
  prune->add_flag("-f,--force", *force, "Do not ask (isola never asks)");
  prune->callback([&g, force] { g.action = [&g] { return cmd_prune(g); }; });
}

}  // namespace isola::cli
