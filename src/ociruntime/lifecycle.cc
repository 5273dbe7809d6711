// create, start, run, state, list, kill, delete, pause, resume, ps, update.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "common/fs.h"
#include "common/unix_socket.h"
#include "engine/container_store.h"
#include "engine/engine.h"
#include "ociruntime/bundle.h"
#include "ociruntime/hooks.h"
#include "ociruntime/runtime.h"
#include "net/netns_takeover.h"
#include "ociruntime/pod_member.h"
#include "ociruntime/vm_keeper.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"

namespace isola::oci {

namespace {

const std::vector<FlagSpec> kCreateFlags = {
    {{"bundle", "b"}, true},        {{"pid-file"}, true},       {{"console-socket"}, true},
    {{"no-pivot"}, false},          {{"no-new-keyring"}, false}, {{"preserve-fds"}, true},
    {{"detach", "d"}, false},       {{"keep"}, false},           {{"no-subreaper"}, false},
};

Result<int> parse_count(const std::string& text, const char* what) {
  if (text.empty()) return 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (*end || v < 0 || v > 1000000) return fail(make_error("parse arguments", what, "must be a non-negative number"));
  return static_cast<int>(v);
}

struct Created {
  ContainerInfo info;
  pid_t pid = -1;
};

// The VM of pod sandbox `sandbox`, a container of this root.
Result<PodVm> pod_vm(const StateRoot& root, const std::string& sandbox) {
  auto info = root.load(sandbox);
  if (!info || info->backend != Backend::vm || !info->pod_sandbox.empty() || info->keeper_socket.empty())
    return fail(make_error("create container", sandbox,
                           "the pod's sandbox is not a VM container of this runtime root: a pod's containers run "
                           "in its sandbox's VM, so the sandbox must use the same (VM) runtime class"));
  if (status_of(*info, root.start_socket(sandbox)) != "running")
    return fail(make_error("create container", sandbox, "the pod's sandbox is not running"));
  return PodVm{info->pid, info->keeper_socket};
}

// The VM of a pod's further container: keeper -1 once the sandbox is gone.
PodVm pod_vm_of(const StateRoot& root, const ContainerInfo& member) {
  auto info = root.load(member.pod_sandbox);
  bool alive = info && process_matches(info->pid, info->pid_start);
  return PodVm{alive ? info->pid : -1, member.keeper_socket};
}

// What a container holds on the host once its processes are gone: the
// cgroup, the VM's run directory, the state directory.
Result<void> release(const StateRoot& root, const ContainerInfo& info) {
  if (!info.cgroup_path.empty())
    if (auto cg = Cgroup::open(info.cgroup_path)) TRYV(cg->destroy());
  if (!info.pod_sandbox.empty()) remove_pod_member(info.id, pod_vm_of(root, info));  // the run directory is the pod's
  else if (!info.keeper_socket.empty()) (void)remove_tree(info.keeper_socket.substr(0, info.keeper_socket.rfind('/')));
  give_back_recorded(root.takeover_path(info.id));  // when the monitor could not (killed with its keeper)
  (void)::umount2(root.netns_pin(info.id).c_str(), MNT_DETACH);
  return root.remove(info.id);
}

// Removes a container whose processes are gone, then runs its poststop
// hooks (which cannot stop the removal).
Result<void> remove_stopped(const StateRoot& root, const ContainerInfo& info) {
  Json state = oci_state(info, "stopped");
  auto text = read_file(root.spec_path(info.id));
  TRYV(release(root, info));
  if (text)
    if (auto j = parse_json(*text, "config.json"))
      if (auto hooks = parse_hooks(*j)) run_hooks_warning(hooks->poststop, state, "poststop");
  return {};
}

// Undoes a create that failed half-way.
void abandon(const StateRoot& root, const ContainerInfo& info) {
  if (info.pid > 0) {
    ::kill(info.pid, SIGKILL);
    ::waitpid(info.pid, nullptr, 0);
  }
  (void)release(root, info);
}

Result<void> create_in(const StateRoot& root, const Context& ctx, const ParsedArgs& p, ContainerInfo& info,
                       const std::string& id) {
  Bundle b = TRY(load_bundle(p.get("bundle", "."), {id, ctx.systemd_cgroup, ctx.vm_by_default}));
  info.bundle = b.dir;
  info.rootfs = b.spec.root_path;
  info.backend = b.backend;
  info.annotations = b.spec.annotations;
  info.created_ns = now_ns();
  TRYV(write_file_atomic(root.spec_path(id), b.config.dump() + "\n", 0600));
  int preserve = TRY(parse_count(p.get("preserve-fds"), "--preserve-fds"));
  UniqueFd console;
  if (p.has("console-socket")) console = TRY(unix_connect(p.get("console-socket"), SOCK_STREAM, "the console socket"));
  if (b.spec.process.terminal && !console)
    return fail(make_error("create container", id, "process.terminal is true but no --console-socket was given"));
  if (b.backend == Backend::vm) {
    // The keeper, the monitor and QEMU are the container as the host sees
    // it: they go in the container's cgroup (without its limits, which
    // apply inside the guest), so that kill --all, ps and delete find them.
    // The devices the host's side needs: QEMU's /dev/kvm, and /dev/net/tun
    // for the tap of a network namespace the VM takes over (vm/worker.cc
    // adds the VM's memory and pids limits when the worker joins).
    Resources host_side;
    host_side.devices.push_back(DeviceRule{true, 'c', 10, 232, "rwm"});
    host_side.devices.push_back(DeviceRule{true, 'c', 10, 200, "rwm"});
    // A cpuset pins QEMU (its vCPUs and its memory) to the host's CPUs and nodes.
    host_side.cpuset_cpus = b.spec.linux.resources.cpuset_cpus;
    host_side.cpuset_mems = b.spec.linux.resources.cpuset_mems;
    Cgroup cg = TRY(Cgroup::create(b.spec.linux.cgroups_path, host_side));
    info.cgroup_path = cg.path();
    KeeperRequest kr{id,        root.dir(id), root.start_socket(id), root.takeover_path(id), root.netns_pin(id),
                     cg.path(), b.spec,       console.get(),         preserve, {}, {}};
    if (std::string sandbox = pod_sandbox_id(b.spec); !sandbox.empty()) {
      PodVm vm = TRY(pod_vm(root, sandbox));
      kr.pod_socket = vm.monitor_socket;
      info.pod_sandbox = sandbox;
      info.keeper_socket = vm.monitor_socket;
      kr.member_spec = TRY(add_pod_member(id, b.spec, vm)).guest_spec;
    }
    Keeper k = TRY(launch_vm_keeper(kr));
    info.pid = k.pid;
    info.keeper_socket = k.monitor_socket;
  } else {
    UniqueFd listener = TRY(unix_listen(root.start_socket(id), SOCK_SEQPACKET));
    StdioFds stdio{0, 1, 2, -1, console.get(), preserve};
    SpawnOptions so;
    so.id = id;
    so.wait_for_start = true;
    so.start_listener = listener.get();
    so.die_with_parent = false;
    so.new_keyring = !p.has("no-new-keyring");
    info.cgroup_path = b.spec.linux.cgroups_path;
    Spawned s = TRY(spawn_container(b.spec, so, stdio));
    info.pid = s.pid;
  }
  info.pid_start = process_start_time(info.pid);
  TRYV(root.save(info));
  Json state = oci_state(info, "created");
  TRYV(run_hooks(b.hooks.prestart, state, "prestart"));
  TRYV(run_hooks(b.hooks.create_runtime, state, "createRuntime"));
  if (p.has("pid-file")) TRYV(write_pid_file(p.get("pid-file"), info.pid));
  return {};
}

Result<ContainerInfo> create(const Context& ctx, const ParsedArgs& p, const std::string& id) {
  StateRoot root = TRY(StateRoot::open(ctx.root));
  TRYV(root.add(id));
  UniqueFd lock = TRY(root.lock(id));
  ContainerInfo info;
  info.id = id;
  if (auto r = create_in(root, ctx, p, info, id); !r) {
    abandon(root, info);
    return fail(r.error());
  }
  return info;
}

Result<void> start(const StateRoot& root, const ContainerInfo& info) {
  std::string status = status_of(info, root.start_socket(info.id));
  if (status != "created")
    return fail(make_error("start container", info.id, "it is " + status + ", not created"));
  auto started = start_created(root.start_socket(info.id), info.id);
  ::unlink(root.start_socket(info.id).c_str());
  if (!started) {
    // It reports and exits (a VM keeper after stopping its VM): stopped from now on.
    if (process_matches(info.pid, info.pid_start)) ::kill(info.pid, SIGKILL);
    return fail(started.error());
  }
  auto text = read_file(root.spec_path(info.id));
  if (text)
    if (auto j = parse_json(*text, "config.json"))
      if (auto hooks = parse_hooks(*j)) run_hooks_warning(hooks->poststart, oci_state(info, "running"), "poststart");
  return {};
}

// Waits up to `ms` for the container's process to be gone (or a zombie
// its parent has yet to reap).
bool wait_gone(const ContainerInfo& info, const std::string& start_socket, int ms) {
  for (int waited = 0; waited < ms; waited += 10) {
    if (status_of(info, start_socket) == "stopped") return true;
    ::usleep(10000);
  }
  return false;
}

std::string load_status(const StateRoot& root, const ContainerInfo& info) {
  return status_of(info, root.start_socket(info.id));
}

}  // namespace

Result<int> cmd_create(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, kCreateFlags, false));
  std::string id = TRY(one_id(p, "create"));
  TRY(create(ctx, p, id));
  return 0;
}

