// isola system df and system prune: what the store holds and what can go.
// Sizes are the store's own: an image's layers as recorded when they were
// unpacked (shared layers counted once), a container's writable upper
// directory. isola has no named volumes, so there is no volume row.
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "cli/commands.h"
#include "cli/terminal.h"
#include "cli/output_format.h"
#include "registry/pull.h"
#include "cli/table.h"
#include "engine/engine.h"
#include "engine/events.h"

namespace isola::cli {

namespace {

struct ImageUsage {
  ImageRecord image;
  uint64_t shared = 0, unique = 0;  // layer bytes also in other images, and only in this one
  int containers = 0;
};

struct ContainerUsage {
  ContainerRecord record;
  std::string status;
  uint64_t size = 0;  // the upper directory
};

struct StoreUsage {
  std::vector<ImageUsage> images;
  std::vector<ContainerUsage> containers;
  uint64_t images_size = 0, images_reclaimable = 0, containers_size = 0, containers_reclaimable = 0;
  int images_active = 0, containers_active = 0;
};

bool is_active(const std::string& status) { return status == "running" || status == "paused"; }

std::set<std::string> layer_set(const ImageRecord& img) {
  std::set<std::string> out;
  for (const Digest& d : img.layers) out.insert(d.hex);
  return out;
}

Result<void> image_usage(Engine& engine, StoreUsage& u) {
  auto images = TRY(engine.images().list());
  auto sizes = TRY(engine.images().layer_sizes());
  std::map<std::string, int> users;  // image id hex -> containers
  for (const ContainerUsage& c : u.containers) ++users[c.record.image_id];
  std::map<std::string, int> holders;  // layer hex -> images with it
  for (const ImageRecord& img : images)
    for (const std::string& hex : layer_set(img)) ++holders[hex];
  std::set<std::string> active_layers;
  for (const ImageRecord& img : images) {
    ImageUsage iu{img, 0, 0, users[img.id.hex]};
    for (const std::string& hex : layer_set(img)) {
      (holders[hex] > 1 ? iu.shared : iu.unique) += sizes[hex];
      if (iu.containers > 0) active_layers.insert(hex);
    }
    if (iu.containers > 0) ++u.images_active;
    u.images.push_back(iu);
  }
  for (const auto& [hex, n] : holders) {
    u.images_size += sizes[hex];
    if (!active_layers.contains(hex)) u.images_reclaimable += sizes[hex];
  }
  return {};
}

Result<StoreUsage> store_usage(Engine& engine) {
  StoreUsage u;
  for (const ContainerRecord& r : TRY(engine.containers().list())) {
    ContainerUsage c{r, engine.containers().state(r.id).status, TRY(disk_usage(engine.containers().upper_dir(r.id)))};
    u.containers_size += c.size;
    if (is_active(c.status)) ++u.containers_active;
    else u.containers_reclaimable += c.size;
    u.containers.push_back(c);
  }
  TRYV(image_usage(engine, u));
  return u;
}

std::string percent(uint64_t part, uint64_t whole) {
  return " (" + std::to_string(whole ? part * 100 / whole : 0) + "%)";
}

Json usage_json(const StoreUsage& u) {
  Json images = Json::array(), containers = Json::array();
  for (const ImageUsage& i : u.images)
    images.push_back({{"Id", i.image.id.str()}, {"RepoTags", i.image.tags}, {"Created", i.image.created},
                      {"Size", i.shared + i.unique}, {"SharedSize", i.shared}, {"UniqueSize", i.unique},
                      {"Containers", i.containers}});
  for (const ContainerUsage& c : u.containers)
    containers.push_back({{"Id", c.record.id}, {"Name", c.record.name}, {"Image", c.record.image},
                          {"State", c.status}, {"Size", c.size}});
  return {{"Images", {{"Total", u.images.size()}, {"Active", u.images_active}, {"Size", u.images_size},
                      {"Reclaimable", u.images_reclaimable}, {"Items", images}}},
          {"Containers", {{"Total", u.containers.size()}, {"Active", u.containers_active}, {"Size", u.containers_size},
                          {"Reclaimable", u.containers_reclaimable}, {"Items", containers}}}};
}

void print_usage_detail(const StoreUsage& u) {
  Table images({"REPOSITORY", "TAG", "IMAGE ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"});
  for (const ImageUsage& i : u.images) {
    std::vector<std::string> names = i.image.tags.empty() ? std::vector<std::string>{"<none>:<none>"} : i.image.tags;
    for (const std::string& t : names) {
      size_t colon = t.rfind(':');
      images.add({t.substr(0, colon), t.substr(colon + 1), i.image.id.short_id(), human_size(i.shared + i.unique),
                  human_size(i.shared), human_size(i.unique), std::to_string(i.containers)});
    }
  }
  Table containers({"CONTAINER ID", "IMAGE", "STATUS", "SIZE", "NAMES"});
  for (const ContainerUsage& c : u.containers)
    containers.add({c.record.id.substr(0, 12), c.record.image, c.status, human_size(c.size), c.record.name});
  std::cout << "\nImages space usage:\n\n" << images.render() << "\nContainers space usage:\n\n" << containers.render();
}

int cmd_df(const Globals& g, bool verbose, const std::string& format) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto u = store_usage(*engine);
  if (!u) return report(u.error());
  if (format == "json") {
    std::cout << usage_json(*u).dump(2) << "\n";
    return 0;
  }
  std::vector<Json> rows = {
      {{"Type", "Images"}, {"TotalCount", std::to_string(u->images.size())},
       {"Active", std::to_string(u->images_active)}, {"Size", human_size(u->images_size)},
       {"Reclaimable", human_size(u->images_reclaimable) + percent(u->images_reclaimable, u->images_size)}},
      {{"Type", "Containers"}, {"TotalCount", std::to_string(u->containers.size())},
       {"Active", std::to_string(u->containers_active)}, {"Size", human_size(u->containers_size)},
       {"Reclaimable", human_size(u->containers_reclaimable) + percent(u->containers_reclaimable, u->containers_size)}}};
  static const std::vector<Column> columns = {
      {"Type", "TYPE"}, {"TotalCount", "TOTAL"}, {"Active", "ACTIVE"}, {"Size", "SIZE"}, {"Reclaimable", "RECLAIMABLE"}};
  if (int code = print_rows(rows, format, columns); code != 0) return code;
  if (verbose && format == "table") print_usage_detail(*u);
  return 0;
}

std::string system_prune_warning(bool all) {
  return std::string("WARNING! This will remove:\n") + "  - all stopped containers\n" +
         "  - all networks not used by at least one container\n" +
         (all ? "  - all images without at least one container associated to them\n" : "  - all dangling images\n") +
         "  - partial downloads of interrupted pulls\n";
}

std::string image_prune_warning(bool all) {
  return all ? "WARNING! This will remove all images without at least one container associated to them.\n"
             : "WARNING! This will remove all dangling images.\n";
}

Result<uint64_t> layer_bytes(Engine& engine) {
  uint64_t total = 0;
  for (const auto& [hex, size] : TRY(engine.images().layer_sizes())) total += size;
  return total;
}

void print_section(const char* title, const std::vector<std::string>& lines) {
  if (lines.empty()) return;
  std::cout << title << ":\n";
  for (const std::string& l : lines) std::cout << l << "\n";
  std::cout << "\n";
}

// Stopped containers; returns the bytes their upper directories held.
uint64_t prune_containers(Engine& engine, int& code) {
  std::map<std::string, uint64_t> sizes;
  if (auto list = engine.containers().list(); list)
    for (const ContainerRecord& r : *list) sizes[r.id] = disk_usage(engine.containers().upper_dir(r.id)).value_or(0);
  ContainerPrune pruned = engine.prune_containers();
  std::vector<std::string> lines;
  uint64_t bytes = 0;
  for (const ContainerRecord& r : pruned.removed) {
    lines.push_back(r.id);
    bytes += sizes[r.id];
  }
  for (const Error& e : pruned.errors) code = report(e);
  print_section("Deleted Containers", lines);
  return bytes;
}

// Networks no container holds an address on, but the default one.
void prune_networks(Engine& engine, int& code) {
  auto list = engine.networks().list();
  if (!list) {
    code = report(list.error());
    return;
  }
  std::vector<std::string> lines;
  for (const NetworkConfig& n : *list) {
    auto leases = engine.networks().leases(n);
    if (n.name == kDefaultNetwork || !leases || !leases->empty()) continue;
    if (auto r = engine.networks().remove(n); !r) code = report(r.error());
    else lines.push_back(n.name);
  }
  print_section("Deleted Networks", lines);
}

// Untagged images no container uses; with `all`, every image none uses.
// By tag, so removing a tag never takes an image a container has.
void prune_images(Engine& engine, bool all, int& code) {
  auto images = engine.images().list();
  auto in_use = engine.images().images_in_use();
  if (!images || !in_use) {
    code = report(!images ? images.error() : in_use.error());
    return;
  }
  std::vector<std::string> lines;
  for (const ImageRecord& img : *images) {
    if (std::find(in_use->begin(), in_use->end(), img.id) != in_use->end()) continue;
    if (!all && !img.tags.empty()) continue;
    std::vector<std::string> refs = img.tags.empty() ? std::vector<std::string>{img.id.hex} : img.tags;
    for (const std::string& ref : refs) {
      auto r = engine.images().remove(ref, false);
      if (!r) {
        code = report(r.error());
        break;
      }
      for (const std::string& t : r->untagged) {
        lines.push_back("untagged: " + t);
        record_named_event(engine.images().root(), "image", "untag", img.id.str(), t);
      }
      for (const Digest& d : r->deleted) {
        lines.push_back("deleted: " + d.str());
        record_named_event(engine.images().root(), "image", "delete", d.str(), d.str());
      }
    }
  }
  print_section("Deleted Images", lines);
}

// Partial layer downloads that interrupted pulls left for a resume.
uint64_t prune_partial_downloads(const Globals& g, int& code) {
  auto pruned = prune_downloads(g.root);
  if (!pruned) {
    code = report(pruned.error());
    return 0;
  }
  print_section("Deleted Partial Downloads", pruned->first);
  return pruned->second;
}

// Asks first (unless forced), runs `prune` and prints the space reclaimed:
// the image layers that went, plus the bytes `prune` counts itself.
int prune_and_report(const Globals& g, bool force, const std::string& command, const std::string& warning,
                     const std::function<uint64_t(Engine&, int&)>& prune) {
  if (!force) {
    auto yes = confirm_on_terminal(command, warning);
    if (!yes) return report(yes.error());
    if (!*yes) return 0;
  }
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto before = layer_bytes(*engine);
  if (!before) return report(before.error());
  int code = 0;
  uint64_t reclaimed = prune(*engine, code);
  auto after = layer_bytes(*engine);
  if (after && *after < *before) reclaimed += *before - *after;
  std::cout << "Total reclaimed space: " << human_size(reclaimed) << "\n";
  return code;
}

int cmd_prune(const Globals& g, bool all, bool force) {
  return prune_and_report(g, force, "system prune", system_prune_warning(all), [&](Engine& engine, int& code) {
    uint64_t bytes = prune_containers(engine, code);
    prune_networks(engine, code);
    prune_images(engine, all, code);
    return bytes + prune_partial_downloads(g, code);
  });
}

int cmd_image_prune(const Globals& g, bool all, bool force) {
  return prune_and_report(g, force, "image prune", image_prune_warning(all), [&](Engine& engine, int& code) {
    prune_images(engine, all, code);
    return uint64_t{0};
  });
}

}  // namespace

