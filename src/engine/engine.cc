#include "engine/engine.h"

#include <signal.h>
#include <sys/pidfd.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "engine/events.h"
#include "engine/health.h"
#include "engine/networking.h"
#include "engine/restart.h"
#include "engine/run_extras.h"
#include "engine/spec_builder.h"
#include "engine/volumes.h"
#include "image/rootfs.h"
#include "image/shift.h"
#include "monitor/client.h"
#include "monitor/monitor.h"
#include "runtime/cgroup.h"
#include "vm/vm_spec.h"

namespace isola {

namespace {

// Waits up to `timeout_ms` for a process to end (pidfd; -1 waits forever).
bool wait_gone(pid_t pid, uint64_t start, int timeout_ms) {
  if (!process_matches(pid, start)) return true;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    UniqueFd pidfd(fd);
    if (!process_matches(pid, start)) return true;
    pollfd p{fd, POLLIN, 0};
    int r;
    while ((r = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    return r > 0 || !process_matches(pid, start);
  }
  for (int waited = 0; timeout_ms < 0 || waited < timeout_ms; waited += 20) {
    if (!process_matches(pid, start)) return true;
    ::usleep(20000);
  }
  return !process_matches(pid, start);
}

// isola-init sits beside the binary in a build tree, or in
// ../libexec/isola/ once installed.
Result<std::string> find_init() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    std::string dir(buf, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& candidate : {dir + "/isola-init", dir + "/../libexec/isola/isola-init"})
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return fail(make_error("create container", "isola-init", "--init needs isola-init beside isola or in "
                                                           "../libexec/isola; reinstall isola"));
}

// A container in a user namespace sets itself up as an unprivileged host
// id, which must be able to walk down to its own directory.
Result<void> check_searchable(const std::string& dir) {
  std::string path;
  for (size_t pos = 0; pos != std::string::npos;) {
    size_t next = dir.find('/', pos + 1);
    path = dir.substr(0, next);
    pos = next;
    struct stat st;
    if (::stat(path.empty() ? "/" : path.c_str(), &st) != 0) return fail(sys_error("stat", path));
    if (!(st.st_mode & S_IXOTH))
      return fail(make_error("--userns=auto", path,
                             "the store must lie below directories other users may search (chmod o+x), "
                             "as /var/lib/isola does"));
  }
  return {};
}

}  // namespace

Result<int> parse_signal(const std::string& text) {
  static const std::pair<const char*, int> names[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},   {"TRAP", SIGTRAP},
      {"ABRT", SIGABRT}, {"BUS", SIGBUS},   {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"USR1", SIGUSR1},
      {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
      {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU}, {"URG", SIGURG},   {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
      {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},   {"PWR", SIGPWR},   {"SYS", SIGSYS}};
  std::string s = text;
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 3) {
    int n = std::stoi(s);
    if (n >= 1 && n <= 64) return n;
  }
  for (const auto& [name, num] : names)
    if (s == name) return num;
  return fail(make_error("parse signal", text, "unknown signal; use a name like SIGTERM or a number"));
}

Json run_options_to_json(const RunOptions& o) {
  Json vols = Json::array();
  for (const VolumeOption& v : o.volumes)
    if (v.kind == MountKind::bind) vols.push_back(v.source + ":" + v.destination + (v.readonly ? ":ro" : ""));
  Json j = {{"Image", o.image},        {"Cmd", o.command},           {"Env", o.env},
            {"WorkingDir", o.workdir}, {"User", o.user},             {"Hostname", o.hostname},
            {"Volumes", vols},         {"Tmpfs", o.tmpfs},           {"ReadonlyRootfs", o.read_only},
            {"Privileged", o.privileged}, {"CapAdd", o.cap_add},     {"CapDrop", o.cap_drop},
            {"NoNewPrivileges", o.no_new_privileges}, {"Seccomp", o.seccomp}, {"NetworkMode", o.network},
            {"Init", o.init},          {"Tty", o.tty},               {"OpenStdin", o.interactive},
            {"AutoRemove", o.auto_remove}, {"Labels", o.labels}, {"UsernsMode", o.userns},
            {"VmBoot", o.vm_boot}};
  if (o.entrypoint) j["Entrypoint"] = *o.entrypoint;
  if (o.memory) j["Memory"] = *o.memory;
  if (o.cpus) j["NanoCpus"] = static_cast<int64_t>(*o.cpus * 1e9);
  if (o.pids_limit) j["PidsLimit"] = *o.pids_limit;
  if (!o.publish.empty()) j["PortBindings"] = o.publish;
  if (o.publish_all) j["PublishAllPorts"] = true;
  if (!o.volumes_from.empty()) j["VolumesFrom"] = o.volumes_from;
  add_extra_options_json(o, j);
  return j;
}

int stop_timeout_of(const ContainerRecord& rec) {
  auto t = rec.options.find("StopTimeout");
  return t != rec.options.end() && t->is_number_integer() ? t->get<int>() : 10;
}

Result<Engine> Engine::open(const std::string& root) {
  ImageStore images = TRY(ImageStore::open(root));
  ContainerStore containers = TRY(ContainerStore::open(root));
  NetworkStore networks = TRY(NetworkStore::open(root));
  return Engine(std::move(images), std::move(containers), std::move(networks));
}

Result<void> Engine::mount_rootfs(const ContainerRecord& rec) {
  std::string target = containers_.rootfs_dir(rec.id);
  if (is_mount_point(target)) return {};
  ImageRecord image = TRY(images_.resolve(rec.image_id));
  OverlaySpec spec;
  spec.upper = containers_.upper_dir(rec.id);
  spec.work = containers_.work_dir(rec.id);
  for (const std::string& d : {spec.upper, spec.work, target}) TRYV(mkdir_p(d, 0755));
  for (auto it = image.layers.rbegin(); it != image.layers.rend(); ++it)
    spec.lowers_top_first.push_back(images_.layer_dir(*it));
  spec.lowers_top_first.push_back(images_.empty_dir());
  if (rec.userns_base != 0) {
    // In a user namespace the container's root is an unprivileged host id:
    // it gets its own copy of the layers, owned by its ids, and an upper
    // directory it owns. (Idmapped mounts would avoid the copy, but need
    // filesystem support many hosts lack.)
    std::string shifted = containers_.shifted_dir(rec.id);
    TRYV(mkdir_p(shifted, 0700));
    for (size_t i = 0; i < image.layers.size(); ++i) {
      std::string dest = path_join(shifted, std::to_string(i));
      if (!is_directory(dest)) {
        std::string tmp = dest + ".tmp";
        TRYV(remove_tree(tmp));
        TRYV(copy_shifted(images_.layer_dir(image.layers[i]), tmp, rec.userns_base));
        if (::rename(tmp.c_str(), dest.c_str()) != 0) return fail(sys_error("rename", dest));
      }
      spec.lowers_top_first[image.layers.size() - 1 - i] = dest;
    }
    for (const std::string& d : {spec.upper, spec.work})
      if (::chown(d.c_str(), rec.userns_base, rec.userns_base) != 0) return fail(sys_error("chown", d));
  }
  return mount_overlay(spec, target);
}

Result<LoadReport> Engine::commit(const ContainerRecord& rec, const NewImage& spec) {
  ImageRecord image = TRY(images_.resolve(rec.image_id));
  // VM containers too: the guest's root is a 9p share of the host's overlay
  // mount, so their changes are in the same upper directory on the host.
  std::string upper = containers_.upper_dir(rec.id);
  if (!is_directory(upper))
    return fail(make_error("commit", rec.name, "the container has no root file system changes directory (" + upper +
                                                   "); start it once, or recreate it"));
  auto made = images_.commit_upper(image, upper, rec.userns_base, spec);
  if (!made) return fail(made.error().context("commit " + rec.name));
  record_container_event(containers_.root(), rec, "commit", {{"imageID", made->id.str()}});
  return made;
}

// A process-isolated container's usage is its cgroup's. A VM-isolated
// one's, as the host sees it, is its VM worker's: CPU time and resident
// memory of QEMU, against the VM's memory size.
CgroupStats Engine::usage(const ContainerRecord& rec) {
  ContainerStore& store = containers_;
  CgroupStats out{};
  if (rec.isolation != Isolation::vm) {
    if (auto cg = Cgroup::open("isola/" + rec.id); cg)
      if (auto s = cg->stats(); s) out = *s;
    return out;
  }
  ContainerState st = store.state(rec.id);
  if (st.status != "running") return out;
  std::string proc = "/proc/" + std::to_string(st.pid);
  if (auto stat = read_file(proc + "/stat", 4096); stat) {
    size_t close = stat->rfind(')');
    unsigned long long utime = 0, stime = 0;
    if (close != std::string::npos &&
        std::sscanf(stat->c_str() + close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                    &stime) == 2)
      out.cpu_usage_ns = (utime + stime) * (1000000000ull / static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK)));
  }
  if (auto status = read_file(proc + "/status", 1u << 16); status) {
    size_t pos = status->find("VmRSS:");
    if (pos != std::string::npos) out.memory_usage = std::strtoull(status->c_str() + pos + 6, nullptr, 10) * 1024;
  }
  if (auto vm = read_file(store.vm_path(rec.id)); vm)
    if (auto j = parse_json(*vm, "vm.json"); j) out.memory_limit = j->value("memory_mb", uint64_t{0}) << 20;
  out.pids_current = 1;  // the worker; the guest's own processes are not host processes
  return out;
}

