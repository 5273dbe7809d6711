// isola volume create, ls, inspect, rm and prune: the volume store
// (engine/volumes.h) as docker's `docker volume` shows it.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/terminal.h"
#include "cli/filters.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "engine/container_store.h"
#include "engine/volumes.h"

namespace isola::cli {

namespace {

struct VolumeArgs {
  std::string name, positional, driver = "local", format = "table";
  std::vector<std::string> labels, opts, filters, names;
  bool quiet = false, force = false, all = false;
};

Result<std::map<std::string, std::string>> key_values(const std::vector<std::string>& items, const char* flag) {
  std::map<std::string, std::string> out;
  for (const std::string& kv : items) {
    size_t eq = kv.find('=');
    if (eq == 0) return fail(make_error(flag, kv, "the key is empty; use KEY=VALUE"));
    out[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  return out;
}

struct Stores {
  VolumeStore volumes;
  ContainerStore containers;
};

Result<Stores> open_stores(const Globals& g) {
  VolumeStore volumes = TRY(VolumeStore::open(g.root));
  ContainerStore containers = TRY(ContainerStore::open(g.root));
  return Stores{std::move(volumes), std::move(containers)};
}

int cmd_create(const Globals& g, const VolumeArgs& a) {
  if (!a.name.empty() && !a.positional.empty() && a.name != a.positional)
    return report(make_error("volume create", a.positional,
                             "conflicting options: either specify --name or provide positional arg, not both"));
  VolumeRecord rec;
  rec.name = a.name.empty() ? a.positional : a.name;
  rec.driver = a.driver;
  auto labels = key_values(a.labels, "--label");
  if (!labels) return report(labels.error());
  auto opts = key_values(a.opts, "--opt");
  if (!opts) return report(opts.error());
  // docker's local driver mounts what the options name (type=nfs, a
  // device); isola's does not yet, and a volume that silently ignored them
  // would hold the data somewhere the user did not ask for.
  if (!opts->empty())
    return report(make_error("volume create", "--opt " + opts->begin()->first,
                             "isola's local driver takes no mount options yet; create the volume without --opt, "
                             "or bind the directory with -v /host/path:/path"));
  rec.labels = *labels;
  rec.options = *opts;
  if (!rec.name.empty())
    if (auto ok = check_volume_name(rec.name); !ok) return report(ok.error());
  auto store = VolumeStore::open(g.root);
  if (!store) return report(store.error());
  auto made = store->create(rec);
  if (!made) return report(made.error());
  std::cout << made->name << "\n";
  return 0;
}

std::string labels_text(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

// One row of `volume ls` with docker's placeholders as keys (.Name,
// .Driver, ...), for the table, json and Go templates.
Json ls_row(const VolumeStore& store, const VolumeRecord& v, size_t users) {
  return {{"Name", v.name},           {"Driver", v.driver},
          {"Mountpoint", store.data_dir(v.name)}, {"Labels", labels_text(v.labels)},
          {"Scope", "local"},         {"CreatedAt", format_time_ns(v.created_ns)},
          {"Links", std::to_string(users)}};
}

// docker's volume filters: name (a part of it), label, dangling.
Result<Filters> parse_volume_filters(const std::vector<std::string>& args) {
  Filters f = TRY(Filters::parse(args, {"dangling", "label", "name"}));
  for (const std::string& v : f.values("dangling"))
    if (v != "true" && v != "1" && v != "false" && v != "0")
      return fail(make_error("--filter", "dangling=" + v, "not a boolean; use dangling=true or dangling=false"));
  return f;
}

bool matches(const Filters& f, const VolumeRecord& v, bool used) {
  return f.any("name", [&](const std::string& n) { return v.name.find(n) != std::string::npos; }) &&
         f.labels_match(v.labels) &&
         f.any("dangling", [&](const std::string& d) { return (d == "true" || d == "1") == !used; });
}

int cmd_ls(const Globals& g, const VolumeArgs& a) {
  auto filter = parse_volume_filters(a.filters);
  if (!filter) return report(filter.error());
  auto stores = open_stores(g);
  if (!stores) return report(stores.error());
  auto list = stores->volumes.list();
  if (!list) return report(list.error());
  auto users = volume_users(stores->containers);
  std::vector<Json> rows;
  for (const VolumeRecord& v : *list) {
    size_t n = users.contains(v.name) ? users[v.name].size() : 0;
    if (matches(*filter, v, n > 0)) rows.push_back(ls_row(stores->volumes, v, n));
  }
  if (a.quiet) {
    for (const Json& r : rows) std::cout << r["Name"].get<std::string>() << "\n";
    return 0;
  }
  static const std::vector<Column> columns = {
      {"Driver", "DRIVER"},          {"Name", "VOLUME NAME"},        {"Mountpoint", "MOUNTPOINT", false},
      {"Labels", "LABELS", false},   {"Scope", "SCOPE", false},      {"CreatedAt", "CREATED AT", false},
      {"Links", "LINKS", false}};
  return print_rows(rows, a.format, columns);
}

int cmd_inspect(const Globals& g, const VolumeArgs& a) {
  auto store = VolumeStore::open(g.root);
  if (!store) return report(store.error());
  Json out = Json::array();
  int code = 0;
  for (const std::string& name : a.names) {
    auto rec = store->get(name);
    if (!rec) code = report(rec.error());
    else out.push_back(volume_json(*store, *rec));
  }
  return print_inspect(out, a.format == "table" ? "" : a.format, code);
}

int cmd_rm(const Globals& g, const VolumeArgs& a) {
  auto stores = open_stores(g);
  if (!stores) return report(stores.error());
  int code = 0;
  for (const std::string& name : a.names) {
    // -f: a volume that is not there is no error (one in use still is).
    if (a.force && !stores->volumes.exists(name)) continue;
    if (auto rm = remove_unused_volume(stores->volumes, stores->containers, name); !rm) code = report(rm.error());
    else std::cout << name << "\n";
  }
  return code;
}

std::string prune_warning(bool all) {
  return all ? "WARNING! This will remove all local volumes not used by at least one container.\n"
             : "WARNING! This will remove anonymous local volumes not used by at least one container.\n";
}

int cmd_prune(const Globals& g, const VolumeArgs& a) {
  auto filter = parse_volume_filters(a.filters);
  if (!filter) return report(filter.error());
  if (!a.force) {
    auto yes = confirm_on_terminal("volume prune", prune_warning(a.all));
    if (!yes) return report(yes.error());
    if (!*yes) return 0;
  }
  auto stores = open_stores(g);
  if (!stores) return report(stores.error());
  auto list = stores->volumes.list();
  if (!list) return report(list.error());
  auto users = volume_users(stores->containers);
  std::vector<std::string> removed;
  uint64_t reclaimed = 0;
  int code = 0;
  for (const VolumeRecord& v : *list) {
    // Docker 23 on: named volumes only with --all.
    if (users.contains(v.name) || (!v.anonymous && !a.all) || !matches(*filter, v, false)) continue;
    uint64_t size = disk_usage(stores->volumes.data_dir(v.name)).value_or(0);
    if (auto rm = remove_unused_volume(stores->volumes, stores->containers, v.name); !rm) {
      code = report(rm.error());
      continue;
    }
    removed.push_back(v.name);
    reclaimed += size;
  }
  if (!removed.empty()) {
    std::cout << "Deleted Volumes:\n";
    for (const std::string& n : removed) std::cout << n << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size(reclaimed) << "\n";
  return code;
}

}  // namespace

void add_volume_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<VolumeArgs>();
  auto* volume = app.add_subcommand("volume", "Manage volumes");
  volume->require_subcommand(1);

  auto* create = volume->add_subcommand("create", "Create a volume (a random name when none is given)");
  create->add_option("VOLUME", a->positional, "Volume name");
  create->add_option("--name", a->name, "Volume name");
  create->add_option("-d,--driver", a->driver, "Volume driver (local only)");
  create->add_option("--label", a->labels, "Set a label KEY=VALUE")->allow_extra_args(false);
  create->add_option("-o,--opt", a->opts, "Driver option KEY=VALUE (recorded)")->allow_extra_args(false);
  create->callback([&g, a] { g.action = [&g, a] { return cmd_create(g, *a); }; });

  auto* ls = volume->add_subcommand("ls", "List volumes");
  ls->alias("list");
  ls->add_flag("-q,--quiet", a->quiet, "Only names");
  ls->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  ls->add_option("-f,--filter", a->filters, "name=TEXT, label=KEY[=VALUE], dangling=true|false")->allow_extra_args(false);
  ls->callback([&g, a] { g.action = [&g, a] { return cmd_ls(g, *a); }; });

  auto* inspect = volume->add_subcommand("inspect", "Show volumes as JSON");
  inspect->add_option("VOLUME", a->names, "Volumes")->required();
  inspect->add_option("-f,--format", a->format, "Go TEMPLATE for each volume");
  inspect->callback([&g, a] { g.action = [&g, a] { return cmd_inspect(g, *a); }; });

  auto* rm = volume->add_subcommand("rm", "Remove volumes no container uses");
  rm->alias("remove");
  rm->add_flag("-f,--force", a->force, "No error for volumes that do not exist");
  rm->add_option("VOLUME", a->names, "Volumes")->required();
  rm->callback([&g, a] { g.action = [&g, a] { return cmd_rm(g, *a); }; });

  auto* prune = volume->add_subcommand("prune", "Remove anonymous volumes no container uses (-a: all unused)");
  prune->add_flag("-f,--force", a->force, "Do not ask for confirmation");
  prune->add_flag("-a,--all", a->all, "Also named volumes");
  prune->add_option("--filter", a->filters, "label=KEY[=VALUE]")->allow_extra_args(false);
  prune->callback([&g, a] { g.action = [&g, a] { return cmd_prune(g, *a); }; });
}

}  // namespace isola::cli
