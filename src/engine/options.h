// What `isola run` / `isola create` were asked for: the flags, before they
// are turned into a runtime spec.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace isola {

enum class Isolation { process, vm };

// -v, --mount and the image's VOLUMEs: a host directory (bind), a volume
// of the store (volume) or a tmpfs.
enum class MountKind { bind, volume, tmpfs };

struct VolumeOption {
  std::string source;       // host path (bind), volume name (volume; "" until an anonymous one is named)
  std::string destination;  // container path
  bool readonly = false;
  MountKind kind = MountKind::bind;
  std::string propagation;  // bind-propagation ("": rprivate)
  bool nocopy = false;      // volume-nocopy: no copy-up of the image's content
  bool anonymous = false;   // a volume made for this container (-v /path, VOLUME)
  std::string host_path;    // a volume's _data directory, filled by the engine
  std::optional<int64_t> tmpfs_size;   // bytes
  std::optional<uint32_t> tmpfs_mode;  // octal permissions
};

// --ulimit NAME=SOFT[:HARD]; -1 is unlimited.
struct UlimitOption {
  std::string name;  // docker's name: "nofile", "nproc", ...
  int64_t soft = 0, hard = 0;
};

// --device HOST[:CONTAINER][:PERMISSIONS]
struct DeviceOption {
  std::string host, container;
  std::string access = "rwm";
};

// --restart no|always|unless-stopped|on-failure[:N] (HostConfig.RestartPolicy)
struct RestartPolicy {
  std::string name = "no";
  int max_retries = 0;  // on-failure only; 0: no limit
};

// --health-* and --no-healthcheck, over the image's HEALTHCHECK (Config.Healthcheck)
struct HealthOption {
  std::vector<std::string> test;  // ["CMD-SHELL", cmd], ["CMD", args...], ["NONE"]; empty: the image's
  std::optional<int64_t> interval_ns, timeout_ns, start_period_ns, start_interval_ns;
  std::optional<int> retries;
  bool disable = false;  // --no-healthcheck
};

struct RunOptions {
  std::string image;
  std::vector<std::string> command;      // after the image name
  std::optional<std::vector<std::string>> entrypoint;  // --entrypoint ("" clears it)
  std::string name;
  std::vector<std::string> env;          // -e KEY=VAL or KEY (taken from the caller's env)
  std::vector<std::string> env_files;
  std::string workdir;
  std::string user;                      // user[:group], names or numbers
  std::string hostname;
  std::vector<VolumeOption> volumes;     // -v and --mount, in the order given
  std::vector<std::string> volumes_from; // --volumes-from CONTAINER[:ro|rw]
  std::vector<std::string> tmpfs;        // /path[:options]
  bool read_only = false;
  std::optional<int64_t> memory;         // bytes
  std::optional<double> cpus;
  std::optional<int64_t> pids_limit;
  std::vector<std::string> cap_add, cap_drop;
  bool privileged = false;
  bool no_new_privileges = false;
  std::string seccomp;                   // "", "unconfined" or a profile file
  std::string network = "bridge";        // none | host | container:ID | a network's name ("bridge")
  std::vector<std::string> publish;      // -p [hostip:][hostport:]port[/proto]
  bool publish_all = false;              // -P: every port the image exposes
  std::vector<std::string> exposed_ports;  // the image's ExposedPorts ("80/tcp"), filled by the engine
  std::string userns;                    // "" or "host": none; "auto": a private id range
  std::map<std::string, std::string> labels;
  bool init = false;
  Isolation isolation = Isolation::process;
  std::string vm_boot;                   // "" (a template when one fits) or "cold" (--vm-boot)
  bool tty = false, interactive = false, detach = false, auto_remove = false;
  // /etc/hosts and /etc/resolv.conf
  std::vector<std::pair<std::string, std::string>> add_hosts;  // name, address or "host-gateway"
  std::vector<std::string> dns, dns_search, dns_options;
  // the process
  std::vector<UlimitOption> ulimits;
  std::vector<std::string> group_add;    // names or numbers, from the image's /etc/group
  std::map<std::string, std::string> sysctls;
  std::optional<int64_t> shm_size;       // bytes
  // resources and devices
  std::string cpuset_cpus;
  std::optional<int64_t> memory_swap;    // bytes, -1 unlimited
  std::optional<int64_t> memory_reservation;
  bool oom_kill_disable = false;
  std::vector<DeviceOption> devices;
  // lifecycle and the CLI's session
  std::string stop_signal;               // "": the image's, else SIGTERM
  std::optional<int> stop_timeout;       // seconds; docker's default is 10
  std::string cidfile;
  std::vector<std::string> attach;       // -a: "stdin", "stdout", "stderr"
  bool sig_proxy = true;
  RestartPolicy restart;
  HealthOption health;
};

}  // namespace isola