Result<pid_t> Engine::exec_process(const ContainerRecord& rec, const RuntimeSpec& spec, const ProcessSpec& process,
                                   const StdioFds& stdio) {
  if (rec.isolation == Isolation::vm)
    return fail(make_error("exec", rec.name, "a VM container's processes are started by its monitor"));
  ContainerState st = containers_.state(rec.id);
  if (st.status != "running") return fail(make_error("exec", rec.name, "the container is not running"));
  return exec_in_container(st.pid, spec, process, stdio);
}

Result<ContainerRecord> Engine::create(const RunOptions& opts) {
  if (opts.isolation == Isolation::vm) {
    if (opts.network == "host")
      return fail(make_error("create container", "--network host",
                             "a VM has its own kernel and network; use --network none with --isolation=vm"));
    if (opts.userns == "auto")
      return fail(make_error("create container", "--userns=auto",
                             "VM isolation already separates the container from the host kernel; drop --userns"));
    if (opts.init) return fail(make_error("create container", "--init", "not supported with --isolation=vm yet"));
  }
  if (opts.userns == "auto" && opts.network.starts_with("container:"))
    return fail(make_error("create container", "--network " + opts.network,
                           "cannot be combined with --userns=auto: the other container's network belongs to "
                           "another user namespace"));
  if (opts.isolation == Isolation::vm && opts.network.starts_with("container:"))
    return fail(make_error("create container", "--network " + opts.network,
                           "a VM has a network of its own and cannot share another container's; use a network "
                           "both are on instead (isola network create)"));
  trace("engine: create");
  ImageRecord image = TRY(images_.resolve(opts.image));
  Json image_config = TRY(images_.config(image));
  trace("engine: image resolved");
  Json cfg = image_config.value("config", Json::object());
  RunOptions run = opts;
  if (auto ex = cfg.find("ExposedPorts"); ex != cfg.end() && ex->is_object())
    for (const auto& [port, _] : ex->items()) run.exposed_ports.push_back(port);

  ContainerRecord rec;
  rec.name = opts.name;
  rec.image = opts.image;
  rec.image_id = image.id.hex;
  rec.isolation = opts.isolation;
  rec.tty = opts.tty;
  rec.interactive = opts.interactive;
  rec.auto_remove = opts.auto_remove;
  rec.stop_signal = opts.stop_signal.empty() ? json_string_or(cfg, "StopSignal", "SIGTERM") : opts.stop_signal;
  rec.labels = opts.labels;
  RunOptions recorded = opts;
  TRYV(resolve_host_gateway(networks_, recorded));
  rec.options = run_options_to_json(recorded);
  rec.options["RestartPolicy"] = restart_policy_json(opts.restart);
  if (Json hc = merge_healthcheck(opts.health, cfg); !hc.is_null()) rec.options["Healthcheck"] = hc;
  if (opts.userns != "" && opts.userns != "host" && opts.userns != "auto")
    return fail(make_error("create container", opts.userns, "unknown --userns; use 'auto' or 'host'"));
  if (opts.userns == "auto") TRYV(check_searchable(path_join(containers_.root(), "containers")));
  rec = TRY(containers_.create(rec, opts.userns == "auto"));

  ContainerNetwork net;
  std::vector<std::string> made_volumes;  // removed again if the container is not made
  auto built = [&]() -> Result<void> {
    net = TRY(plan_network(networks_, containers_, run, rec.id));
    VolumeStore volumes = TRY(VolumeStore::open(containers_.root()));
    run.volumes = TRY(plan_mounts(opts, cfg, containers_));
    TRYV(make_mount_sources(volumes, run.volumes, made_volumes));
    rec.options["Mounts"] = Json::array();
    for (const VolumeOption& v : run.volumes) rec.options["Mounts"].push_back(mount_json(v));
    TRYV(mount_rootfs(rec));
    trace("engine: rootfs mounted");
    for (const VolumeOption& v : run.volumes)
      if (v.kind == MountKind::volume)
        TRYV(prepare_volume(volumes, v.source, containers_.rootfs_dir(rec.id), v.destination, v.nocopy,
                            rec.userns_base));
    SpecInputs in;
    in.id = rec.id;
    in.rootfs = containers_.rootfs_dir(rec.id);
    in.etc_dir = containers_.etc_dir(rec.id);
    in.image_config = cfg;
    if (opts.init) in.init_path = TRY(find_init());
    in.userns_base = rec.userns_base;
    RuntimeSpec spec = TRY(build_spec(run, in));
    TRYV(write_etc_files(in.etc_dir, spec.hostname, net.mode));
    if (net.mode == "bridge") {
      TRYV(write_hosts_file(networks_, containers_, rec, spec.hostname, net));
      auto resolv = read_file("/etc/resolv.conf", 1u << 20);
      TRYV(write_file_atomic(path_join(in.etc_dir, "resolv.conf"), container_resolv_conf(resolv ? *resolv : ""), 0644));
    }
    TRYV(apply_dns_flags(in.etc_dir, rec, opts, net.mode));
    rec.command = spec.process.args;
    if (opts.isolation == Isolation::vm) {
      // The guest runs the same spec, with its paths in the guest.
      VmPlan vm = TRY(plan_vm(spec, in.etc_dir));
      TRYV(write_file_atomic(containers_.vm_path(rec.id), vm.to_json().dump(2) + "\n", 0600));
    }
    TRYV(write_file_atomic(containers_.spec_path(rec.id), spec.to_json().dump(2) + "\n", 0600));
    return write_file_atomic(path_join(containers_.dir(rec.id), "container.json"), rec.to_json().dump(2) + "\n",
                             0600);
  }();
  if (!built) {
    release_network(networks_, net, rec.id);
    (void)containers_.unmount_rootfs(rec.id);
    (void)containers_.remove(rec.id);
    if (auto volumes = VolumeStore::open(containers_.root()); volumes)
      for (const std::string& name : made_volumes) (void)volumes->remove(name);
    return fail(built.error());
  }
  refresh_hosts_files(networks_, containers_, net, rec.id);
  record_container_event(containers_.root(), rec, "create");
  return rec;
}

