// Commands that start processes: run, create, start, attach, exec.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>

#include "cli/command_tree.h"
#include "cli/commands.h"
#include "cli/lifecycle_flags.h"
#include "cli/run_flags.h"
#include "common/log.h"
#include "cli/terminal.h"
#include "common/unix_socket.h"
#include "common/fs.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/spec_builder.h"
#include "engine/volumes.h"

namespace isola::cli {

namespace {

struct RunArgs {
  RunOptions opts;
  std::vector<std::string> volumes, mounts, labels, positional;
  std::string entrypoint, memory, isolation = "process", pull = "missing";
  bool entrypoint_set = false;
  double cpus = 0;
  int64_t pids_limit = 0;
  std::vector<std::string> security_opts;
  ExtraRunArgs extra;
  LifecycleArgs lifecycle;
};

Result<RunOptions> finish_options(RunArgs& a) {
  RunOptions o = a.opts;
  if (a.positional.empty()) return fail(make_error("run", "", "an image name is required"));
  if (a.positional[0].starts_with("-"))
    return fail(make_error("run", a.positional[0], "unknown flag; see 'isola run --help'"));
  o.image = a.positional[0];
  o.command.assign(a.positional.begin() + 1, a.positional.end());
  if (a.entrypoint_set) {
    if (a.entrypoint.empty()) o.entrypoint = std::vector<std::string>{};
    else o.entrypoint = std::vector<std::string>{a.entrypoint};
  }
  for (const std::string& v : a.volumes) o.volumes.push_back(TRY(parse_volume(v)));
  for (const std::string& m : a.mounts) o.volumes.push_back(TRY(parse_mount(m)));
  for (const std::string& l : a.labels) {
    size_t eq = l.find('=');
    o.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  if (!a.memory.empty()) o.memory = TRY(parse_size(a.memory));
  if (a.cpus < 0) return fail(make_error("run", "--cpus", "must be positive"));
  if (a.cpus > 0) o.cpus = a.cpus;
  if (a.pids_limit != 0) o.pids_limit = a.pids_limit;
  if (a.isolation == "process" || a.isolation == "default") o.isolation = Isolation::process;
  else if (a.isolation == "vm" || a.isolation == "hyperv") o.isolation = Isolation::vm;
  else return fail(make_error("run", a.isolation, "unknown --isolation; use process or vm (alias hyperv)"));
  if (o.vm_boot == "auto") o.vm_boot.clear();
  if (!o.vm_boot.empty() && o.vm_boot != "cold")
    return fail(make_error("run", "--vm-boot " + o.vm_boot, "use auto (a VM template when one fits) or cold"));
  if (!o.vm_boot.empty() && o.isolation != Isolation::vm)
    return fail(make_error("run", "--vm-boot", "only VM containers boot; add --isolation=vm"));
  for (const std::string& s : a.security_opts) {
    if (s == "no-new-privileges" || s == "no-new-privileges:true" || s == "no-new-privileges=true")
      o.no_new_privileges = true;
    else if (s.rfind("seccomp=", 0) == 0 || s.rfind("seccomp:", 0) == 0)
      o.seccomp = s.substr(8);
    else
      return fail(make_error("run", s, "unknown --security-opt; use no-new-privileges or seccomp=unconfined|FILE"));
  }
  TRYV(finish_extra_run_flags(a.extra, o));
  TRYV(finish_lifecycle_flags(a.lifecycle, o));
  return o;
}

// After create: the --cidfile. When it cannot be written the container goes
// again, as if create had failed.
Result<void> write_cid(Engine& engine, const RunOptions& o, const ContainerRecord& rec) {
  if (o.cidfile.empty()) return {};
  auto written = write_cidfile(o.cidfile, rec.id);
  if (!written) {
    // Nothing of the container stays: its anonymous volumes go with it.
    (void)engine.remove(rec, true);
    remove_anonymous_volumes(engine.containers().root(), rec);
  }
  return written;
}

// How `run` attaches: -a picks the streams (stdout and stderr when none is
// named; stdin needs -i, as in docker), and with --sig-proxy a non-tty
// session hands the signals it gets to the container.
AttachOptions run_attach(const RunOptions& o, Engine& engine, const ContainerRecord& rec, int null_fd) {
  auto named = [&](const char* s) { return o.attach.empty() || std::find(o.attach.begin(), o.attach.end(), s) != o.attach.end(); };
  AttachOptions at{o.interactive && named("stdin"), o.tty};
  if (!named("stdout")) at.out = null_fd;
  if (!named("stderr")) at.err = null_fd;
  if (o.sig_proxy && !o.tty) {
    at.signals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    at.on_signal = [&engine, &rec](int sig) { (void)engine.kill(rec, sig); };
  }
  return at;
}

void add_run_flags(CLI::App* cmd, RunArgs& a, bool with_run_only) {
  cmd->set_help_flag("--help", "Print this help");  // -h is --hostname, as in docker
  cmd->add_option("--name", a.opts.name, "Name of the container");
  cmd->add_option("-e,--env", a.opts.env, "Set an environment variable (KEY=VALUE or KEY)")->allow_extra_args(false);
  cmd->add_option("--env-file", a.opts.env_files, "Read environment variables from a file")->allow_extra_args(false);
  cmd->add_option("-w,--workdir", a.opts.workdir, "Working directory inside the container");
  cmd->add_option("-u,--user", a.opts.user, "User[:group] (name or number)");
  cmd->add_option("--entrypoint", a.entrypoint, "Override the image's entrypoint")
      ->each([&a](const std::string&) { a.entrypoint_set = true; });
  cmd->add_option("-h,--hostname", a.opts.hostname, "Container host name");
  cmd->add_option("-v,--volume", a.volumes, "Mount a host path or volume: /host|NAME:/container[:ro], or /container")
      ->allow_extra_args(false);
  cmd->add_option("--mount", a.mounts, "Mount: type=bind|volume|tmpfs,source=,target=[,readonly][,...]")
      ->allow_extra_args(false);
  cmd->add_option("--volumes-from", a.opts.volumes_from, "Mount the volumes of a container: CONTAINER[:ro|rw]")
      ->allow_extra_args(false);
  cmd->add_option("--tmpfs", a.opts.tmpfs, "Mount a tmpfs: /path[:options]")->allow_extra_args(false);
  cmd->add_flag("--read-only", a.opts.read_only, "Mount the root filesystem read-only");
  cmd->add_option("-m,--memory", a.memory, "Memory limit (e.g. 256m)");
  cmd->add_option("--cpus", a.cpus, "Number of CPUs");
  cmd->add_option("--pids-limit", a.pids_limit, "Maximum number of processes");
  cmd->add_option("--cap-add", a.opts.cap_add, "Add a capability")->allow_extra_args(false);
  cmd->add_option("--cap-drop", a.opts.cap_drop, "Drop a capability")->allow_extra_args(false);
  cmd->add_flag("--privileged", a.opts.privileged, "All capabilities, no seccomp, no masked paths");
  cmd->add_option("--security-opt", a.security_opts, "no-new-privileges | seccomp=unconfined|FILE")->allow_extra_args(false);
  cmd->add_option("--network,--net", a.opts.network,
                  "bridge (default), a network's name, none, host, or container:ID (share its network)");
  cmd->add_option("-p,--publish", a.opts.publish, "Publish a port: [hostip:][hostport:]port[/tcp|udp]")
      ->allow_extra_args(false);
  cmd->add_flag("-P,--publish-all", a.opts.publish_all, "Publish every port the image exposes on a free host port");
  cmd->add_option("--userns", a.opts.userns, "auto: root in the container is an unprivileged host id");
  cmd->add_option("-l,--label", a.labels, "Set a label KEY=VALUE")->allow_extra_args(false);
  cmd->add_flag("--init", a.opts.init, "Run a tiny init as PID 1 that reaps zombies and forwards signals");
  cmd->add_option("--isolation", a.isolation, "process (default) or vm (alias hyperv)");
  cmd->add_option("--vm-boot", a.opts.vm_boot,
                  "VM isolation: auto (default: clone a VM template when one fits) or cold (always boot)");
  cmd->add_option("--pull", a.pull, "Pull the image: missing (default), always or never");
  cmd->add_flag("-t,--tty", a.opts.tty, "Allocate a pseudo-terminal");
  cmd->add_flag("-i,--interactive", a.opts.interactive, "Keep stdin open");
  add_extra_run_flags(cmd, a.extra, a.opts);
  add_lifecycle_flags(cmd, a.lifecycle);
  if (with_run_only) {
    cmd->add_flag("-d,--detach", a.opts.detach, "Run in the background and print the container ID");
    cmd->add_flag("--rm", a.opts.auto_remove, "Remove the container when it exits");
  } else {
    cmd->add_flag("--rm", a.opts.auto_remove, "Remove the container when it exits");
  }
  // IMAGE [COMMAND [ARG...]]: everything from the image name on is the container's.
  cmd->prefix_command();
  set_operands(*cmd, "IMAGE [COMMAND [ARG...]]");
}

int cmd_run(const Globals& g, RunArgs& a) {
  auto opts = finish_options(a);
  if (!opts) return report(opts.error());
  if (auto pulled = ensure_image(g, opts->image, a.pull); !pulled) return report(pulled.error());
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->create(*opts);
  if (!rec) return report(rec.error());
  if (auto cid = write_cid(*engine, *opts, *rec); !cid) return report(cid.error());
  if (opts->detach) {
    auto pid = engine->start(*rec, false);
    if (!pid) {
      int code = pid.error().exit_code ? pid.error().exit_code : kExitEngine;
      report(pid.error());
      return code;
    }
    std::cout << rec->id << "\n";
    return 0;
  }
  record_container_event(g.root, *rec, "attach");  // before start, as docker orders them
  auto pid = engine->start(*rec, true);
  if (!pid) {
    int code = pid.error().exit_code ? pid.error().exit_code : kExitEngine;
    report(pid.error());
    return code;
  }
  UniqueFd null_fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  auto code = attach_session(ContainerStore::socket_path(rec->id), run_attach(*opts, *engine, *rec, null_fd.get()));
  trace("cli: exit code received");
  if (!code) {
    int exit_code = code.error().exit_code ? code.error().exit_code : kExitEngine;
    report(code.error());
    // A process that never started must not stay "running" nor linger.
    (void)engine->wait(*rec);
    return exit_code;
  }
  if (*code == kDetached) return 0;  // it goes on running
  // Let the monitor finish recording (and removing, for --rm).
  (void)engine->wait(*rec);
  trace("cli: done");
  return *code;
}

int cmd_create(const Globals& g, RunArgs& a) {
  auto opts = finish_options(a);
  if (!opts) return report(opts.error());
  if (auto pulled = ensure_image(g, opts->image, a.pull); !pulled) return report(pulled.error());
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->create(*opts);
  if (!rec) return report(rec.error());
  if (auto cid = write_cid(*engine, *opts, *rec); !cid) return report(cid.error());
  std::cout << rec->id << "\n";
  return 0;
}

int cmd_start(const Globals& g, const std::vector<std::string>& refs, bool attach, bool interactive) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  int code = 0;
  for (const std::string& ref : refs) {
    auto rec = engine->containers().resolve(ref);
    if (!rec) {
      code = report(rec.error());
      continue;
    }
    if (attach) record_container_event(g.root, *rec, "attach");
    auto pid = engine->start(*rec, attach);
    if (!pid) {
      code = pid.error().exit_code ? pid.error().exit_code : kExitEngine;
      report(pid.error());
      continue;
    }
    if (attach) {
      auto exit_code = attach_session(ContainerStore::socket_path(rec->id), {interactive, rec->tty});
      if (!exit_code) return report(exit_code.error());
      if (*exit_code == kDetached) return 0;
      (void)engine->wait(*rec);
      return *exit_code;
    }
    std::cout << ref << "\n";
  }
  return code;
}

int cmd_attach(const Globals& g, const std::string& ref, bool no_stdin) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(ref);
  if (!rec) return report(rec.error());
  ContainerState st = engine->containers().state(rec->id);
  if (st.status != "running" && st.status != "paused")
    return report(make_error("attach", ref, "the container is not running"));
  record_container_event(g.root, *rec, "attach");
  auto code = attach_session(ContainerStore::socket_path(rec->id), {rec->interactive && !no_stdin, rec->tty});
  if (!code) return report(code.error());
  return *code == kDetached ? 0 : *code;
}

struct ExecArgs {
  std::vector<std::string> positional, env;
  std::string workdir, user;
  bool interactive = false, tty = false, detach = false;
};

// Relays between our terminal and the exec'd process's pty until it exits.
int relay_pty(int master, pid_t pid, bool interactive) {
  RawTerminal raw(STDIN_FILENO);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGWINCH);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  auto resize = [&] {
    winsize ws{};
    if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
  };
  resize();
  bool in_open = interactive;
  int status = 0;
  bool exited = false;
  for (;;) {
    pollfd fds[3] = {{master, POLLIN, 0}, {sfd.get(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = ::poll(fds, in_open ? 3 : 2, exited ? 50 : -1);
    if (n < 0 && errno != EINTR) break;
    if (n == 0 && exited) break;
    if (fds[1].revents) {
      signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) > 0) {
      }
      resize();
      if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    }
    if (in_open && fds[2].revents) {
      char buf[4096];
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r <= 0) in_open = false;
      else if (::write(master, buf, static_cast<size_t>(r)) < 0) in_open = false;
    }
    if (fds[0].revents) {
      char buf[65536];
      ssize_t r = ::read(master, buf, sizeof buf);
      if (r <= 0) {
        if (exited) break;
        if (::waitpid(pid, &status, 0) == pid) exited = true;
        break;
      }
      if (::write(STDOUT_FILENO, buf, static_cast<size_t>(r)) < 0) break;
    }
  }
  if (!exited) ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// exec in a VM: the guest agent runs the process; the monitor relays it.
int exec_in_vm(Engine& engine, const ContainerRecord& rec, const RuntimeSpec& spec, const ExecArgs& a) {
  if (!a.user.empty() && a.user.find_first_not_of("0123456789:") != std::string::npos)
    return report(make_error("exec", a.user, "with VM isolation give -u as numbers (uid[:gid])"));
  Json process = spec.to_json()["process"];
  process["args"] = Json(std::vector<std::string>(a.positional.begin() + 1, a.positional.end()));
  process["terminal"] = a.tty;
  if (!a.workdir.empty()) process["cwd"] = a.workdir;
  std::vector<std::string> env = spec.process.env;
  for (const std::string& kv : a.env) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
    env.push_back(kv);
  }
  process["env"] = env;
  if (!a.user.empty()) {
    unsigned long uid = std::stoul(a.user.substr(0, a.user.find(':')));
    unsigned long gid = a.user.find(':') == std::string::npos ? uid : std::stoul(a.user.substr(a.user.find(':') + 1));
    process["user"] = {{"uid", uid}, {"gid", gid}};
  }
  AttachOptions opts;
  opts.op = "exec";
  opts.stdin = a.interactive && !a.detach;
  opts.tty = a.tty && !a.detach;
  opts.extra = {{"process", process}};
  (void)engine;
  auto code = attach_session(ContainerStore::socket_path(rec.id), opts);
  if (!code) {
    int exit_code = code.error().exit_code ? code.error().exit_code : kExitEngine;
    report(code.error());
    return exit_code;
  }
  return *code == kDetached ? 0 : *code;
}

