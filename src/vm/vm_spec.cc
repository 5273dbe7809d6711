#include "vm/vm_spec.h"

#include <algorithm>
#include <cmath>

#include "common/fs.h"

namespace isola {

Json VmPlan::to_json() const {
  Json shares_json = Json::array();
  for (const VmShare& s : shares)
    shares_json.push_back({{"tag", s.tag}, {"host_path", s.host_path}, {"guest_path", s.guest_path},
                           {"readonly", s.readonly}});
  return {{"shares", shares_json}, {"memory_mb", memory_mb}, {"cpus", cpus}};
}

Result<VmPlan> VmPlan::from_json(const Json& j) {
  VmPlan p;
  const std::string what = "vm.json";
  for (const Json& s : *TRY(json_array(j, "shares", what)))
    p.shares.push_back({TRY(json_string(s, "tag", what)), TRY(json_string(s, "host_path", what)),
                        TRY(json_string(s, "guest_path", what)), s.value("readonly", false)});
  p.memory_mb = j.value("memory_mb", uint64_t{256});
  p.cpus = j.value("cpus", 1u);
  return p;
}

Result<VmPlan> plan_vm(RuntimeSpec& spec, const std::string& etc_dir) {
  VmPlan plan;
  plan.shares.push_back({"rootfs", spec.root_path, "/run/isola/rootfs", false});
  plan.shares.push_back({"etc", etc_dir, "/run/isola/etc", true});
  spec.root_path = "/run/isola/rootfs";
  int volumes = 0;
  for (MountSpec& m : spec.mounts) {
    if (m.type != "bind") continue;
    if (m.source.rfind(etc_dir + "/", 0) == 0) {
      m.source = "/run/isola/etc/" + m.source.substr(etc_dir.size() + 1);
      continue;
    }
    // 9p shares directories: a file volume travels in its parent.
    bool is_dir = is_directory(m.source);
    std::string dir = is_dir ? m.source : m.source.substr(0, m.source.rfind('/'));
    if (dir.empty()) dir = "/";
    bool ro = false;
    for (const std::string& o : m.options) ro = ro || o == "ro";
    // Several files of one directory (an engine's hosts, hostname,
    // resolv.conf) travel in one share.
    auto same = std::find_if(plan.shares.begin(), plan.shares.end(), [&](const VmShare& s) {
      return s.tag.starts_with("v") && s.host_path == dir && s.readonly == ro;
    });
    std::string tag = same != plan.shares.end() ? same->tag : "v" + std::to_string(volumes++);
    if (same == plan.shares.end()) plan.shares.push_back({tag, dir, "/run/isola/" + tag, ro});
    m.source = "/run/isola/" + tag + (is_dir ? "" : m.source.substr(m.source.rfind('/')));
  }
  for (const VmShare& s : plan.shares)
    if (s.host_path.find(',') != std::string::npos)
      return fail(make_error("share with the VM", s.host_path, "paths with ',' cannot be shared"));
  plan.memory_mb = vm_memory_mb(spec.linux.resources.memory_limit.value_or(0));
  if (spec.linux.resources.cpu_quota && spec.linux.resources.cpu_period && *spec.linux.resources.cpu_period > 0) {
    double cpus = static_cast<double>(*spec.linux.resources.cpu_quota) /
                  static_cast<double>(*spec.linux.resources.cpu_period);
    plan.cpus = static_cast<unsigned>(std::max(1.0, std::ceil(cpus)));
  }
  return plan;
}

}  // namespace isola