Result<StoreSummary> store_summary(const std::string& root) {
  auto engine = TRY(Engine::open(root));
  StoreUsage u = TRY(store_usage(engine));
  return StoreSummary{u.images.size(), u.containers.size(), static_cast<size_t>(u.containers_active),
                      u.images_size + u.containers_size};
}

void add_system_commands(CLI::App& app, Globals& g) {
  struct Args {
    bool verbose = false, all = false, force = false;
    std::string format = "table";
  };
  auto a = std::make_shared<Args>();
  auto* system = app.add_subcommand("system", "Manage isola's store (disk usage, pruning) and VM templates");
  system->require_subcommand(1);
  auto* df = system->add_subcommand("df", "Show the disk space images and containers use");
  df->add_flag("-v,--verbose", a->verbose, "Show the usage of each image and container");
  df->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  df->callback([&g, a] { g.action = [&g, a] { return cmd_df(g, a->verbose, a->format); }; });
  auto* prune = system->add_subcommand("prune", "Remove stopped containers, unused networks, dangling images and partial downloads");
  prune->add_flag("-a,--all", a->all, "Remove every image no container uses, not only untagged ones");
  prune->add_flag("-f,--force", a->force, "Do not ask for confirmation");
  prune->callback([&g, a] { g.action = [&g, a] { return cmd_prune(g, a->all, a->force); }; });
  add_template_commands(*system, g);

  // After add_image_commands, which makes the `image` group.
  auto* image_prune = app.get_subcommand("image")->add_subcommand("prune", "Remove dangling images (-a: every unused image)");
  image_prune->add_flag("-a,--all", a->all, "Remove every image no container uses, not only untagged ones");
  image_prune->add_flag("-f,--force", a->force, "Do not ask for confirmation");
  image_prune->callback([&g, a] { g.action = [&g, a] { return cmd_image_prune(g, a->all, a->force); }; });
}

}  // namespace isola::cli