Result<pid_t> Engine::start(const ContainerRecord& rec, bool wait_for_attach, StartedBy by) {
  FileLock guard = TRY(containers_.lock(rec.id));
  ContainerState st = containers_.state(rec.id);
  if (st.status == "running" || st.status == "paused")
    return fail(make_error("start container", rec.name, "it is already running"));
  std::string stop_marker = containers_.manual_stop_path(rec.id);
  if (by == StartedBy::user) {
    if (st.status == "restarting")
      return fail(make_error("start container", rec.name, "it is restarting (its restart policy); stop it first"));
    ::unlink(stop_marker.c_str());
    st.restart_count = 0;
    st.restart_delay_ms = 0;
  } else {
    if (path_exists(stop_marker)) {
      st.status = "exited";  // a user stopped it during the back-off
      TRYV(containers_.write_state(rec.id, st));
      return fail(make_error("restart container", rec.name, "stopped by a user"));
    }
    ++st.restart_count;
  }
  {
    ContainerState recorded = containers_.recorded_state(rec.id);
    recorded.restart_count = st.restart_count;
    recorded.restart_delay_ms = st.restart_delay_ms;
    TRYV(containers_.write_state(rec.id, recorded));
  }
  // A monitor that died leaves its cgroup and mount behind; clear them
  // first. A restart clears what the last run's exec'd processes may hold.
  if ((st.status == "exited" || st.status == "restarting") && st.monitor_pid != 0) TRYV(cleanup(rec));
  // A monitor whose CLI died before attaching waits for that attach forever,
  // with the container's set-up process (or a whole VM): replace it, or
  // there would be two.
  if (st.status == "created" && process_matches(st.monitor_pid, st.monitor_start)) {
    ::kill(st.monitor_pid, SIGKILL);
    wait_gone(st.monitor_pid, st.monitor_start, 10000);
    TRYV(cleanup(rec));
  }
  TRYV(mount_rootfs(rec));
  TRYV(bring_up_networks(networks_, TRY(load_container_network(containers_, rec.id))));
  trace("engine: launching the monitor");
  // Before the launch: a container that exits at once has its die event
  // written by the monitor before launch_monitor returns.
  record_container_event(containers_.root(), rec, "start");
  auto pid = launch_monitor({containers_.root(), rec.id, wait_for_attach});
  trace("engine: monitor ready");
  if (!pid) {
    ContainerState failed = containers_.recorded_state(rec.id);
    failed.status = "exited";
    failed.exit_code = pid.error().exit_code ? pid.error().exit_code : 125;
    failed.error = pid.error().message();
    failed.finished_ns = now_ns();
    (void)containers_.write_state(rec.id, failed);
    record_container_event(containers_.root(), rec, "die", {{"exitCode", std::to_string(failed.exit_code)}});
    (void)cleanup(rec);
    return fail(pid.error());
  }
  return *pid;
}

