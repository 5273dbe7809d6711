// The container description that flows to either isolation backend: a
// subset of the OCI runtime spec (config.json), as plain structs. Parsed
// defensively from JSON (it may come from another engine through
// isola-runtime) and written back out for the bundle.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace isola {

struct Rlimit {
  std::string type;  // "RLIMIT_NOFILE"
  uint64_t soft = 0, hard = 0;
};

struct Capabilities {
  // Each set holds names like "CAP_CHOWN".
  std::vector<std::string> bounding, effective, inheritable, permitted, ambient;
};

struct ProcessSpec {
  bool terminal = false;
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=value"
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  std::optional<Capabilities> capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::optional<mode_t> umask;          // default 022
  std::optional<int> oom_score_adj;     // /proc/self/oom_score_adj
  unsigned console_rows = 0, console_cols = 0;  // consoleSize: the terminal's first size
};

struct MountSpec {
  std::string destination;  // absolute path inside the container
  std::string type;         // "bind", "proc", "tmpfs", ...
  std::string source;
  std::vector<std::string> options;  // "ro", "nosuid", "rbind", "size=65536k", ...
};

struct NamespaceSpec {
  std::string type;  // pid, network, mount, ipc, uts, user, cgroup
  std::string path;  // join this namespace instead of creating one
};

struct IdMapping {
  uint32_t container_id = 0, host_id = 0, size = 0;
};

// A devices cgroup rule: allow or deny `access` (r, w, m) to devices of
// `type` (a all, c char, b block) with the numbers given (absent: any).
struct DeviceRule {
  bool allow = false;
  char type = 'a';
  std::optional<int64_t> major, minor;
  std::string access = "rwm";
};

// A device node to create in the container's /dev (linux.devices). Whether
// the container may use it is up to the device cgroup rules.
struct DeviceNodeSpec {
  std::string path;  // absolute, in the container: "/dev/fuse"
  char type = 'c';   // c (or u) character, b block, p FIFO
  int64_t major = 0, minor = 0;
  std::optional<uint32_t> file_mode;  // permission bits; default 0666
  std::optional<uint32_t> uid, gid;   // default 0
};

struct Resources {
  std::optional<int64_t> memory_limit;  // bytes
  std::optional<int64_t> memory_swap;   // bytes (memory+swap), -1 unlimited
  std::optional<int64_t> memory_reservation;  // bytes: the soft limit
  std::optional<uint64_t> memory_swappiness;  // 0-100 (v1 only)
  bool disable_oom_killer = false;            // v1 only
  std::string cpuset_cpus;                    // "0-3,5"; "" the parent's
  std::string cpuset_mems;                    // memory nodes, as cpuset_cpus
  std::optional<uint64_t> cpu_shares;
  std::optional<int64_t> cpu_quota;     // microseconds per period
  std::optional<uint64_t> cpu_period;   // microseconds
  std::optional<int64_t> pids_limit;
  std::vector<DeviceRule> devices;  // in order, before the default allow list
};

struct SeccompRule {
  std::vector<std::string> names;
  std::string action;  // SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, ...
  std::optional<uint32_t> errno_ret;
  struct Arg {
    uint32_t index = 0;
    uint64_t value = 0, value_two = 0;
    std::string op;  // SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ, ...
  };
  std::vector<Arg> args;
};

struct SeccompSpec {
  std::string default_action;  // SCMP_ACT_ERRNO
  std::optional<uint32_t> default_errno_ret;
  std::vector<std::string> architectures;  // SCMP_ARCH_X86_64, ...
  std::vector<SeccompRule> syscalls;
};

struct LinuxSpec {
  std::vector<NamespaceSpec> namespaces;
  std::vector<IdMapping> uid_mappings, gid_mappings;
  Resources resources;
  std::string cgroups_path;  // relative to the cgroup root(s), e.g. "isola/<id>"
  std::vector<std::string> masked_paths, readonly_paths;
  std::optional<SeccompSpec> seccomp;
  std::map<std::string, std::string> sysctl;
  std::vector<DeviceNodeSpec> devices;
  std::string rootfs_propagation;  // "" (private), shared, rslave, ...
};

struct RuntimeSpec {
  std::string oci_version = "1.0.2";
  ProcessSpec process;
  std::string root_path;  // the rootfs (absolute)
  bool root_readonly = false;
  std::string hostname;
  std::string domainname;
  std::vector<MountSpec> mounts;
  LinuxSpec linux;
  std::map<std::string, std::string> annotations;

  static Result<RuntimeSpec> from_json(const Json& j);
  Json to_json() const;
};

// linux.seccomp as the spec writes it (also a canonical form of a profile).
Json seccomp_to_json(const SeccompSpec& s);

// A "process" object alone (the OCI exec --process file).
Result<ProcessSpec> process_from_json(const Json& j);
Json process_to_json(const ProcessSpec& p);

// A "linux.resources" object alone (isola update sends one to a VM's agent).
Result<Resources> resources_from_json(const Json& j);
Json resources_to_json(const Resources& r);

}  // namespace isola
