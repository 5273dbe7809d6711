// isola system template: the VM templates this host keeps (vm/template.h).
// `build` makes the template for the VM shape a container with the given
// flags gets, by running such a container once: the template comes out of
// the very start path every VM container takes.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/table.h"
#include "common/fs.h"
#include "engine/container_store.h"
#include "engine/engine.h"
#include "engine/spec_builder.h"
#include "vm/template.h"

namespace isola::cli {

namespace {

Json template_json(const TemplateInfo& t) {
  return Json{{"Key", t.key},
              {"Created", format_time_ns(t.created_ns)},
              {"MemoryMb", t.memory_mb},
              {"Cpus", t.shape.value("cpus", 0)},
              {"Shares", t.shape.value("shares", Json::array())},
              {"Nic", t.shape.value("nic", false)},
              {"Accelerator", t.shape.value("accel", "")},
              {"GuestKernel", t.shape.value("kernel", "")},
              {"SizeBytes", t.disk_bytes},
              {"Path", t.dir}};
}

int cmd_ls(const std::string& format) {
  auto all = list_templates();
  if (!all) return report(all.error());
  if (format == "json") {
    Json out = Json::array();
    for (const TemplateInfo& t : *all) out.push_back(template_json(t));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  Table table({"KEY", "MEMORY", "CPUS", "SHARES", "NIC", "CREATED", "SIZE"});
  int64_t now = now_ns() / 1000000000;
  for (const TemplateInfo& t : *all) {
    std::string shares;
    for (const Json& s : t.shape.value("shares", Json::array())) shares += (shares.empty() ? "" : ",") + s.get<std::string>();
    table.add({t.key.substr(0, 12), std::to_string(t.memory_mb) + "MiB", std::to_string(t.shape.value("cpus", 0)),
               shares, t.shape.value("nic", false) ? "yes" : "no", human_ago(t.created_ns / 1000000000, now),
               human_size(t.disk_bytes)});
  }
  std::cout << table.render();
  if (std::string off = templates_off_reason(); !off.empty()) std::cerr << "note: " << off << "\n";
  return 0;
}

struct BuildArgs {
  std::string image = "busybox", memory, network = "bridge";
  double cpus = 0;
};

int cmd_build(const Globals& g, const BuildArgs& a) {
  if (std::string off = templates_off_reason(); !off.empty())
    return report(make_error("build a VM template", "", off + "; 'isola system template enable' turns them on"));
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  RunOptions o;
  o.image = a.image;
  o.command = {"true"};
  o.isolation = Isolation::vm;
  o.network = a.network;
  if (!a.memory.empty()) {
    auto m = parse_size(a.memory);
    if (!m) return report(m.error());
    o.memory = *m;
  }
  if (a.cpus > 0) o.cpus = a.cpus;
  auto rec = engine->create(o);
  if (!rec) return report(rec.error());
  auto ran = [&]() -> Result<ContainerState> {
    TRY(engine->start(*rec, false));
    TRY(engine->wait(*rec));
    return engine->containers().state(rec->id);
  }();
  (void)engine->remove(*rec, true);
  if (!ran) return report(ran.error());
  if (ran->boot == "template") {
    std::cout << ran->template_key << " (already there)\n";
    return 0;
  }
  if (ran->template_key.empty() || !find_template(ran->template_key))
    return report(make_error("build a VM template", a.image, "the VM booted but left no template (" + ran->boot_reason +
                                                                "); see the warnings above"));
  std::cout << ran->template_key << "\n";
  return 0;
}

int cmd_rm(const std::vector<std::string>& keys, bool all) {
  std::vector<std::string> doomed = keys;
  if (all) {
    auto list = list_templates();
    if (!list) return report(list.error());
    for (const TemplateInfo& t : *list) doomed.push_back(t.key);
  } else if (keys.empty()) {
    return report(make_error("remove template", "", "name a template (isola system template ls) or use --all"));
  }
  int code = 0;
  for (const std::string& k : doomed) {
    if (auto r = remove_template(k); !r) code = report(r.error());
    else std::cout << k << "\n";
  }
  return code;
}

}  // namespace

void add_template_commands(CLI::App& system, Globals& g) {
  auto* tpl = system.add_subcommand("template", "Manage VM templates: booted guests that VM containers are cloned from");
  tpl->require_subcommand(1);
  auto format = std::make_shared<std::string>("table");
  auto* ls = tpl->add_subcommand("ls", "List the VM templates on this host");
  ls->add_option("--format", *format, "Output format: table or json");
  ls->callback([&g, format] { g.action = [format] { return cmd_ls(*format); }; });

  auto b = std::make_shared<BuildArgs>();
  auto* build = tpl->add_subcommand("build", "Make the template for the VM a container with these flags gets");
  build->add_option("--image", b->image, "The image the VM is made with (any: the template holds no image)");
  build->add_option("-m,--memory", b->memory, "As for isola run");
  build->add_option("--cpus", b->cpus, "As for isola run");
  build->add_option("--network", b->network, "As for isola run: a network gives the VM a NIC, none does not");
  build->callback([&g, b] { g.action = [&g, b] { return cmd_build(g, *b); }; });

  auto keys = std::make_shared<std::vector<std::string>>();
  auto all = std::make_shared<bool>(false);
  auto* rm = tpl->add_subcommand("rm", "Remove VM templates (running clones are not affected)");
  rm->add_option("KEY", *keys, "Template keys or unique prefixes");
  rm->add_flag("-a,--all", *all, "Remove every template");
  rm->callback([&g, keys, all] { g.action = [keys, all] { return cmd_rm(*keys, *all); }; });

  auto* enable = tpl->add_subcommand("enable", "Start VM containers from templates on this host (the default)");
  enable->callback([&g] {
    g.action = [] {
      auto r = set_templates_enabled(true);
      return r ? 0 : report(r.error());
    };
  });
  auto* disable = tpl->add_subcommand("disable", "Boot every VM container cold on this host");
  disable->callback([&g] {
    g.action = [] {
      auto r = set_templates_enabled(false);
      return r ? 0 : report(r.error());
    };
  });
}

}  // namespace isola::cli
