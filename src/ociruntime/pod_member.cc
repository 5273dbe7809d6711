#include "ociruntime/pod_member.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/fs.h"
#include "monitor/client.h"
#include "vm/pod_share.h"
#include "vm/qemu.h"

namespace isola::oci {

namespace {

bool has_option(const MountSpec& m, std::string_view option) {
  return std::find(m.options.begin(), m.options.end(), option) != m.options.end();
}

// The mount namespace of the pod VM's worker (QEMU), whose PID its
// monitor knows.
Result<std::string> pod_worker_mounts(const PodVm& vm) {
  Json reply = TRY(monitor_call(vm.monitor_socket, {{"op", "worker"}}, 10000));
  if (!reply.value("ok", false) || json_int_or(reply, "pid", 0) <= 0 || vm.keeper <= 0)
    return fail(make_error("join the pod's VM", vm.monitor_socket, "the pod's VM is not running"));
  return worker_mount_ns_path(vm.keeper, static_cast<pid_t>(json_int_or(reply, "pid", 0)));
}

// The member's spec, rewritten for the guest, and what must be grafted for
// it: its root, then its bind mounts, below pod/<id>.
Result<RuntimeSpec> member_spec(RuntimeSpec spec, const std::string& id, const std::string& share,
                                std::vector<PodGraft>& grafts) {
  const std::string guest = std::string(kPodShareGuestPath) + "/" + id;
  const std::string host = path_join(share, id);
  grafts.push_back({spec.root_path, host + "/rootfs", true});
  spec.root_path = guest + "/rootfs";
  int n = 0;
  for (MountSpec& m : spec.mounts) {
    if (m.type != "bind" && !has_option(m, "bind") && !has_option(m, "rbind")) continue;
    std::string name = "mounts/" + std::to_string(n++);
    grafts.push_back({m.source, host + "/" + name, has_option(m, "rbind")});
    m.source = guest + "/" + name;
  }
  static const std::set<std::string> pod_shared = {"network", "ipc", "uts", "pid"};
  for (NamespaceSpec& ns : spec.linux.namespaces) {
    if (ns.path.empty()) continue;
    if (!pod_shared.count(ns.type))
      return fail(make_error("unsupported runtime spec", "linux.namespaces",
                             "a container in a pod's VM can join only the pod's network, IPC, UTS and PID "
                             "namespaces, not the " + ns.type + " namespace at " + ns.path));
    ns.path = "pod";  // the pod's, in the guest (agent/requests.h)
  }
  for (const DeviceNodeSpec& d : spec.linux.devices)
    if (d.type == 'b')
      return fail(make_error("unsupported runtime spec", "linux.devices",
                             d.path + ": a VM container has the guest's block devices, not the host's"));
  spec.linux.cgroups_path = "isola/" + id;
  spec.linux.resources.cpuset_cpus.clear();  // the host's CPU numbers mean nothing in the guest
  spec.linux.resources.cpuset_mems.clear();
  return spec;
}

}  // namespace

std::string pod_container_type(const RuntimeSpec& spec) {
  for (const char* key : {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"})
    if (auto it = spec.annotations.find(key); it != spec.annotations.end()) return it->second;
  return {};
}

std::string pod_sandbox_id(const RuntimeSpec& spec) {
  if (pod_container_type(spec) != "container") return {};
  for (const char* key : {"io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"})
    if (auto it = spec.annotations.find(key); it != spec.annotations.end()) return it->second;
  return {};
}

void size_pod_vm(const RuntimeSpec& sandbox, VmPlan& plan) {
  auto number = [&](const char* key) -> int64_t {
    auto it = sandbox.annotations.find(key);
    if (it == sandbox.annotations.end()) return 0;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    return end && *end == '\0' && v > 0 ? v : 0;
  };
  if (int64_t memory = number("io.kubernetes.cri.sandbox-memory"); memory > 0)
    plan.memory_mb = std::max(plan.memory_mb, vm_memory_mb(memory));
  int64_t quota = number("io.kubernetes.cri.sandbox-cpu-quota"), period = number("io.kubernetes.cri.sandbox-cpu-period");
  if (quota > 0 && period > 0)
    plan.cpus = std::max(plan.cpus, static_cast<unsigned>(std::ceil(static_cast<double>(quota) / static_cast<double>(period))));
}

std::string pod_share_dir(const std::string& monitor_socket) {
  return path_join(monitor_socket.substr(0, monitor_socket.rfind('/')), kPodShareTag);
}

Result<PodMember> add_pod_member(const std::string& id, const RuntimeSpec& spec, const PodVm& vm) {
  const std::string share = pod_share_dir(vm.monitor_socket);
  if (!is_directory(share))
    return fail(make_error("create container", id,
                           "its pod's sandbox VM has no pod share (it was made by an older isola-runtime): "
                           "recreate the pod"));
  std::vector<PodGraft> grafts;
  RuntimeSpec guest = TRY(member_spec(spec, id, share, grafts));
  std::string worker = TRY(pod_worker_mounts(vm));
  if (auto r = graft_into_worker(worker, grafts); !r) {
    (void)remove_tree(path_join(share, id));
    Error e = r.error();
    e.context("put container " + id + "'s files into its pod's VM");
    return fail(std::move(e));
  }
  PodMember m;
  m.guest_spec = guest.to_json();
  for (const PodGraft& g : grafts) m.grafted.push_back(g.target);
  return m;
}

void remove_pod_member(const std::string& id, const PodVm& vm) {
  const std::string dir = path_join(pod_share_dir(vm.monitor_socket), id);
  if (!is_directory(dir)) return;
  std::vector<std::string> targets = {dir + "/rootfs"};
  if (auto names = list_dir(dir + "/mounts"))
    for (const std::string& name : *names) targets.push_back(dir + "/mounts/" + name);
  if (vm.keeper > 0)
    if (auto worker = pod_worker_mounts(vm)) ungraft_from_worker(*worker, targets);
  (void)remove_tree(dir);
}

}  // namespace isola::oci