// The exec itself, once the container is known to run; its exit code.
int exec_and_wait(Engine& engine, const ContainerRecord& rec, ExecArgs& a) {
  auto text = read_file(engine.containers().spec_path(rec.id));
  if (!text) return report(text.error());
  auto j = parse_json(*text, "config.json");
  if (!j) return report(j.error());
  auto spec = RuntimeSpec::from_json(*j);
  if (!spec) return report(spec.error());
  if (rec.isolation == Isolation::vm) return exec_in_vm(engine, rec, *spec, a);

  ProcessSpec proc = spec->process;
  proc.args.assign(a.positional.begin() + 1, a.positional.end());
  proc.terminal = a.tty;
  for (const std::string& kv : a.env) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(proc.env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
    proc.env.push_back(kv);
  }
  if (!a.workdir.empty()) proc.cwd = a.workdir;
  if (!a.user.empty()) {
    auto user = resolve_user(engine.containers().rootfs_dir(rec.id), a.user);
    if (!user) return report(user.error());
    proc.uid = user->uid;
    proc.gid = user->gid;
    proc.additional_gids = user->additional_gids;
  }

  StdioFds stdio;
  UniqueFd master, console_ours, console_theirs;
  if (a.tty && !a.detach) {
    // The pty is made inside the container, so `tty` there names /dev/pts/N.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return report(sys_error("socketpair"));
    console_ours.reset(sv[0]);
    console_theirs.reset(sv[1]);
    stdio.console_socket = sv[1];
  } else if (!a.detach) {
    stdio.in = a.interactive ? STDIN_FILENO : -1;
    stdio.out = STDOUT_FILENO;
    stdio.err = STDERR_FILENO;
  }
  auto pid = engine.exec_process(rec, *spec, proc, stdio);
  if (!pid) {
    int code = pid.error().op == "exec" ? (pid.error().err == ENOENT ? 127 : 126) : kExitEngine;
    report(pid.error());
    return code;
  }
  if (a.detach) return 0;
  if (console_ours) {
    console_theirs.reset();
    auto m = recv_fd(console_ours.get());
    if (!m) {
      report(m.error());
      ::kill(*pid, SIGKILL);
      ::waitpid(*pid, nullptr, 0);
      return kExitEngine;
    }
    master = std::move(*m);
    return relay_pty(master.get(), *pid, a.interactive);
  }
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cmd_exec(const Globals& g, ExecArgs& a) {
  if (a.positional.size() < 2) return report(make_error("exec", "", "usage: isola exec CONTAINER COMMAND [ARG...]"));
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(a.positional[0]);
  if (!rec) return report(rec.error());
  ContainerState st = engine->containers().state(rec->id);
  if (st.status == "paused")
    return report(make_error("exec", a.positional[0], "the container is paused; unpause it first"));
  if (st.status != "running") return report(make_error("exec", a.positional[0], "the container is not running"));
  // docker's exec events, for both levels (health probes are execs too, as
  // in docker); a detached exec's end is not seen, so it has no exec_die.
  std::string exec_id = random_hex(64), command_line;
  for (size_t i = 1; i < a.positional.size(); ++i) command_line += (i > 1 ? " " : "") + a.positional[i];
  record_container_event(g.root, *rec, "exec_create: " + command_line, {{"execID", exec_id}});
  record_container_event(g.root, *rec, "exec_start: " + command_line, {{"execID", exec_id}});
  int code = exec_and_wait(*engine, *rec, a);
  if (!a.detach) record_container_event(g.root, *rec, "exec_die", {{"execID", exec_id}, {"exitCode", std::to_string(code)}});
  return code;
}


}  // namespace

