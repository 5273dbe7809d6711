// Process isolation on the real kernel: these tests run containers from a
// busybox rootfs and look at what the container's process sees. They need
// root; without it they are skipped.
#include "runtime/container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/fs.h"
#include "runtime/cgroup.h"
#include "runtime/security.h"

using namespace isola;

namespace {

// A directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    auto dir = make_temp_dir("/tmp", "isola-container-test-");
    if (dir) path_ = *dir;
    // Readable by the unprivileged host uids a user namespace maps to.
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    if (!path_.empty()) (void)remove_tree(path_);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_join(path_, rel); }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
  auto w = write_file_atomic(path, text, mode);
  ASSERT_TRUE(w) << w.error().message();
}

// A busybox rootfs: /bin/busybox and its applets, the usual empty mount points.
void make_rootfs(const std::string& root) {
  for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "root"})
    ASSERT_TRUE(mkdir_p(path_join(root, d)));
  auto busybox = read_file("/bin/busybox");
  ASSERT_TRUE(busybox) << busybox.error().message();
  write_text(path_join(root, "bin/busybox"), *busybox, 0755);
  for (const char* applet : {"sh", "cat", "ls", "echo", "sleep", "id", "hostname", "mount", "touch", "wc", "head",
                             "test", "ps", "readlink", "stat", "tty", "true", "grep"})
    ASSERT_EQ(::symlink("busybox", path_join(root, std::string("bin/") + applet).c_str()), 0);
  write_text(path_join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n");
  write_text(path_join(root, "etc/group"), "root:x:0:\nuser:x:1000:\n");
  write_text(path_join(root, "etc/hostname"), "from-the-image\n");
}

