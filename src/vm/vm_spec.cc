#include "vm/vm_spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/fs.h"
#include "engine/limit_checks.h"

namespace isola {

Json VmPlan::to_json() const {
  Json shares_json = Json::array();
  for (const VmShare& s : shares)
    shares_json.push_back({{"tag", s.tag}, {"host_path", s.host_path}, {"guest_path", s.guest_path},
                           {"readonly", s.readonly}});
  Json j = {{"shares", shares_json}, {"memory_mb", memory_mb}, {"cpus", cpus}};
  return j;
}

Result<VmPlan> VmPlan::from_json(const Json& j) {
  VmPlan p;
  const std::string what = "vm.json";
  for (const Json& s : *TRY(json_array(j, "shares", what)))
    p.shares.push_back({TRY(json_string(s, "tag", what)), TRY(json_string(s, "host_path", what)),
                        TRY(json_string(s, "guest_path", what)), json_bool_or(s, "readonly", false)});
  p.memory_mb = static_cast<uint64_t>(json_int_or(j, "memory_mb", 256));
  p.cpus = static_cast<unsigned>(json_int_or(j, "cpus", 1));
  return p;
}

namespace {

constexpr uint64_t kMaxVolumeFile = 16u << 20;

Result<void> copy_volume_file(const std::string& source, const std::string& dest) {
  UniqueFd in = TRY(open_path(source, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return fail(sys_error("stat", source));
  if (!S_ISREG(st.st_mode))
    return fail(make_error("share with the VM", source, "a single-file volume must be a regular file"));
  if (static_cast<uint64_t>(st.st_size) > kMaxVolumeFile)
    return fail(make_error("share with the VM", source,
                           "single-file volumes are copied into the VM and may be at most 16 MiB; mount its directory"));
  std::string data = TRY(read_fd(in.get(), source, kMaxVolumeFile));
  TRYV(mkdir_p(dest.substr(0, dest.rfind('/')), 0700));
  TRYV(write_file_atomic(dest, data, st.st_mode & 07777));
  if (::chown(dest.c_str(), st.st_uid, st.st_gid) != 0) return fail(sys_error("chown", dest));
  return {};
}

}  // namespace

Result<VmPlan> plan_vm(RuntimeSpec& spec, const std::string& etc_dir) {
  VmPlan plan;
  plan.shares.push_back({"rootfs", spec.root_path, "/run/isola/rootfs", false});
  plan.shares.push_back({"etc", etc_dir, "/run/isola/etc", true});
  spec.root_path = "/run/isola/rootfs";
  int volumes = 0, files = 0;
  const std::string files_dir = path_join(etc_dir.substr(0, etc_dir.rfind('/')), "vm-files");
  // Shares are handed out in the order of the mounts' destinations, not of
  // the spec's list: podman writes its bind mounts in a different order
  // from one container to the next, and the shares' order is part of a VM
  // template's key (the mounts themselves keep their order in the guest).
  std::vector<MountSpec*> binds;
  for (MountSpec& m : spec.mounts)
    if (m.type == "bind") binds.push_back(&m);
  std::stable_sort(binds.begin(), binds.end(),
                   [](const MountSpec* a, const MountSpec* b) { return a->destination < b->destination; });
  for (MountSpec* bind : binds) {
    MountSpec& m = *bind;
    if (m.source.rfind(etc_dir + "/", 0) == 0) {
      m.source = "/run/isola/etc/" + m.source.substr(etc_dir.size() + 1);
      continue;
    }
    bool ro = false;
    for (const std::string& o : m.options) ro = ro || o == "ro";
    if (!is_directory(m.source)) {
      // 9p shares directories, and sharing the file's directory would hand
      // the guest its neighbours (a volume of /etc/localtime, /etc). The
      // file is copied into a directory of its own instead: the guest sees
      // it as it was at create, and its changes stay in the guest.
      std::string name = std::to_string(files++) + "-" + m.source.substr(m.source.rfind('/') + 1);
      TRYV(copy_volume_file(m.source, path_join(files_dir, name)));
      if (files == 1) plan.shares.push_back({"files", files_dir, "/run/isola/files", false});
      m.source = "/run/isola/files/" + name;
      continue;
    }
    // Several bind mounts of one directory travel in one share.
    auto same = std::find_if(plan.shares.begin(), plan.shares.end(), [&](const VmShare& s) {
      return s.tag.starts_with("v") && s.host_path == m.source && s.readonly == ro;
    });
    std::string tag = same != plan.shares.end() ? same->tag : "v" + std::to_string(volumes++);
    if (same == plan.shares.end()) plan.shares.push_back({tag, m.source, "/run/isola/" + tag, ro});
    m.source = "/run/isola/" + tag;
  }
  for (const VmShare& s : plan.shares)
    if (s.host_path.find(',') != std::string::npos)
      return fail(make_error("share with the VM", s.host_path, "paths with ',' cannot be shared"));
  // QEMU's microvm has 24 virtio-mmio slots: one is the agent's serial
  // device, one the network card, and each share takes one.
  constexpr size_t kMaxShares = 24 - 2;
  if (plan.shares.size() > kMaxShares) {
    size_t fixed = plan.shares.size() - static_cast<size_t>(volumes);
    return fail(make_error("share with the VM", std::to_string(volumes) + " volumes",
                           "a VM container can have at most " + std::to_string(kMaxShares - fixed) +
                               " volumes and bind-mounted directories (the VM has 24 device slots); mount fewer, "
                               "or several below one directory"));
  }
  plan.memory_mb = vm_memory_mb(spec.linux.resources.memory_limit.value_or(0));
  if (spec.linux.resources.cpu_quota && spec.linux.resources.cpu_period && *spec.linux.resources.cpu_period > 0) {
    double cpus = static_cast<double>(*spec.linux.resources.cpu_quota) /
                  static_cast<double>(*spec.linux.resources.cpu_period);
    plan.cpus = static_cast<unsigned>(std::max(1.0, std::ceil(cpus)));
  }
  // A cpuset pins the VM on the host (its keeper's cgroup holds QEMU): the
  // guest gets one vCPU per CPU of the set, at most, and runs on all of
  // them, since the host's CPU and node numbers mean nothing inside.
  Resources& r = spec.linux.resources;
  if (auto n = static_cast<unsigned>(cpu_list(r.cpuset_cpus).size()); n > 0)
    plan.cpus = plan.cpus > 1 ? std::min(plan.cpus, n) : n;
  r.cpuset_cpus.clear();
  r.cpuset_mems.clear();
  return plan;
}

}  // namespace isola