void Engine::stopped_by_user(const ContainerRecord& rec, ContainerState& st) {
  (void)write_file_atomic(containers_.manual_stop_path(rec.id), "", 0600);
  if (st.status != "restarting") return;
  // The monitor waits out the back-off with SIGTERM blocked: it takes it as
  // "do not restart", or has launched the next monitor already.
  if (process_matches(st.monitor_pid, st.monitor_start)) {
    ::kill(st.monitor_pid, SIGTERM);
    wait_gone(st.monitor_pid, st.monitor_start, 10000);
  }
  // A start under way (a VM's can outlast the wait above) holds the lock:
  // what it started is what the caller stops.
  auto lock = containers_.lock(rec.id);
  st = containers_.state(rec.id);
}

Result<void> Engine::kill(const ContainerRecord& rec, int signal) {
  ContainerState st = containers_.state(rec.id);
  if (st.status == "restarting")
    return fail(make_error("kill container", rec.name,
                           "it is restarting (its restart policy); wait until it runs, or stop it with isola stop"));
  if (st.status != "running" && st.status != "paused")
    return fail(make_error("kill container", rec.name, "it is not running"));
  // Only a signal that stops it counts as the user stopping it: a SIGHUP
  // that reloads a configuration keeps the restart policy.
  auto stop_signal = parse_signal(rec.stop_signal);
  if (signal == SIGKILL || (stop_signal && signal == *stop_signal)) stopped_by_user(rec, st);
  // A paused container thaws first, so the signal is handled now (a frozen
  // process only gets it once thawed, and a frozen VM's agent cannot
  // deliver it at all).
  if (st.status == "paused") TRYV(pause(rec, false));
  // Before the signal, so the kill event comes before the monitor's die.
  record_container_event(containers_.root(), rec, "kill", {{"signal", std::to_string(signal)}});
  if (rec.isolation == Isolation::vm) {
    // The container's processes live in the guest: the agent signals them.
    Json reply = TRY(monitor_call(ContainerStore::socket_path(rec.id), {{"op", "signal"}, {"signal", signal}}));
    if (!reply.value("ok", false)) return fail(make_error("kill container", rec.name, "the guest agent did not answer"));
  } else if (::kill(st.pid, signal) != 0) {
    return fail(sys_error("kill", rec.name));
  }
  return {};
}

