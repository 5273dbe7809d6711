// features (what this runtime supports, in the runtime spec's features
// format) and spec (a template config.json).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "common/fs.h"
#include "ociruntime/bundle.h"
#include "ociruntime/runtime.h"
#include "runtime/security.h"

namespace isola::oci {

Result<int> cmd_features(const Context&, const Args& args, size_t begin) {
  TRY(parse_flags(args, begin, {}, false));
  Json caps = Json::array();
  for (const std::string& c : all_capabilities().bounding) caps.push_back(c);
  Json features = {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", "1.1.0"},
      {"hooks", {"prestart", "createRuntime", "poststart", "poststop"}},
      {"mountOptions",
       {"ro",       "rw",        "nosuid",    "suid",       "nodev",       "dev",        "noexec",
        "exec",     "sync",      "async",     "dirsync",    "noatime",     "atime",      "nodiratime",
        "diratime", "relatime",  "norelatime", "strictatime", "nostrictatime", "bind",    "rbind",
        "private",  "rprivate",  "slave",     "rslave",     "shared",      "rshared",    "unbindable",
        "runbindable", "rro",     "rrw",       "rnosuid",    "rsuid",       "rnodev",     "rdev",
        "rnoexec",  "rexec",     "rnodiratime", "rdiratime", "rnoatime",   "rrelatime",  "rstrictatime"}},
      {"linux",
       {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}},
        {"capabilities", caps},
        {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp",
         {{"enabled", true},
          {"actions",
           {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}},
          {"operators",
           {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE"}},
          {"archs", {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}}}},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations",
       {{kIsolationAnnotation, "process (default), vm or hyperv"},
        {"io.isola.runtime.version", ISOLA_VERSION}}},
  };
  std::printf("%s\n", features.dump(2).c_str());
  return 0;
}

namespace {

Json template_spec() {
  Json masked = {"/proc/acpi", "/proc/asound",    "/proc/kcore",      "/proc/keys",          "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"};
  Json readonly = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
  Json caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  return {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", true},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"sh"}},
        {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "isola"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"},
         {"type", "devpts"},
         {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
        {{"destination", "/dev/shm"},
         {"type", "tmpfs"},
         {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"},
         {"type", "mqueue"},
         {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"}, {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"},
         {"type", "cgroup"},
         {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces", {{{"type", "pid"}}, {{"type", "network"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}}},
        {"maskedPaths", masked},
        {"readonlyPaths", readonly}}},
  };
}

}  // namespace

Result<int> cmd_spec(const Context&, const Args& args, size_t begin) {
  ParsedArgs p = TRY(parse_flags(args, begin, {{{"bundle", "b"}, true}, {{"rootless"}, false}}, false));
  std::string path = path_join(p.get("bundle", "."), "config.json");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return fail(make_error("spec", path, "exists already: remove it first"));
    return fail(sys_error("create", path));
  }
  UniqueFd owner(fd);
  std::string text = template_spec().dump(2) + "\n";
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return fail(sys_error("write", path));
  return 0;
}

}  // namespace isola::oci