Result<int> cmd_start(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {}, false));
  std::string id = TRY(one_id(p, "start"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  UniqueFd lock = TRY(root.lock(id));
  ContainerInfo info = TRY(root.load(id));
  TRYV(start(root, info));
  return 0;
}

Result<int> cmd_run(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, kCreateFlags, false));
  std::string id = TRY(one_id(p, "run"));
  ContainerInfo info = TRY(create(ctx, p, id));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  if (auto r = start(root, info); !r) {
    abandon(root, info);
    return fail(r.error());
  }
  if (p.has("detach")) return 0;
  // The container's process is our child: wait for it, answer with its
  // status, and clean up as delete would.
  int status = 0;
  while (::waitpid(info.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!p.has("keep")) (void)remove_stopped(root, info);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<int> cmd_state(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {}, false));
  std::string id = TRY(one_id(p, "state"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  ContainerInfo info = TRY(root.load(id));
  std::printf("%s\n", oci_state(info, load_status(root, info)).dump(2).c_str());
  return 0;
}

Result<int> cmd_list(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {{{"format", "f"}, true}, {{"quiet", "q"}, false}}, false));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  Json all = Json::array();
  std::string table = "ID\tPID\tSTATUS\tBUNDLE\tCREATED\n";
  for (const std::string& id : TRY(root.list())) {
    auto info = root.load(id);
    if (!info) continue;
    std::string status = load_status(root, *info);
    all.push_back(oci_state(*info, status));
    table += id + "\t" + std::to_string(status == "stopped" ? 0 : info->pid) + "\t" + status + "\t" + info->bundle +
             "\t" + format_time_ns(info->created_ns) + "\n";
    if (p.has("quiet")) table.clear();
  }
  if (p.get("format") == "json") std::printf("%s\n", all.dump().c_str());
  else if (p.has("quiet")) for (const Json& s : all) std::printf("%s\n", s["id"].get<std::string>().c_str());
  else std::printf("%s", table.c_str());
  return 0;
}

