// What `isola run` / `isola create` were asked for: the flags, before they
// are turned into a runtime spec.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace isola {

enum class Isolation { process, vm };

struct VolumeOption {
  std::string source;       // host path
  std::string destination;  // container path
  bool readonly = false;
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
  std::vector<VolumeOption> volumes;
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
};

}  // namespace isola