Result<void> Engine::stop(const ContainerRecord& rec, int timeout) {
  ContainerState st = containers_.state(rec.id);
  stopped_by_user(rec, st);
  if (st.status != "running" && st.status != "paused") return {};
  int sig = TRY(parse_signal(rec.stop_signal));
  if (rec.isolation == Isolation::vm) {
    // st.pid is the VM worker, which goes when the container's init exits.
    (void)kill(rec, sig);
    if (!wait_gone(st.pid, st.pid_start, timeout * 1000)) {
      (void)kill(rec, SIGKILL);
      if (!wait_gone(st.pid, st.pid_start, 10000)) ::kill(st.pid, SIGKILL);
    }
    TRY(wait(rec));
    record_container_event(containers_.root(), rec, "stop");
    return {};
  }
  if (st.status == "paused") (void)pause(rec, false);
  record_container_event(containers_.root(), rec, "kill", {{"signal", std::to_string(sig)}});
  ::kill(st.pid, sig);
  if (!wait_gone(st.pid, st.pid_start, timeout * 1000)) {
    record_container_event(containers_.root(), rec, "kill", {{"signal", std::to_string(SIGKILL)}});
    if (auto cg = Cgroup::open("isola/" + rec.id); cg) (void)cg->kill_all(SIGKILL);
    ::kill(st.pid, SIGKILL);
    wait_gone(st.pid, st.pid_start, 10000);
  }
  TRY(wait(rec));
  record_container_event(containers_.root(), rec, "stop");
  return {};
}