Result<int> cmd_kill(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {{{"all", "a"}, false}}, false));
  if (p.positional.empty() || p.positional.size() > 2)
    return fail(make_error("kill", "", "usage: isola-runtime kill [--all] ID [SIGNAL]"));
  const std::string& id = p.positional[0];
  int sig = TRY(parse_signal(p.positional.size() == 2 ? p.positional[1] : "SIGTERM"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  ContainerInfo info = TRY(root.load(id));
  std::string status = load_status(root, info);
  if (status == "stopped") return fail(make_error("kill container", id, "container not running"));
  // VM isolation: the keeper passes the signal to the guest; the cgroup
  // holds only the keeper, the monitor and QEMU, not the guest's processes.
  if (p.has("all") && !info.cgroup_path.empty() && info.backend == Backend::process) {
    Cgroup cg = TRY(Cgroup::open(info.cgroup_path));
    TRYV(cg.kill_all(sig));
    return 0;
  }
  if (::kill(info.pid, sig) != 0) return fail(sys_error("kill", id));
  return 0;
}

Result<int> cmd_delete(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {{{"force", "f"}, false}}, false));
  std::string id = TRY(one_id(p, "delete"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  UniqueFd lock = TRY(root.lock(id));
  ContainerInfo info = TRY(root.load(id));
  std::string status = load_status(root, info);
  if ((status == "running" || status == "paused") && !p.has("force"))
    return fail(make_error("delete container", id, "it is " + status + ": stop it first, or use --force"));
  if (status != "stopped") {
    if (!info.cgroup_path.empty()) {
      if (auto cg = Cgroup::open(info.cgroup_path)) (void)cg->kill_all(SIGKILL);
    }
    ::kill(info.pid, SIGKILL);
    if (!wait_gone(info, root.start_socket(id), 10000))
      return fail(make_error("delete container", id, "its process did not die"));
  }
  TRYV(remove_stopped(root, info));
  return 0;
}

Result<int> cmd_pause(const Context& ctx, const Args& args, size_t begin, bool paused) {
  ParsedArgs p = TRY(parse_flags(args, begin, {}, false));
  std::string id = TRY(one_id(p, paused ? "pause" : "resume"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  UniqueFd lock = TRY(root.lock(id));
  ContainerInfo info = TRY(root.load(id));
  std::string status = load_status(root, info);
  if (paused && status != "running") return fail(make_error("pause container", id, "it is " + status));
  if (!paused && status != "paused") return fail(make_error("resume container", id, "it is not paused"));
  Cgroup cg = TRY(Cgroup::open(info.cgroup_path));
  TRYV(cg.freeze(paused));
  return 0;
}

Result<int> cmd_ps(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {{{"format", "f"}, true}}, true));
  std::string id = p.positional.empty() ? "" : p.positional[0];
  if (id.empty()) return fail(make_error("ps", "", "usage: isola-runtime ps [--format table|json] ID"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  ContainerInfo info = TRY(root.load(id));
  std::vector<pid_t> pids;
  if (load_status(root, info) != "stopped") pids = TRY(TRY(Cgroup::open(info.cgroup_path)).pids());
  if (p.get("format", "table") == "json") {
    std::printf("%s\n", Json(pids).dump().c_str());
    return 0;
  }
  std::printf("PID\tCMD\n");
  for (pid_t pid : pids) {
    auto cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline", 1u << 16);
    std::string text = cmd ? *cmd : "";
    for (char& ch : text)
      if (ch == '\0') ch = ' ';
    std::printf("%d\t%s\n", pid, text.c_str());
  }
  return 0;
}

Result<int> cmd_update(const Context& ctx, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin,
                                 {{{"resources", "r"}, true},
                                  {{"memory", "m"}, true},
                                  {{"memory-swap"}, true},
                                  {{"cpu-shares"}, true},
                                  {{"cpu-quota"}, true},
                                  {{"cpu-period"}, true},
                                  {{"pids-limit"}, true}},
                                 false));
  std::string id = TRY(one_id(p, "update"));
  StateRoot root = TRY(StateRoot::open(ctx.root));
  UniqueFd lock = TRY(root.lock(id));
  ContainerInfo info = TRY(root.load(id));
  if (info.backend == Backend::vm)
    return fail(make_error("update container", id, "changing the resources of a running VM is not supported"));
  Json res = Json::object();
  if (p.has("resources")) {
    std::string file = p.get("resources");
    std::string text = file == "-" ? TRY(read_fd(0, "stdin", 1u << 20)) : TRY(read_file(file, 1u << 20));
    res = TRY(parse_json(text, file));
  }
  auto number = [&](const char* flag) -> Result<std::optional<int64_t>> {
    if (!p.has(flag)) return std::optional<int64_t>{};
    const std::string text = p.get(flag);  // strtoll's end points into it
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end || errno == ERANGE) return fail(make_error("parse arguments", std::string("--") + flag, "must be a number"));
    return std::optional<int64_t>{v};
  };
  if (auto v = TRY(number("memory"))) res["memory"]["limit"] = *v;
  if (auto v = TRY(number("memory-swap"))) res["memory"]["swap"] = *v;
  if (auto v = TRY(number("cpu-shares"))) res["cpu"]["shares"] = *v;
  if (auto v = TRY(number("cpu-quota"))) res["cpu"]["quota"] = *v;
  if (auto v = TRY(number("cpu-period"))) res["cpu"]["period"] = *v;
  if (auto v = TRY(number("pids-limit"))) res["pids"]["limit"] = *v;
  Json wrapper = {{"root", {{"path", "/"}}}, {"linux", {{"resources", res}}}};
  RuntimeSpec parsed = TRY(RuntimeSpec::from_json(wrapper));
  Cgroup cg = TRY(Cgroup::open(info.cgroup_path));
  TRYV(cg.update(parsed.linux.resources));
  return 0;
}

Result<void> write_pid_file(const std::string& path, pid_t pid) {
  return write_file_atomic(path, std::to_string(pid), 0644);
}

Result<std::string> one_id(const ParsedArgs& p, const char* command) {
  if (p.positional.size() != 1)
    return fail(make_error(command, "", std::string("usage: isola-runtime ") + command + " [flags] ID"));
  return p.positional[0];
}

}  // namespace isola::oci
