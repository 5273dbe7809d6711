// Capabilities, users, no_new_privs, rlimits and seccomp, applied for real in
// forked children (run as root); each child reports what the kernel says
// (/proc/self/status, errno of refused calls) through a pipe.
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <map>
#include <string>

#include "common/fs.h"
#include "runtime/security.h"

using namespace isola;

namespace {

// Compiles (without the cache) and loads, in a child process.
Result<void> compile_and_load(const SeccompSpec& spec) {
  auto program = compile_seccomp(spec, "");
  if (!program) return fail(program.error());
  return load_seccomp(*program);
}

struct ChildReport {
  int status = -1;
  std::string out;
};

// Runs `body` in a forked child and returns what it wrote and how it ended.
ChildReport run_in_child(const std::function<std::string()>& body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string out = body();
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(p[1], out.data() + off, out.size() - off);
      if (n <= 0) ::_exit(3);
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  ChildReport r;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

// The value of a /proc/self/status field ("CapEff" → "00000000a80425fb").
std::string status_field(const std::string& name) {
  auto text = read_file("/proc/self/status");
  if (!text) return "?";
  std::string key = name + ":";
  size_t pos = text->find("\n" + key);
  if (pos == std::string::npos) return "?";
  pos += key.size() + 1;
  size_t end = text->find('\n', pos);
  std::string v = text->substr(pos, end - pos);
  v.erase(0, v.find_first_not_of(" \t"));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return v;
}

std::string caps_report() {
  std::string out;
  for (const char* f : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    out += std::string(f) + "=" + status_field(f) + "\n";
  return out;
}

std::map<std::string, std::string> parse_report(const std::string& out) {
  std::map<std::string, std::string> m;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    std::string line = out.substr(pos, end - pos);
    size_t eq = line.find('=');
    if (eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
    pos = end + 1;
  }
  return m;
}

std::string errno_of(long rc) { return rc == -1 ? std::to_string(errno) : "ok"; }

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

ProcessSpec process_with(Capabilities caps, uid_t uid = 0) {
  ProcessSpec p;
  p.uid = uid;
  p.gid = uid;
  p.capabilities = std::move(caps);
  return p;
}

constexpr const char* kDockerMask = "00000000a80425fb";

}  // namespace

TEST(Capabilities, DefaultIsDockersFourteen) {
  Capabilities c = default_capabilities();
  EXPECT_EQ(c.bounding.size(), 14u);
  EXPECT_EQ(c.effective, c.bounding);
  EXPECT_EQ(c.permitted, c.bounding);
  EXPECT_TRUE(c.inheritable.empty());
  EXPECT_TRUE(c.ambient.empty());
  EXPECT_TRUE(has(c.bounding, "CAP_NET_BIND_SERVICE"));
  EXPECT_FALSE(has(c.bounding, "CAP_SYS_ADMIN"));
}

TEST(Capabilities, AllFollowsTheKernel) {
  auto last = read_file("/proc/sys/kernel/cap_last_cap");
  ASSERT_TRUE(last);
  // Every capability the kernel knows that this process's bounding set
  // still holds (a sandboxed host may lack some).
  auto status = read_file("/proc/self/status");
  ASSERT_TRUE(status);
  uint64_t bnd = std::strtoull(status->c_str() + status->find("CapBnd:") + 7, nullptr, 16);
  size_t n = 0;
  for (size_t i = 0; i < std::min<size_t>(std::stoul(*last) + 1, 41); ++i) n += (bnd >> i) & 1;
  EXPECT_EQ(all_capabilities().bounding.size(), n);
  EXPECT_TRUE(has(all_capabilities().effective, "CAP_SYS_ADMIN"));
}

TEST(Capabilities, AdjustLikeDockerFlags) {
  auto r = adjust_capabilities(default_capabilities(), {"net_admin", "CAP_SYS_PTRACE"}, {"Chown", "CAP_KILL"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(has(r->bounding, "CAP_NET_ADMIN"));
  EXPECT_TRUE(has(r->effective, "CAP_SYS_PTRACE"));
  EXPECT_FALSE(has(r->permitted, "CAP_CHOWN"));
  EXPECT_FALSE(has(r->bounding, "CAP_KILL"));
  EXPECT_EQ(r->bounding.size(), 14u);

  auto only_chown = adjust_capabilities(default_capabilities(), {"CHOWN"}, {"ALL"});
  ASSERT_TRUE(only_chown);
  EXPECT_EQ(only_chown->bounding, std::vector<std::string>{"CAP_CHOWN"});
  EXPECT_EQ(only_chown->effective, std::vector<std::string>{"CAP_CHOWN"});

  auto everything = adjust_capabilities(default_capabilities(), {"all"}, {"SYS_ADMIN"});
  ASSERT_TRUE(everything);
  EXPECT_EQ(everything->bounding.size(), all_capabilities().bounding.size() - 1);
  EXPECT_FALSE(has(everything->bounding, "CAP_SYS_ADMIN"));
}

TEST(Capabilities, AdjustNamesAnUnknownCapability) {
  auto r = adjust_capabilities(default_capabilities(), {"NET_ADMIN", "CAP_FLY"}, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("CAP_FLY"), std::string::npos) << r.error().message();
  auto d = adjust_capabilities(default_capabilities(), {}, {"teleport"});
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("teleport"), std::string::npos) << d.error().message();
}

TEST(Capabilities, DefaultSetReachesTheKernel) {
  auto r = run_in_child([] {
    auto s = switch_user_and_capabilities(process_with(default_capabilities()));
    return s ? caps_report() : "error=" + s.error().message();
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapEff"], kDockerMask);
  EXPECT_EQ(m["CapPrm"], kDockerMask);
  EXPECT_EQ(m["CapBnd"], kDockerMask);
  EXPECT_EQ(m["CapInh"], "0000000000000000");
  EXPECT_EQ(m["CapAmb"], "0000000000000000");
}

TEST(Capabilities, DropAllAddChownLeavesOnlyChown) {
  auto caps = adjust_capabilities(default_capabilities(), {"CHOWN"}, {"ALL"});
  ASSERT_TRUE(caps);
  auto r = run_in_child([&] {
    auto s = switch_user_and_capabilities(process_with(*caps));
    return s ? caps_report() : "error=" + s.error().message();
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapEff"], "0000000000000001");
  EXPECT_EQ(m["CapBnd"], "0000000000000001");
}

TEST(Capabilities, NonRootUserHasNone) {
  auto r = run_in_child([] {
    ProcessSpec p = process_with(default_capabilities(), 65534);
    p.additional_gids = {10, 20};
    auto s = switch_user_and_capabilities(p);
    if (!s) return "error=" + s.error().message();
    return caps_report() + "Uid=" + status_field("Uid") + "\nGid=" + status_field("Gid") + "\nGroups=" +
           status_field("Groups") + "\n";
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapEff"], "0000000000000000");
  EXPECT_EQ(m["CapPrm"], "0000000000000000");
  EXPECT_EQ(m["CapBnd"], kDockerMask);
  EXPECT_EQ(m["Uid"], "65534\t65534\t65534\t65534");
  EXPECT_EQ(m["Gid"], "65534\t65534\t65534\t65534");
  EXPECT_EQ(m["Groups"], "10 20");
}

// The capability report of a child that switched to uid 1000 with `c`.
static std::map<std::string, std::string> caps_of_user(const Capabilities& c) {
  auto r = run_in_child([&] {
    auto s = switch_user_and_capabilities(process_with(c, 1000));
    return s ? caps_report() : "error=" + s.error().message();
  });
  return parse_report(r.out);
}

TEST(Capabilities, NonRootUserKeepsAmbientCapabilities) {
  Capabilities c = default_capabilities();
  c.inheritable = c.ambient = {"CAP_NET_BIND_SERVICE"};
  c.effective = c.permitted = {"CAP_NET_BIND_SERVICE"};
  auto m = caps_of_user(c);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapAmb"], "0000000000000400");
  EXPECT_EQ(m["CapEff"], "0000000000000400");
}

TEST(Capabilities, AmbientNotAlsoInheritableIsLeftOut) {
  // `runc spec` of runc 1.1: ambient, no inheritable. runc warns and goes on.
  Capabilities c;
  c.bounding = c.effective = c.permitted = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
  c.ambient = {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"};
  c.inheritable = {"CAP_NET_BIND_SERVICE"};
  EXPECT_EQ(unraisable_ambient(c), (std::vector<std::string>{"CAP_KILL", "CAP_CHOWN"}));
  auto m = caps_of_user(c);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapAmb"], "0000000000000400");
}

TEST(Capabilities, WithoutACapabilitySpecRootKeepsEverything) {
  auto r = run_in_child([] {
    ProcessSpec p;
    auto s = switch_user_and_capabilities(p);
    return s ? caps_report() : "error=" + s.error().message();
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapEff"], status_field("CapEff"));
}

TEST(Security, NoNewPrivileges) {
  auto r = run_in_child([] {
    std::string before = status_field("NoNewPrivs");
    auto s = set_no_new_privileges();
    return "before=" + before + "\nafter=" + status_field("NoNewPrivs") + "\nok=" + (s ? "1" : "0") + "\n";
  });
  auto m = parse_report(r.out);
  EXPECT_EQ(m["before"], "0");
  EXPECT_EQ(m["after"], "1");
  EXPECT_EQ(m["ok"], "1");
}

TEST(Security, Rlimits) {
  auto r = run_in_child([] {
    auto s = apply_rlimits({{"RLIMIT_NOFILE", 100, 200}, {"RLIMIT_CORE", 0, 0}});
    if (!s) return "error=" + s.error().message();
    struct rlimit nofile, core;
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    ::getrlimit(RLIMIT_CORE, &core);
    return "nofile=" + std::to_string(nofile.rlim_cur) + ":" + std::to_string(nofile.rlim_max) +
           "\ncore=" + std::to_string(core.rlim_max) + "\n";
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["nofile"], "100:200");
  EXPECT_EQ(m["core"], "0");

  auto unknown = apply_rlimits({{"RLIMIT_WISHES", 1, 1}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("RLIMIT_WISHES"), std::string::npos);
  EXPECT_FALSE(apply_rlimits({{"RLIMIT_NOFILE", 10, 5}}));
}

TEST(Seccomp, DefaultProfileShape) {
  SeccompSpec s = default_seccomp_profile();
  EXPECT_EQ(s.default_action, "SCMP_ACT_ERRNO");
  EXPECT_EQ(s.default_errno_ret, std::optional<uint32_t>(EPERM));
#if defined(__x86_64__)
  EXPECT_EQ(s.architectures, (std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
#endif
  auto allowed = [&](const std::string& name) {
    for (const auto& r : s.syscalls)
      if (r.action == "SCMP_ACT_ALLOW" && has(r.names, name)) return true;
    return false;
  };
  for (const char* ok : {"read", "write", "openat", "mmap", "futex", "execve", "clone", "socket", "exit_group"})
    EXPECT_TRUE(allowed(ok)) << ok;
  for (const char* no : {"mount", "umount2", "pivot_root", "unshare", "setns", "kexec_load", "init_module", "bpf",
                         "keyctl", "add_key", "reboot", "swapon", "open_by_handle_at", "userfaultfd", "clone3"})
    EXPECT_FALSE(allowed(no)) << no;
}

// Makes the child's mounts private so a mount that seccomp failed to stop
// could not reach the host.
static bool private_mounts() {
  return ::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

TEST(Seccomp, DefaultProfileRefusesDangerousCalls) {
  auto r = run_in_child([] {
    if (!private_mounts()) return std::string("error=private mounts");
    char dir[] = "/tmp/isola-seccomp-XXXXXX";
    if (!::mkdtemp(dir)) return std::string("error=mkdtemp");
    pid_t real_pid = static_cast<pid_t>(::syscall(SYS_getpid));
    auto s = compile_and_load(default_seccomp_profile());
    if (!s) return "error=" + s.error().message();
    std::string out;
    out += "mount=" + errno_of(::mount("tmpfs", dir, "tmpfs", 0, nullptr)) + "\n";
    out += "unshare=" + errno_of(::unshare(CLONE_NEWNS)) + "\n";
    out += "keyctl=" + errno_of(::syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3 /*session*/, 0)) + "\n";
    long c = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (c == 0) ::_exit(0);
    out += "clone_newuser=" + errno_of(c) + "\n";
    struct clone_args args = {};
    args.exit_signal = SIGCHLD;
    long c3 = ::syscall(SYS_clone3, &args, sizeof args);
    if (c3 == 0) ::_exit(0);
    out += "clone3=" + errno_of(c3) + "\n";
    out += "personality_query=" + errno_of(::personality(0xffffffff)) + "\n";
    out += "personality_norandom=" + errno_of(::personality(ADDR_NO_RANDOMIZE)) + "\n";
    out += std::string("getpid=") + (::getpid() == real_pid ? "ok" : "bad") + "\n";
    int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    out += "open=" + errno_of(fd) + "\n";
    if (fd >= 0) ::close(fd);
    pid_t child = ::fork();  // plain clone still works
    if (child == 0) ::_exit(7);
    int st = 0;
    ::waitpid(child, &st, 0);
    out += std::string("fork=") + (child > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7 ? "ok" : "bad") + "\n";
    ::rmdir(dir);
    return out;  // write(2) to the pipe is the last check
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.status;
  const std::string eperm = std::to_string(EPERM);
  EXPECT_EQ(m["mount"], eperm);
  EXPECT_EQ(m["unshare"], eperm);
  EXPECT_EQ(m["keyctl"], eperm);
  EXPECT_EQ(m["clone_newuser"], eperm);
  EXPECT_EQ(m["clone3"], std::to_string(ENOSYS));
  EXPECT_EQ(m["personality_query"], "ok");
  EXPECT_EQ(m["personality_norandom"], eperm);
  EXPECT_EQ(m["getpid"], "ok");
  EXPECT_EQ(m["open"], "ok");
  EXPECT_EQ(m["fork"], "ok");
}

TEST(Seccomp, LoadsAfterDroppingPrivilegesWithNoNewPrivs) {
  auto r = run_in_child([] {
    auto s = switch_user_and_capabilities(process_with(default_capabilities(), 65534));
    if (s) s = set_no_new_privileges();
    if (s) s = compile_and_load(default_seccomp_profile());
    if (!s) return "error=" + s.error().message();
    struct clone_args args = {};
    args.exit_signal = SIGCHLD;
    long c3 = ::syscall(SYS_clone3, &args, sizeof args);
    if (c3 == 0) ::_exit(0);
    return "clone3=" + errno_of(c3) + "\n";
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["clone3"], std::to_string(ENOSYS));
}

// runc's order without no_new_privs: the filter first, while still
// privileged; switching user and capabilities must then work under it.
TEST(Seccomp, LoadsBeforeSwitchingUserLikeRunc) {
  auto r = run_in_child([] {
    auto s = compile_and_load(default_seccomp_profile());
    if (s) s = apply_rlimits({{"RLIMIT_NOFILE", 512, 512}});
    if (s) s = switch_user_and_capabilities(process_with(default_capabilities(), 65534));
    if (!s) return "error=" + s.error().message();
    return caps_report() + "mount=" + errno_of(::umount2("/proc", MNT_DETACH)) + "\n";
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["CapEff"], "0000000000000000");
  EXPECT_EQ(m["CapBnd"], kDockerMask);
  EXPECT_EQ(m["mount"], std::to_string(EPERM));
}

TEST(Seccomp, WithoutSysAdminOrNoNewPrivsTheKernelRefusesAndWeSayWhy) {
  auto r = run_in_child([] {
    auto s = switch_user_and_capabilities(process_with(default_capabilities()));
    if (!s) return "error=" + s.error().message();
    auto a = compile_and_load(default_seccomp_profile());
    if (a) return std::string("loaded=1\n");
    return "errno=" + std::to_string(a.error().err) + "\nmsg=" + a.error().message() + "\n";
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["errno"], std::to_string(EACCES));
  EXPECT_NE(m["msg"].find("no_new_privileges"), std::string::npos) << m["msg"];
}

TEST(Seccomp, ParsesAndAppliesADockerProfile) {
  Json j = Json::parse(R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "archMap": [
      {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
      {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
    ],
    "syscalls": [
      {"names": ["getppid", "not_a_syscall_at_all"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
      {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
      {"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
      {"names": ["getgid"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_KILL"]}},
      {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}},
      {"names": ["sync"], "action": "SCMP_ACT_ALLOW", "comment": "same as the default: ignored"}
    ]
  })");
  auto s = parse_seccomp_profile(j);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->default_action, "SCMP_ACT_ALLOW");
#if defined(__x86_64__)
  EXPECT_EQ(s->architectures, (std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
#endif
  // getpgrp needs a capability beyond docker's defaults, getgid is for
  // containers without a default one, getpgid needs a future kernel.
  ASSERT_EQ(s->syscalls.size(), 5u);
  EXPECT_EQ(s->syscalls[0].errno_ret, std::optional<uint32_t>(42));
  EXPECT_EQ(s->syscalls[1].names, std::vector<std::string>{"mkdir"});
  ASSERT_EQ(s->syscalls[1].args.size(), 1u);
  EXPECT_EQ(s->syscalls[1].args[0].index, 1u);
  EXPECT_EQ(s->syscalls[1].args[0].value, 448u);
  EXPECT_EQ(s->syscalls[1].args[0].op, "SCMP_CMP_EQ");
  EXPECT_EQ(s->syscalls[2].names, std::vector<std::string>{"getsid"});
  EXPECT_EQ(s->syscalls[3].names, std::vector<std::string>{"getuid"});

  auto r = run_in_child([&] {
    char base[] = "/tmp/isola-seccomp-XXXXXX";
    if (!::mkdtemp(base)) return std::string("error=mkdtemp");
    auto a = compile_and_load(*s);
    if (!a) return "error=" + a.error().message();
    std::string b = base;
    std::string out = "getppid=" + errno_of(::syscall(SYS_getppid)) + "\n";
    out += "mkdir0700=" + errno_of(::mkdir((b + "/a").c_str(), 0700)) + "\n";
    out += "mkdir0755=" + errno_of(::mkdir((b + "/b").c_str(), 0755)) + "\n";
    out += "getpgrp=" + errno_of(::syscall(SYS_getpgrp)) + "\n";
    out += "getsid=" + errno_of(::syscall(SYS_getsid, 0)) + "\n";
    out += "getuid=" + errno_of(::syscall(SYS_getuid)) + "\n";
    out += "getgid=" + errno_of(::syscall(SYS_getgid)) + "\n";
    ::rmdir((b + "/b").c_str());
    ::rmdir(base);
    return out;
  });
  auto m = parse_report(r.out);
  ASSERT_EQ(m.count("error"), 0u) << m["error"];
  EXPECT_EQ(m["getppid"], "42");
  EXPECT_EQ(m["mkdir0700"], std::to_string(EPERM));
  EXPECT_EQ(m["mkdir0755"], "ok");
  EXPECT_EQ(m["getpgrp"], "ok");
  EXPECT_EQ(m["getsid"], std::to_string(EPERM));
  EXPECT_EQ(m["getuid"], std::to_string(EPERM));
  EXPECT_EQ(m["getgid"], "ok");
}

TEST(Seccomp, AProgramHandedOverIsUsedInsteadOfCompiling) {
  SeccompSpec profile = default_seccomp_profile();
  profile.syscalls.pop_back();  // a profile no other test compiles
  auto compiled = compile_seccomp(profile, "");
  ASSERT_TRUE(compiled);
  // What a VM's host sends: the bytes, read back as a program.
  auto bytes = seccomp_program_bytes(*compiled);
  EXPECT_EQ(bytes.size(), compiled->insns.size() * sizeof(sock_filter));
  auto back = seccomp_program_from_bytes(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->insns.size(), compiled->insns.size());
  EXPECT_FALSE(seccomp_program_from_bytes(bytes.substr(1)));
  EXPECT_FALSE(seccomp_program_from_bytes(""));
  // A handed-over program for that profile is what compile returns.
  SeccompProgram marker;
  marker.insns.assign(3, sock_filter{BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW});
  ASSERT_TRUE(remember_seccomp(profile, marker));
  auto again = compile_seccomp(profile, "");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->insns.size(), 3u);
  // Other profiles are still compiled.
  auto other = compile_seccomp(default_seccomp_profile(), "");
  ASSERT_TRUE(other);
  EXPECT_NE(other->insns.size(), 3u);
  EXPECT_FALSE(remember_seccomp(profile, SeccompProgram{}));  // no instructions
}

TEST(Seccomp, CompiledProgramsAreCachedByTheirWholeProfile) {
  char tmpl[] = "/tmp/isola-seccomp-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto first = compile_seccomp(default_seccomp_profile(), dir);
  ASSERT_TRUE(first) << first.error().message();
  auto files = list_dir(dir);
  ASSERT_TRUE(files && files->size() == 1u);
  std::string path = path_join(dir, (*files)[0]);
  auto again = compile_seccomp(default_seccomp_profile(), dir);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->insns.size(), first->insns.size());
  EXPECT_EQ(std::memcmp(again->insns.data(), first->insns.data(), first->insns.size() * sizeof(sock_filter)), 0);

  // A file under that name compiled from another profile, or cut short, is
  // not used: the profile is compiled again (and the file replaced).
  SeccompSpec other = default_seccomp_profile();
  other.syscalls.pop_back();
  auto other_prog = compile_seccomp(other, "");
  ASSERT_TRUE(other_prog);
  auto text = read_file(path);
  ASSERT_TRUE(text);
  std::string source = text->substr(0, text->size() - first->insns.size() * sizeof(sock_filter));
  std::string forged = source + std::string(reinterpret_cast<const char*>(other_prog->insns.data()),
                                            other_prog->insns.size() * sizeof(sock_filter));
  ASSERT_TRUE(write_file_atomic(path, forged, 0600));
  auto after_forgery = compile_seccomp(default_seccomp_profile(), dir);
  ASSERT_TRUE(after_forgery);
  EXPECT_EQ(after_forgery->insns.size(), other_prog->insns.size());  // the file's source matched: it is trusted
  ASSERT_TRUE(write_file_atomic(path, source.substr(0, source.size() - 1) + "X" +
                                          std::string(reinterpret_cast<const char*>(other_prog->insns.data()),
                                                      other_prog->insns.size() * sizeof(sock_filter)), 0600));
  auto mismatched = compile_seccomp(default_seccomp_profile(), dir);
  ASSERT_TRUE(mismatched);
  EXPECT_EQ(mismatched->insns.size(), first->insns.size());
  ASSERT_TRUE(write_file_atomic(path, source + "abc", 0600));
  auto truncated = compile_seccomp(default_seccomp_profile(), dir);
  ASSERT_TRUE(truncated);
  EXPECT_EQ(truncated->insns.size(), first->insns.size());
  ASSERT_TRUE(remove_tree(dir));
}

TEST(Seccomp, ParsesTheOciForm) {
  Json j = Json::parse(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                 {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]})");
  auto s = parse_seccomp_profile(j);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->default_errno_ret, std::optional<uint32_t>(1));
  EXPECT_EQ(s->architectures, std::vector<std::string>{"SCMP_ARCH_X86_64"});
  ASSERT_EQ(s->syscalls.size(), 2u);
  EXPECT_EQ(s->syscalls[0].names, (std::vector<std::string>{"read", "write"}));
  EXPECT_EQ(s->syscalls[1].args[0].value, 8u);
}

TEST(Seccomp, ParseNamesTheBadField) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case& c : {
           Case{R"([])", "not a JSON object"},
           Case{R"({"syscalls": []})", "defaultAction"},
           Case{R"({"defaultAction": 3})", "defaultAction"},
           Case{R"({"defaultAction": "SCMP_ACT_MAYBE"})", "SCMP_ACT_MAYBE"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": "x86"})", "architectures"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}})", "syscalls"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]})",
                "syscalls[0].names"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]})", "syscalls[0].action"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]})",
                "syscalls[0].args[0].value"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]})",
                "syscalls[0].args[0].index"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]})",
                "syscalls[0].args[0].op"},
           Case{R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "errnoRet": "EPERM"}]})",
                "syscalls[0].errnoRet"},
       }) {
    auto s = parse_seccomp_profile(Json::parse(c.json));
    ASSERT_FALSE(s) << c.json;
    EXPECT_NE(s.error().message().find(c.field), std::string::npos) << s.error().message();
  }
}