// What docker would ask for, minus capabilities and seccomp.
RuntimeSpec docker_like_spec(const std::string& rootfs, std::vector<std::string> args) {
  RuntimeSpec s;
  s.process.args = std::move(args);
  s.process.env = {"PATH=/bin", "HOME=/root"};
  s.root_path = rootfs;
  s.hostname = "isola-test";
  s.mounts = {
      {"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}},
      {"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}},
      {"/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
      {"/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
      {"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}},
      {"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}},
  };
  for (const char* ns : {"pid", "network", "ipc", "uts", "mount"}) s.linux.namespaces.push_back({ns, ""});
  s.linux.masked_paths = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware",
                          "/proc/scsi"};
  s.linux.readonly_paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
  return s;
}

std::string read_all(int fd) {
  auto r = read_fd(fd, "pipe");
  return r ? *r : "(read failed)";
}

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      read.reset(p[0]);
      write.reset(p[1]);
    }
  }
};

struct Finished {
  int status = -1;
  std::string out, err;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
};

int reap(pid_t pid) {
  int status = -1;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Runs the container to the end, capturing its stdout and stderr.
Result<Finished> run(const RuntimeSpec& spec) {
  Pipe out, err;
  StdioFds io;
  io.out = out.write.get();
  io.err = err.write.get();
  auto spawned = spawn_container(spec, {}, io);
  out.write.reset();
  err.write.reset();
  if (!spawned) return fail(spawned.error());
  Finished r;
  r.out = read_all(out.read.get());
  r.err = read_all(err.read.get());
  r.status = reap(spawned->pid);
  return r;
}

// True when this process has no child left (none leaked, none unreaped).
bool no_children() { return ::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD; }

void remove_test_cgroup_parent() {
  if (auto parent = Cgroup::open("isola-unit-test")) (void)parent->destroy();
}

class Container : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_FALSE(tmp_.path().empty());
    rootfs_ = tmp_ / "rootfs";
    ASSERT_NO_FATAL_FAILURE(make_rootfs(rootfs_));
  }

  RuntimeSpec spec(std::vector<std::string> args) { return docker_like_spec(rootfs_, std::move(args)); }
  RuntimeSpec shell(const std::string& script) { return spec({"sh", "-c", script}); }

  Finished must_run(const RuntimeSpec& s) {
    auto r = run(s);
    EXPECT_TRUE(r) << r.error().message();
    if (!r) return {};
    EXPECT_EQ(r->exit_code(), 0) << "stderr: " << r->err;
    return *r;
  }

  TempDir tmp_;
  std::string rootfs_;
};

TEST_F(Container, RunsAsPidOneWithItsOwnHostname) {
  Finished r = must_run(shell("echo $$; hostname; cat /proc/sys/kernel/hostname"));
  EXPECT_EQ(r.out, "1\nisola-test\nisola-test\n");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_NE(std::string(host), "isola-test");
}

TEST_F(Container, SeesOnlyItsOwnProcesses) {
  Finished r = must_run(shell("for p in /proc/[0-9]*; do echo ${p#/proc/}; done"));
  std::vector<std::string> pids;
  for (size_t start = 0, end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
    pids.push_back(r.out.substr(start, end - start));
  ASSERT_FALSE(pids.empty());
  EXPECT_EQ(pids[0], "1");
  EXPECT_LE(pids.size(), 2u) << r.out;  // the shell, maybe a child of it
  for (const auto& p : pids) EXPECT_LT(std::stoi(p), 10) << r.out;
}

TEST_F(Container, MasksAndProtectsKernelFiles) {
  Finished r = must_run(shell(
      "head -c 64 /proc/kcore | wc -c; ls /sys/firmware | wc -l;"
      "(echo nope > /proc/sys/kernel/hostname) 2>/dev/null && echo sys-writable || echo sys-read-only;"
      "(echo 1 > /proc/sysrq-trigger) 2>/dev/null && echo sysrq-writable || echo sysrq-read-only;"
      "touch /sys/x 2>/dev/null && echo sysfs-writable || echo sysfs-read-only"));
  // /proc/kcore reads as /dev/null; as root with every capability it would
  // otherwise hand out an ELF image of kernel memory.
  EXPECT_EQ(r.out, "0\n0\nsys-read-only\nsysrq-read-only\nsysfs-read-only\n");
}

TEST_F(Container, CreatesDevicesAndDevMounts) {
  Finished r = must_run(shell(
      "for d in null zero full random urandom tty; do test -c /dev/$d && echo -n \"$d \"; done; echo;"
      "readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; test -e /dev/core || echo no-core;"
      "echo hi > /dev/null && head -c 4 /dev/zero | wc -c;"
      "stat -c %a /dev/null; test -d /dev/pts -a -d /dev/shm -a -d /dev/mqueue && echo dirs"));
  EXPECT_EQ(r.out,
            "null zero full random urandom tty \n/proc/self/fd\n/proc/self/fd/0\npts/ptmx\nno-core\n4\n666\ndirs\n");
}

TEST_F(Container, ReadOnlyRoot) {
  RuntimeSpec s = shell(
      "touch /x 2>/dev/null && echo root-writable || echo root-read-only; touch /dev/shm/y && echo shm-ok");
  s.root_readonly = true;
  Finished r = must_run(s);
  EXPECT_EQ(r.out, "root-read-only\nshm-ok\n");
  EXPECT_FALSE(path_exists(path_join(rootfs_, "x")));

  s.root_readonly = false;
  r = must_run(s);
  EXPECT_EQ(r.out, "root-writable\nshm-ok\n");
}

TEST_F(Container, MountsVolumes) {
  std::string vol = tmp_ / "vol", ro = tmp_ / "ro", file = tmp_ / "config.txt";
  ASSERT_TRUE(mkdir_p(vol));
  ASSERT_TRUE(mkdir_p(ro));
  write_text(path_join(vol, "hello"), "from-host\n");
  write_text(path_join(ro, "keep"), "kept\n");
  write_text(file, "a file\n");
  RuntimeSpec s = shell(
      "cat /data/hello; echo new > /data/created;"
      "cat /deep/ro/keep; (echo x > /deep/ro/keep) 2>/dev/null && echo ro-writable || echo ro-refused;"
      "cat /etc/app/config.txt");
  s.mounts.push_back({"/data", "bind", vol, {"rbind", "rw"}});
  s.mounts.push_back({"/deep/ro", "bind", ro, {"rbind", "ro", "nosuid"}});
  s.mounts.push_back({"/etc/app/config.txt", "bind", file, {"bind", "ro"}});
  Finished r = must_run(s);
  EXPECT_EQ(r.out, "from-host\nkept\nro-refused\na file\n");
  auto created = read_file(path_join(vol, "created"));
  ASSERT_TRUE(created);
  EXPECT_EQ(*created, "new\n");
  EXPECT_EQ(*read_file(path_join(ro, "keep")), "kept\n");
  // Missing mount points were made inside the rootfs, a file for a file.
  EXPECT_TRUE(is_directory(path_join(rootfs_, "deep/ro")));
  struct stat st;
  ASSERT_EQ(::lstat(path_join(rootfs_, "etc/app/config.txt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(Container, SymlinksInTheImageCannotRedirectMountsToTheHost) {
  std::string vol = tmp_ / "vol";
  ASSERT_TRUE(mkdir_p(vol));
  write_text(path_join(vol, "marker"), "volume\n");
  // Host paths the image points at: one missing (a naive mkdir -p would create
  // it on the host), one existing (a naive mount would cover it).
  std::string host_missing = tmp_ / "host-missing/sub";
  std::string host_existing = tmp_ / "host-existing";
  ASSERT_TRUE(mkdir_p(host_existing));
  ASSERT_EQ(::symlink(host_missing.c_str(), path_join(rootfs_, "evil").c_str()), 0);
  ASSERT_EQ(::symlink(host_existing.c_str(), path_join(rootfs_, "evil2").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../..", path_join(rootfs_, "tmp/up").c_str()), 0);

  RuntimeSpec s = shell("cat /evil/marker /evil2/marker /tmp/up/escape/marker");
  s.mounts.push_back({"/evil", "bind", vol, {"rbind"}});
  s.mounts.push_back({"/evil2", "bind", vol, {"rbind"}});
  s.mounts.push_back({"/tmp/up/escape", "bind", vol, {"rbind"}});
  Finished r = must_run(s);
  // The container sees its volumes through the links...
  EXPECT_EQ(r.out, "volume\nvolume\nvolume\n");
  // ...because they were resolved inside the rootfs, not on the host.
  EXPECT_FALSE(path_exists(tmp_ / "host-missing"));
  EXPECT_TRUE(is_directory(path_join(rootfs_, host_missing)));
  EXPECT_TRUE(is_directory(path_join(rootfs_, host_existing)));
  EXPECT_TRUE(is_directory(path_join(rootfs_, "escape")));
  EXPECT_FALSE(path_exists("/escape"));
}

TEST_F(Container, MissingCommandIsAnExecError) {
  auto r = run(spec({"no-such-command"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().op, "exec");
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_EQ(r.error().exit_code, 127);
  EXPECT_NE(r.error().message().find("no-such-command"), std::string::npos) << r.error().message();
  EXPECT_TRUE(no_children());

  // Not executable: 126, like docker.
  r = run(spec({"/etc/passwd"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().op, "exec");
  EXPECT_EQ(r.error().err, EACCES);
  EXPECT_EQ(r.error().exit_code, 126);
  EXPECT_TRUE(no_children());
}

TEST_F(Container, PathComesFromTheContainerEnvironment) {
  ASSERT_TRUE(mkdir_p(path_join(rootfs_, "opt/tools")));
  write_text(path_join(rootfs_, "opt/tools/mytool"), "#!/bin/sh\necho found\n", 0755);
  RuntimeSpec s = spec({"mytool"});
  s.process.env = {"PATH=/nowhere:/opt/tools"};
  EXPECT_EQ(must_run(s).out, "found\n");
  s.process.env = {"PATH=/bin"};
  auto r = run(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
}

TEST_F(Container, SetUpFailuresNameTheStepAndLeaveNothing) {
  RuntimeSpec s = shell("true");
  s.mounts.push_back({"/scratch", "tmpfs", "tmpfs", {"bogus-option=1"}});
  auto r = run(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_NE(r.error().message().find("mount tmpfs '/scratch'"), std::string::npos) << r.error().message();
  EXPECT_TRUE(no_children());

  s = shell("true");
  s.process.cwd = "relative";
  r = run(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("process.cwd"), std::string::npos);

  s = shell("true");
  s.linux.namespaces = {{"pid", ""}};
  r = run(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("mount namespace"), std::string::npos);
  EXPECT_TRUE(no_children());
}

TEST_F(Container, CreatesTheWorkingDirectory) {
  RuntimeSpec s = shell("pwd");
  s.process.cwd = "/srv/app";
  s.root_readonly = true;  // created before / turns read-only
  EXPECT_EQ(must_run(s).out, "/srv/app\n");
}

TEST_F(Container, SysctlsAndLoopback) {
  RuntimeSpec s = shell("cat /proc/sys/net/ipv4/ip_forward /sys/class/net/lo/flags; ls /sys/class/net");
  s.linux.sysctl["net.ipv4.ip_forward"] = "1";
  Finished r = must_run(s);
  ASSERT_EQ(r.out.substr(0, 2), "1\n") << r.out;
  unsigned long flags = std::strtoul(r.out.substr(2).c_str(), nullptr, 16);
  EXPECT_TRUE(flags & 0x1) << "lo is not up: " << r.out;  // IFF_UP
  EXPECT_EQ(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1), "lo\n");  // a fresh network namespace

  s.linux.sysctl = {{"../../etc/passwd", "x"}};
  EXPECT_FALSE(run(s));
}

TEST_F(Container, UsersCapabilitiesAndSeccomp) {
  // seccomp with and without no_new_privs: the two orders of the security steps.
  for (bool nnp : {false, true}) {
    RuntimeSpec s = shell("id -u; id -g; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status");
    s.process.uid = 1000;
    s.process.gid = 1000;
    s.process.capabilities = default_capabilities();
    s.process.no_new_privileges = nnp;
    s.linux.seccomp = default_seccomp_profile();
    Finished r = must_run(s);
    EXPECT_EQ(r.out, std::string("1000\n1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t") + (nnp ? "1" : "0") +
                         "\nSeccomp:\t2\n")
        << "nnp=" << nnp << " stderr: " << r.err;
  }
  // Root with docker's capabilities cannot mount, even inside its namespace.
  RuntimeSpec s = shell("mount -t tmpfs t /tmp 2>/dev/null && echo mounted || echo refused");
  s.process.capabilities = default_capabilities();
  s.linux.seccomp = default_seccomp_profile();
  EXPECT_EQ(must_run(s).out, "refused\n");
}

TEST_F(Container, UserNamespace) {
  RuntimeSpec s = shell("id -u; cat /proc/self/uid_map; test -c /dev/null && echo devnull; echo $$");
  s.linux.namespaces.push_back({"user", ""});
  s.linux.uid_mappings = {{0, 100000, 65536}};
  s.linux.gid_mappings = {{0, 100000, 65536}};
  Finished r = must_run(s);
  EXPECT_EQ(r.out, "0\n         0     100000      65536\ndevnull\n1\n") << r.err;

  // exec joins the user namespace too, and is root of it.
  s.process.args = {"sleep", "1000"};
  auto init = spawn_container(s, {}, {});
  ASSERT_TRUE(init) << init.error().message();
  Pipe out;
  StdioFds io;
  io.out = out.write.get();
  ProcessSpec p;
  p.args = {"sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/by-exec && echo wrote"};
  p.env = {"PATH=/bin"};
  auto pid = exec_in_container(init->pid, s, p, io);
  out.write.reset();
  ASSERT_TRUE(pid) << pid.error().message();
  // The rootfs belongs to the host's root, which the namespace does not map.
  EXPECT_EQ(read_all(out.read.get()), "0\n         0     100000      65536\n");
  EXPECT_EQ(reap(*pid), 256);
  ::kill(init->pid, SIGKILL);
  reap(init->pid);

  s.linux.uid_mappings.clear();
  auto bad = run(s);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("uidMappings"), std::string::npos);
}

TEST_F(Container, WaitsForStart) {
  Pipe out;
  StdioFds io;
  io.out = out.write.get();
  SpawnOptions opts;
  opts.wait_for_start = true;
  auto spawned = spawn_container(shell("echo started"), opts, io);
  out.write.reset();
  ASSERT_TRUE(spawned) << spawned.error().message();
  ASSERT_TRUE(spawned->start_fd);

  // Ready but not yet exec'd: still our binary, nothing printed.
  char self[PATH_MAX] = {}, child[PATH_MAX] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof self - 1), 0);
  ASSERT_GT(::readlink(("/proc/" + std::to_string(spawned->pid) + "/exe").c_str(), child, sizeof child - 1), 0);
  EXPECT_STREQ(self, child);
  struct pollfd p {out.read.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 300), 0);

  auto started = start_container(*spawned);
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_FALSE(spawned->start_fd);
  EXPECT_EQ(read_all(out.read.get()), "started\n");
  EXPECT_EQ(reap(spawned->pid), 0);
}

TEST_F(Container, NeverStartedExitsQuietly) {
  SpawnOptions opts;
  opts.wait_for_start = true;
  Pipe out;
  StdioFds io;
  io.out = out.write.get();
  auto spawned = spawn_container(shell("echo started"), opts, io);
  out.write.reset();
  ASSERT_TRUE(spawned) << spawned.error().message();
  spawned->start_fd.reset();  // the monitor went away
  EXPECT_EQ(reap(spawned->pid), 0);
  EXPECT_EQ(read_all(out.read.get()), "");
}

TEST_F(Container, CreateReportsAMissingCommand) {
  SpawnOptions opts;
  opts.wait_for_start = true;
  // As runc does: a command that is not there fails create, not start.
  auto spawned = spawn_container(spec({"not-there"}), opts, {});
  ASSERT_FALSE(spawned);
  EXPECT_EQ(spawned.error().op, "exec");
  EXPECT_EQ(spawned.error().err, ENOENT);
  EXPECT_EQ(spawned.error().exit_code, 127);
  write_text(path_join(rootfs_, "plain"), "not a program\n", 0644);
  auto plain = spawn_container(spec({"/plain"}), opts, {});
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().err, EACCES);
  EXPECT_EQ(plain.error().exit_code, 126);
  EXPECT_TRUE(no_children());
}

TEST_F(Container, StartReportsExecErrors) {
  SpawnOptions opts;
  opts.wait_for_start = true;
  write_text(path_join(rootfs_, "garbage"), std::string("\x01\x02\x03 not an executable format\n"), 0755);
  auto spawned = spawn_container(spec({"/garbage"}), opts, {});
  // Whether the file can be executed is only known at exec, after start.
  ASSERT_TRUE(spawned) << spawned.error().message();
  auto started = start_container(*spawned);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().op, "exec");
  EXPECT_EQ(started.error().err, ENOEXEC);
  int status = reap(spawned->pid);
  EXPECT_TRUE(WIFEXITED(status) || WIFSIGNALED(status));
  EXPECT_TRUE(no_children());
}

TEST_F(Container, TerminalBecomesTheConsole) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  UniqueFd master_fd(master);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  UniqueFd slave(::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(slave);

  // Field 7 of stat is the controlling terminal (0: none).
  RuntimeSpec s = shell("test -t 0 -a -t 1 -a -t 2 && echo tty; test -c /dev/console && echo console;"
                        "read -r a b c d e f g rest < /proc/self/stat; test \"$g\" != 0 && echo ctty");
  s.process.terminal = true;
  StdioFds io;
  io.console = slave.get();
  auto spawned = spawn_container(s, {}, io);
  slave.reset();
  ASSERT_TRUE(spawned) << spawned.error().message();
  std::string out;
  char buf[1024];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(reap(spawned->pid), 0) << out;
  EXPECT_NE(out.find("tty\r\nconsole\r\nctty\r\n"), std::string::npos) << out;
}

TEST_F(Container, ExecJoinsTheRunningContainer) {
  RuntimeSpec s = spec({"sleep", "1000"});
  auto init = spawn_container(s, {}, {});
  ASSERT_TRUE(init) << init.error().message();

  Pipe out;
  StdioFds io;
  io.out = out.write.get();
  ProcessSpec p;
  p.args = {"sh", "-c", "cat /proc/1/comm; echo $$; hostname; pwd"};
  p.env = {"PATH=/bin"};
  p.cwd = "/tmp";
  auto pid = exec_in_container(init->pid, s, p, io);
  out.write.reset();
  ASSERT_TRUE(pid) << pid.error().message();
  std::string text = read_all(out.read.get());
  // A direct child of ours, so it can be waited for.
  EXPECT_EQ(reap(*pid), 0);
  ASSERT_EQ(text.substr(0, 6), "sleep\n") << text;
  std::string rest = text.substr(6);
  int inner_pid = std::atoi(rest.c_str());
  EXPECT_GT(inner_pid, 1);
  EXPECT_NE(inner_pid, *pid);  // its pid inside is not the host's
  EXPECT_EQ(rest.substr(rest.find('\n') + 1), "isola-test\n/tmp\n");

  p.args = {"not-there"};
  auto missing = exec_in_container(init->pid, s, p, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().op, "exec");
  EXPECT_EQ(missing.error().err, ENOENT);

  ::kill(init->pid, SIGKILL);
  reap(init->pid);
  EXPECT_TRUE(no_children());
}

TEST_F(Container, JoinsNamespacesByPath) {
  auto first = spawn_container(spec({"sleep", "1000"}), {}, {});
  ASSERT_TRUE(first) << first.error().message();
  const std::string ns = "/proc/" + std::to_string(first->pid) + "/ns/";

  RuntimeSpec s = shell("cat /proc/1/comm; echo $$; hostname");
  s.hostname.clear();  // the joined uts namespace keeps its name
  s.linux.namespaces = {{"pid", ns + "pid"}, {"uts", ns + "uts"}, {"network", ns + "net"}, {"ipc", ""}, {"mount", ""}};
  Finished r = must_run(s);
  EXPECT_EQ(r.out.substr(0, 6), "sleep\n") << r.out;
  EXPECT_NE(r.out.substr(6, 2), "1\n");
  EXPECT_EQ(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1), "isola-test\n");
  // Our own children are born in our pid namespace again.
  char a[64] = {}, b[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/pid", a, sizeof a - 1), 0);
  ASSERT_GT(::readlink("/proc/self/ns/pid_for_children", b, sizeof b - 1), 0);
  EXPECT_STREQ(a, b);

  // As runc: the hostname is set in the uts namespace joined, unless that
  // is the host's.
  s.hostname = "renamed";
  Finished renamed = must_run(s);
  EXPECT_EQ(renamed.out.substr(renamed.out.rfind('\n', renamed.out.size() - 2) + 1), "renamed\n");
  s.linux.namespaces[1].path = "/proc/self/ns/uts";
  EXPECT_FALSE(run(s));
  ::kill(first->pid, SIGKILL);
  reap(first->pid);
}

TEST_F(Container, CgroupAndCgroupNamespace) {
  const std::string group = "isola-unit-test/" + random_hex(8);
  RuntimeSpec s = spec({"sleep", "1000"});
  s.linux.cgroups_path = group;
  s.linux.namespaces.push_back({"cgroup", ""});
  s.linux.resources.pids_limit = 50;
  auto init = spawn_container(s, {}, {});
  ASSERT_TRUE(init) << init.error().message();

  auto host_view = read_file("/proc/" + std::to_string(init->pid) + "/cgroup");
  ASSERT_TRUE(host_view);
  EXPECT_NE(host_view->find(":pids:/" + group + "\n"), std::string::npos) << *host_view;

  Pipe out;
  StdioFds io;
  io.out = out.write.get();
  ProcessSpec p;
  p.args = {"sh", "-c", "grep ':pids:' /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || true"};
  p.env = {"PATH=/bin"};
  auto pid = exec_in_container(init->pid, s, p, io);
  out.write.reset();
  ASSERT_TRUE(pid) << pid.error().message();
  std::string text = read_all(out.read.get());
  EXPECT_EQ(reap(*pid), 0);
  // Inside its cgroup namespace the container's group is the root.
  EXPECT_NE(text.find(":pids:/\n"), std::string::npos) << text;

  ::kill(init->pid, SIGKILL);
  reap(init->pid);
  auto cg = Cgroup::open(group);
  ASSERT_TRUE(cg) << cg.error().message();
  EXPECT_TRUE(cg->destroy());
  remove_test_cgroup_parent();
}

TEST_F(Container, CgroupMountShowsTheContainersGroup) {
  const std::string group = "isola-unit-test/" + random_hex(8);
  RuntimeSpec s = shell(
      "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max;"
      "touch /sys/fs/cgroup/x 2>/dev/null || echo ro");
  s.linux.cgroups_path = group;
  s.linux.resources.pids_limit = 42;
  s.mounts.push_back({"/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}});
  for (bool cgroupns : {false, true}) {
    if (cgroupns) s.linux.namespaces.push_back({"cgroup", ""});
    Finished r = must_run(s);
    EXPECT_EQ(r.out, "42\nro\n") << "cgroupns=" << cgroupns << r.err;
    auto cg = Cgroup::open(group);
    ASSERT_TRUE(cg) << cg.error().message();
    EXPECT_TRUE(cg->destroy());
  }
  remove_test_cgroup_parent();
}

}  // namespace
