// isola info: what this host offers: the store and what it holds, cgroups,
// and whether VM isolation is available, with which accelerator and guest
// kernel.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "common/fs.h"
#include "runtime/cgroup.h"
#include "engine/container_store.h"
#include "vm/guest.h"
#include "vm/template.h"

namespace isola::cli {

namespace {

bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

void print_storage(const Json& s) {
  if (s.contains("Error")) {
    std::cout << "Storage:          " << s["Error"].get<std::string>() << "\n";
    return;
  }
  std::cout << "Images:           " << s["Images"].get<size_t>() << "\n"
            << "Containers:       " << s["Containers"].get<size_t>() << " (running " << s["Running"].get<size_t>()
            << ")\n"
            << "Store size:       " << human_size(s["Size"].get<uint64_t>()) << "\n";
}

Json storage_json(const Globals& g) {
  auto s = store_summary(g.root);
  if (!s) return {{"Error", s.error().message()}};
  return {{"Images", s->images}, {"Containers", s->containers}, {"Running", s->running}, {"Size", s->size}};
}

// The VM templates: whether VM starts use them, and each one's shape, age
// and size.
Json templates_json() {
  std::string off = templates_off_reason();
  Json list = Json::array();
  auto all = list_templates();
  int64_t now = now_ns();
  if (all)
    for (const TemplateInfo& t : *all)
      list.push_back({{"Key", t.key},
                      {"MemoryMb", t.memory_mb},
                      {"Cpus", t.shape.value("cpus", 0)},
                      {"Nic", t.shape.value("nic", false)},
                      {"AgeSeconds", (now - t.created_ns) / 1000000000},
                      {"SizeBytes", t.disk_bytes}});
  return {{"Enabled", off.empty()}, {"Reason", off}, {"Dir", templates_dir()}, {"Ready", list}};
}

void print_templates(const Json& t) {
  std::cout << "  Templates:      ";
  if (!t["Enabled"].get<bool>()) {
    std::cout << "off: " << t["Reason"].get<std::string>() << "\n";
    return;
  }
  if (t["Ready"].empty()) {
    std::cout << "none ready (the next VM start boots cold and makes one)\n";
    return;
  }
  std::cout << t["Ready"].size() << " ready in " << t["Dir"].get<std::string>() << "\n";
  for (const Json& r : t["Ready"])
    std::cout << "    " << r["Key"].get<std::string>().substr(0, 12) << ": " << r["MemoryMb"].get<uint64_t>()
              << " MiB, " << r["Cpus"].get<int>() << " vCPU, " << (r["Nic"].get<bool>() ? "a NIC" : "no NIC")
              << ", made " << human_ago(now_ns() / 1000000000 - r["AgeSeconds"].get<int64_t>(), now_ns() / 1000000000)
              << ", " << human_size(r["SizeBytes"].get<uint64_t>()) << " on tmpfs\n";
}

int cmd_info(const Globals& g, const std::string& format) {
  const char* modes[] = {"v1", "hybrid", "v2"};
  std::string why;
  std::string accel = detect_accelerator(&why);
  Json vm = {{"Available", false}, {"Accelerator", accel}, {"AcceleratorReason", why}};
  std::vector<std::string> missing;
  if (!on_path("qemu-system-x86_64")) missing.push_back("qemu-system-x86_64 (apt-get install qemu-system-x86)");
  auto agent = find_agent();
  if (!agent) missing.push_back(agent.error().message());
  std::string kernel_version = guest_kernel_version();
  if (kernel_version.empty()) missing.push_back("the guest kernel in " + guest_dir() + " (run scripts/guest-kernel)");
  vm["GuestKernel"] = kernel_version;
  vm["Available"] = missing.empty();
  vm["Missing"] = missing;
  vm["Templates"] = templates_json();
  Json info = {{"Version", ISOLA_VERSION},
               {"Root", g.root},
               {"CgroupMode", modes[static_cast<int>(detect_cgroup_mode())]},
               {"IsolationLevels", missing.empty() ? Json{"process", "vm"} : Json{"process"}},
               {"Storage", storage_json(g)},
               {"VM", vm}};
  if (format == "json") {
    std::cout << info.dump(2) << "\n";
    return 0;
  }
  if (format != "table") {  // a Go template over the JSON, as docker info --format
    auto text = format_each({info}, format);
    if (!text) return report(text.error());
    std::cout << *text;
    return 0;
  }
  std::cout << "Version:          " << ISOLA_VERSION << "\n"
            << "Root:             " << g.root << "\n";
  print_storage(info["Storage"]);
  std::cout << "Cgroups:          " << info["CgroupMode"].get<std::string>() << "\n"
            << "Isolation levels: process" << (missing.empty() ? ", vm" : "") << "\n"
            << "VM isolation:     " << (missing.empty() ? "available" : "not available") << "\n"
            << "  Accelerator:    " << accel << " (" << why << ")\n"
            << "  Guest kernel:   " << (kernel_version.empty() ? "-" : kernel_version) << "\n";
  for (const std::string& m : missing) std::cout << "  Missing:        " << m << "\n";
  print_templates(vm["Templates"]);
  return 0;
}

}  // namespace

std::string guest_kernel_version() {
  auto v = read_file(path_join(guest_dir(), "kernel.version"), 4096);
  if (!v) return "";
  std::string text = *v;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

void add_info_command(CLI::App& app, Globals& g) {
  auto format = std::make_shared<std::string>("table");
  auto* info = app.add_subcommand("info", "Show what this host offers and the store holds: cgroups, isolation levels, VM support, storage");
  info->add_option("--format", *format, "table, json or a Go TEMPLATE over the JSON");
  info->callback([&g, format] { g.action = [&g, format] { return cmd_info(g, *format); }; });
}

}  // namespace isola::cli