// Returns at the end of the run it first sees. With a restart policy the
// monitor shows "exited", then "restarting" for at least the 100 ms
// back-off, before the next run: a state read every 20 ms after the
// container died sees one of them; a new monitor means it was missed.
Result<int> Engine::wait(const ContainerRecord& rec) {
  int last_code = 0;
  pid_t monitor = 0;
  uint64_t monitor_start = 0;
  for (;;) {
    // --rm containers disappear with their state once they have exited.
    if (!path_exists(containers_.dir(rec.id))) return last_code;
    ContainerState st = containers_.state(rec.id);
    if (st.status == "exited" || st.status == "restarting") return st.exit_code;
    if (st.status == "created") {
      ::usleep(50000);  // a start may be under way
      continue;
    }
    if (monitor == 0) {
      monitor = st.monitor_pid;
      monitor_start = st.monitor_start;
    } else if (st.monitor_pid != monitor || st.monitor_start != monitor_start) {
      return last_code;  // the next run, started by the restart policy
    }
    last_code = st.exit_code;
    if (wait_gone(st.pid, st.pid_start, 1000)) ::usleep(20000);  // the monitor records the exit next
  }
}

// A process container's cgroup holds its processes; a VM container's holds
// its VM worker (QEMU), so freezing it stops the whole VM, vCPUs and
// devices: no guest code runs until it thaws (docs/vm-isolation.md).
Result<void> Engine::pause(const ContainerRecord& rec, bool paused) {
  FileLock guard = TRY(containers_.lock(rec.id));
  ContainerState st = containers_.state(rec.id);
  if (paused && st.status != "running") return fail(make_error("pause", rec.name, "it is not running"));
  if (!paused && st.status != "paused") return fail(make_error("unpause", rec.name, "it is not paused"));
  Cgroup cg = TRY(Cgroup::open("isola/" + rec.id));
  TRYV(cg.freeze(paused));
  st.status = paused ? "paused" : "running";
  TRYV(containers_.write_state(rec.id, st));
  record_container_event(containers_.root(), rec, paused ? "pause" : "unpause");
  return {};
}