void add_run_commands(CLI::App& app, Globals& g) {
  auto run_args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Create and start a container");
  add_run_flags(run, *run_args, true);
  run->callback([&g, run_args, run] {
    run_args->positional = run->remaining();
    g.action = [&g, run_args] { return cmd_run(g, *run_args); }; });

  auto create_args = std::make_shared<RunArgs>();
  auto* create = app.add_subcommand("create", "Create a container without starting it");
  add_run_flags(create, *create_args, false);
  create->callback([&g, create_args, create] {
    create_args->positional = create->remaining();
    g.action = [&g, create_args] { return cmd_create(g, *create_args); }; });

  struct StartArgs {
    std::vector<std::string> refs;
    bool attach = false, interactive = false;
  };
  auto sa = std::make_shared<StartArgs>();
  auto* start = app.add_subcommand("start", "Start created or stopped containers");
  start->add_flag("-a,--attach", sa->attach, "Attach to the container's output");
  start->add_flag("-i,--interactive", sa->interactive, "Attach stdin");
  start->add_option("CONTAINER", sa->refs)->required();
  start->callback([&g, sa] { g.action = [&g, sa] { return cmd_start(g, sa->refs, sa->attach, sa->interactive); }; });

  struct AttachArgs {
    std::string ref;
    bool no_stdin = false;
  };
  auto aa = std::make_shared<AttachArgs>();
  auto* attach = app.add_subcommand("attach", "Attach to a running container's stdio");
  attach->add_flag("--no-stdin", aa->no_stdin, "Do not attach stdin");
  attach->add_option("CONTAINER", aa->ref)->required();
  attach->callback([&g, aa] { g.action = [&g, aa] { return cmd_attach(g, aa->ref, aa->no_stdin); }; });

  auto ea = std::make_shared<ExecArgs>();
  auto* exec = app.add_subcommand("exec", "Run a command in a running container");
  exec->add_flag("-i,--interactive", ea->interactive, "Keep stdin open");
  exec->add_flag("-t,--tty", ea->tty, "Allocate a pseudo-terminal");
  exec->add_flag("-d,--detach", ea->detach, "Run in the background");
  exec->add_option("-e,--env", ea->env, "Set an environment variable")->allow_extra_args(false);
  exec->add_option("-w,--workdir", ea->workdir, "Working directory");
  exec->add_option("-u,--user", ea->user, "User[:group]");
  exec->prefix_command();
  set_operands(*exec, "CONTAINER COMMAND [ARG...]");
  exec->callback([&g, ea, exec] {
    ea->positional = exec->remaining();
    g.action = [&g, ea] { return cmd_exec(g, *ea); }; });
}

}  // namespace isola::cli
