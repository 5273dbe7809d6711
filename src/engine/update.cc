// isola update: new limits and restart policy for an existing container.
// The limits live in three places: the record (HostConfig, for inspect),
// the runtime spec (linux.resources, for the next start) and, while the
// container runs, its cgroup. The cgroup is written first, since only the
// kernel knows whether it takes a value; if it refuses one, what it had
// taken is written back, and the files are left alone. A VM container's
// group is in its guest: the monitor passes the limits to the agent. The
// VM itself keeps the size it was created with (docs/vm-isolation.md).
#include <cmath>
#include <cstdio>
#include <set>

#include "engine/engine.h"
#include "engine/limit_checks.h"
#include "engine/restart.h"
#include "monitor/client.h"
#include "runtime/cgroup.h"
#include "vm/qemu.h"
#include "vm/vm_spec.h"

namespace isola {
namespace {

constexpr uint64_t kCpuPeriodUs = 100000;  // as run's --cpus

// A container's limits as its record holds them (HostConfig); 0: none.
struct Limits {
  int64_t memory = 0;
  int64_t memory_swap = 0;  // memory plus swap; 0: as much as memory (run's default), -1 unlimited
  int64_t reservation = 0;
  int64_t nano_cpus = 0;
  int64_t pids = 0;  // 0 or less: unlimited
  std::string cpuset;
  bool operator==(const Limits&) const = default;
};

Limits limits_of(const Json& options) {
  Limits l;
  l.memory = json_int_or(options, "Memory", 0);
  l.memory_swap = json_int_or(options, "MemorySwap", 0);
  l.reservation = json_int_or(options, "MemoryReservation", 0);
  l.nano_cpus = json_int_or(options, "NanoCpus", 0);
  l.pids = json_int_or(options, "PidsLimit", 0);
  l.cpuset = json_string_or(options, "CpusetCpus");
  return l;
}

void store_limits(const Limits& l, Json& options) {
  auto put = [&](const char* key, int64_t value) {
    if (value != 0) options[key] = value;
    else options.erase(key);
  };
  put("Memory", l.memory);
  put("MemorySwap", l.memory_swap);
  put("MemoryReservation", l.reservation);
  put("NanoCpus", l.nano_cpus);
  put("PidsLimit", l.pids);
  options["CpusetCpus"] = l.cpuset;
}

// linux.resources as build_spec writes them for these limits.
void set_spec_resources(const Limits& l, Resources& r) {
  auto set = [](int64_t v) { return v != 0 ? std::optional<int64_t>(v) : std::nullopt; };
  r.memory_limit = set(l.memory);
  r.memory_swap = l.memory_swap != 0 ? set(l.memory_swap) : set(l.memory);
  r.memory_reservation = set(l.reservation);
  r.cpu_period = l.nano_cpus != 0 ? std::optional<uint64_t>(kCpuPeriodUs) : std::nullopt;
  r.cpu_quota = set(l.nano_cpus / 10000);
  r.pids_limit = set(l.pids);
  r.cpuset_cpus = l.cpuset;
}

// What a live group needs to go from `from` to `to`: only what differs,
// with "none" spelled out (unlimited), since an absent value changes
// nothing. The cpuset is not here: see apply_to_cgroup.
Resources changes(const Limits& from, const Limits& to, bool v2) {
  Resources r;
  if (from.memory != to.memory || from.memory_swap != to.memory_swap) {
    r.memory_limit = to.memory != 0 ? to.memory : -1;
    r.memory_swap = to.memory_swap != 0 ? to.memory_swap : *r.memory_limit;
  }
  // No soft limit: v2's memory.low is 0, v1's soft limit unlimited.
  if (from.reservation != to.reservation) r.memory_reservation = to.reservation != 0 ? to.reservation : (v2 ? 0 : -1);
  if (from.nano_cpus != to.nano_cpus) {
    r.cpu_period = kCpuPeriodUs;
    r.cpu_quota = to.nano_cpus != 0 ? to.nano_cpus / 10000 : -1;
  }
  if (from.pids != to.pids) r.pids_limit = to.pids > 0 ? to.pids : 0;  // 0: "max"
  return r;
}

// The memory flags over the container's limits; `vm`: the VM it runs in.
Result<void> update_memory(Limits& l, const UpdateOptions& u, const VmPlan* vm) {
  if (u.memory) {
    if (*u.memory < kMinMemoryLimit)
      return fail(make_error("--memory", "", mib(*u.memory) + " is below the minimum of 6 MiB; give at least 6m"));
    if (vm && *u.memory > vm_container_memory_max(vm->memory_mb))
      return fail(make_error("--memory", "", mib(*u.memory) + " is more than the container's VM has for it (" +
                                                 mib(vm_container_memory_max(vm->memory_mb)) +
                                                 "); a VM keeps the size it was created with: give at most that, "
                                                 "or recreate the container with a larger --memory"));
    if (!u.memory_swap && l.memory_swap > 0 && *u.memory > l.memory_swap)
      return fail(make_error("--memory", "", "is above the container's memory plus swap limit (" +
                                                 mib(l.memory_swap) + "); update --memory-swap as well"));
    l.memory = *u.memory;
  }
  if (u.memory_swap) l.memory_swap = *u.memory_swap;
  if (u.memory_reservation) {
    if (*u.memory_reservation < 0)
      return fail(make_error("--memory-reservation", "", "must be a size, like 64m"));
    l.reservation = *u.memory_reservation;
  }
  return check_memory_limits(l.memory, u.memory_swap ? l.memory_swap : 0, l.reservation,
                             u.memory_reservation ? "--memory-reservation" : "--memory");
}

Result<Limits> updated_limits(Limits l, const UpdateOptions& u, const VmPlan* vm) {
  TRYV(update_memory(l, u, vm));
  if (u.cpus) {
    std::string have = online_cpus();
    double max = vm ? vm->cpus : static_cast<double>(cpu_list(have).size());
    if (!std::isfinite(*u.cpus) || *u.cpus < 0.01 || (max >= 1 && *u.cpus > max)) {
      std::string range = "must be from 0.01 to " + std::to_string(static_cast<int>(max));
      return fail(make_error("--cpus", "", vm ? range + ": the container's VM has " + std::to_string(vm->cpus) +
                                                    (vm->cpus == 1 ? " vCPU" : " vCPUs") + ", fixed when it was created"
                                              : range + ": this host has " + std::to_string(static_cast<int>(max)) +
                                                    " CPUs (" + have + ")"));
    }
    l.nano_cpus = std::llround(*u.cpus * 1e9);
  }
  if (u.cpuset_cpus) {
    if (vm)
      return fail(make_error("--cpuset-cpus", "", "a VM container runs on its VM's vCPUs, not on the host's CPUs; "
                                                  "limit it with --cpus instead"));
    TRYV(check_cpuset(*u.cpuset_cpus));
    l.cpuset = *u.cpuset_cpus;
  }
  if (u.pids_limit) {
    if (*u.pids_limit > kMaxPidsLimit)
      return fail(make_error("--pids-limit", "", "at most " + std::to_string(kMaxPidsLimit) +
                                                     " (the kernel's limit); use -1 for no limit"));
    l.pids = *u.pids_limit > 0 ? *u.pids_limit : -1;
  }
  return l;
}

// Names the flag whose cgroup file the kernel refused; `what` is the
// failed write as the cgroup code reports it (it names the file).
Error refused(const std::string& what, int err, const std::string& name) {
  auto has = [&](const char* s) { return what.find(s) != std::string::npos; };
  const char* flag = has("cpuset")                         ? "--cpuset-cpus"
                     : has("swap")                         ? "--memory-swap"
                     : has("soft_limit") || has("memory.low") ? "--memory-reservation"
                     : has("memory")                       ? "--memory"
                     : has("cpu")                          ? "--cpus"
                     : has("pids")                         ? "--pids-limit"
                                                           : "update container";
  std::string why = "the kernel refused the new limit (" + what + ")";
  if (err == EBUSY && std::string(flag) == "--memory")
    why += "; the container uses more memory than that and cannot give it back: free some inside it first, "
           "or give a larger limit";
  return make_error(flag, name, why + "; the container's limits are as they were");
}

// A running process container: its cgroup on the host. The cpuset goes
// last and alone: a refused cpuset changed nothing, and a cpuset that was
// "the parent's" has no value to write back.
Result<void> apply_to_cgroup(const std::string& cgroups_path, const std::string& name, const Limits& from,
                             const Limits& to) {
  Cgroup cg = TRY(Cgroup::open(cgroups_path));
  bool v2 = detect_cgroup_mode() == CgroupMode::v2;
  Result<void> applied = cg.update(changes(from, to, v2));
  if (applied && from.cpuset != to.cpuset) {
    Resources cpuset;
    cpuset.cpuset_cpus = to.cpuset;
    applied = cg.update(cpuset);
  }
  if (applied) return {};
  (void)cg.update(changes(to, from, v2));
  return fail(refused(applied.error().message(), applied.error().err, name));
}

// A running VM container: the container's group in the guest, through the
// monitor and the agent (docs/agent-protocol.md, "update"). The agent's
// refusal carries the guest kernel's errno and message.
Result<void> apply_in_guest(const ContainerRecord& rec, const Limits& from, const Limits& to) {
  auto send = [&](const Resources& r) -> Result<Json> {
    Json request = {{"op", "update"}, {"resources", resources_to_json(r)}};
    return monitor_call(ContainerStore::socket_path(rec.id), request, 30000);
  };
  Json reply = TRY(send(changes(from, to, true)));
  if (json_bool_or(reply, "ok", false)) return {};
  (void)send(changes(to, from, true));
  std::string what = printable(json_string_or(reply, "message", "the guest agent did not answer"));
  return fail(refused(what, static_cast<int>(json_int_or(reply, "errno", 0)), rec.name));
}

// Replaces linux.resources in the spec's text, keeping everything else.
Result<std::string> spec_with_limits(const std::string& text, const std::string& path, const Limits& l) {
  Json spec = TRY(parse_json(text, path));
  if (!spec.is_object()) return fail(make_error("parse", path, "the spec is not a JSON object"));
  Json& linux_spec = spec["linux"];
  if (!linux_spec.is_object()) linux_spec = Json::object();
  Resources r;
  if (auto it = linux_spec.find("resources"); it != linux_spec.end()) r = TRY(resources_from_json(*it));
  set_spec_resources(l, r);
  linux_spec["resources"] = resources_to_json(r);
  return spec.dump(2) + "\n";
}

// The limits on a running container, wherever its group is.
Result<void> apply_live(const ContainerRecord& rec, const std::string& cgroups_path, const Limits& from,
                        const Limits& to) {
  if (rec.isolation == Isolation::vm) return apply_in_guest(rec, from, to);
  return apply_to_cgroup(cgroups_path, rec.name, from, to);
}

std::string cgroups_path_of(const Json& spec, const std::string& id) {
  std::string fallback = "isola/" + id;
  auto l = spec.find("linux");
  return l != spec.end() && l->is_object() ? json_string_or(*l, "cgroupsPath", fallback) : fallback;
}

}  // namespace

Result<void> Engine::update(const ContainerRecord& ref, const UpdateOptions& opts) {
  if (opts.empty())
    return fail(make_error("update", ref.name, "you must provide one or more flags (--memory, --memory-swap, "
                                               "--memory-reservation, --cpus, --cpuset-cpus, --pids-limit, --restart)"));
  FileLock guard = TRY(containers_.lock(ref.id));
  ContainerRecord rec = TRY(containers_.resolve(ref.id));  // as it is now, under the lock
  bool vm = rec.isolation == Isolation::vm;
  std::optional<VmPlan> plan;
  if (vm) plan = TRY(VmPlan::from_json(TRY(parse_json(TRY(read_file(containers_.vm_path(rec.id))), "vm.json"))));
  Limits from = limits_of(rec.options);
  Limits to = TRY(updated_limits(from, opts, plan ? &*plan : nullptr));
  if (opts.restart && opts.restart->name != "no" && rec.auto_remove)
    return fail(make_error("--restart", rec.name, "the container is removed when it exits (--rm), so it cannot be "
                                                  "restarted; only --restart no goes with --rm"));
  ContainerState st = containers_.state(rec.id);
  if (st.status == "restarting")
    return fail(make_error("update container", rec.name, "it is restarting (its restart policy); wait until it "
                                                         "runs, or stop it first"));
  bool live = (st.status == "running" || st.status == "paused") && !(from == to);
  if (live && vm && st.status == "paused")
    return fail(make_error("update container", rec.name, "its VM is frozen while the container is paused; "
                                                         "unpause it first"));

  const std::string spec_path = containers_.spec_path(rec.id);
  std::string old_spec = TRY(read_file(spec_path));
  std::string new_spec = TRY(spec_with_limits(old_spec, spec_path, to));
  std::string cgroups_path = cgroups_path_of(TRY(parse_json(old_spec, spec_path)), rec.id);
  if (live) TRYV(apply_live(rec, cgroups_path, from, to));
  ContainerRecord updated = rec;
  store_limits(to, updated.options);
  if (opts.restart) updated.options["RestartPolicy"] = restart_policy_json(*opts.restart);
  auto written = write_file_atomic(spec_path, new_spec, 0600);
  if (written) written = containers_.write_record(updated);
  if (!written) {
    (void)write_file_atomic(spec_path, old_spec, 0600);
    if (live) (void)apply_live(rec, cgroups_path, to, from);
    return fail(written.error().context("update container " + rec.name));
  }
  return {};
}

}  // namespace isola