Result<std::vector<pid_t>> Engine::pids(const ContainerRecord& rec) {
  ContainerState st = containers_.state(rec.id);
  if (st.status != "running" && st.status != "paused")
    return fail(make_error("list processes", rec.name, "the container is not running"));
  if (rec.isolation == Isolation::vm)
    return fail(make_error("list processes", rec.name, "a VM's processes are not host processes; use isola top"));
  Cgroup cg = TRY(Cgroup::open("isola/" + rec.id));
  return cg.pids();
}

Result<void> Engine::cleanup(const ContainerRecord& rec) {
  // The monitor does these, unless it was killed. Only a container with
  // published ports has a table of its own.
  if (auto net = load_container_network(containers_, rec.id); net) {
    if (!net->ports.empty()) (void)unpublish_ports(rec.id);
    unplug_endpoints(rec.id, *net);
  }
  if (auto cg = Cgroup::open("isola/" + rec.id); cg) {
    (void)cg->kill_all(SIGKILL);
    TRYV(cg->destroy());
  }
  return containers_.unmount_rootfs(rec.id);
}

Result<void> Engine::remove(const ContainerRecord& rec, bool force) {
  ContainerState st = containers_.state(rec.id);
  if (st.status == "restarting" && !force)
    return fail(make_error("remove container", rec.name, "it is restarting; stop it first or use -f"));
  if (force) stopped_by_user(rec, st);
  if (st.status == "running" || st.status == "paused") {
    if (!force)
      return fail(make_error("remove container", rec.name, "it is running; stop it first or use -f"));
    if (st.status == "paused") (void)pause(rec, false);
    if (auto cg = Cgroup::open("isola/" + rec.id); cg) (void)cg->kill_all(SIGKILL);
    ::kill(st.pid, SIGKILL);
    wait_gone(st.pid, st.pid_start, 10000);
    wait_gone(st.monitor_pid, st.monitor_start, 5000);
  }
  if (process_matches(st.monitor_pid, st.monitor_start)) ::kill(st.monitor_pid, SIGKILL);
  TRYV(cleanup(rec));
  auto net = load_container_network(containers_, rec.id);
  // A --rm container's monitor may have removed it (and said so) already.
  bool ours = path_exists(containers_.dir(rec.id));
  TRYV(containers_.remove(rec.id));
  if (ours) record_container_event(containers_.root(), rec, "destroy");
  if (net) forget_container_network(containers_, rec.id, *net);
  return {};
}

ContainerPrune Engine::prune_containers() {
  ContainerPrune out;
  auto list = containers_.list();
  if (!list) {
    out.errors.push_back(list.error());
    return out;
  }
  for (const ContainerRecord& r : *list) {
    // Every container that is not running, as docker: also those created
    // and never started (or whose start crashed).
    std::string status = containers_.state(r.id).status;
    if (status == "running" || status == "paused" || status == "restarting") continue;
    if (auto rm = remove(r, false); !rm) out.errors.push_back(rm.error());
    else out.removed.push_back(r);
  }
  if (auto stale = containers_.remove_stale(); !stale) out.errors.push_back(stale.error());
  networks_.sweep_leases([&](const std::string& id) { return containers_.resolve(id).has_value(); });
  return out;
}

}  // namespace isola
