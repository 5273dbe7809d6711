// What the agent does to the guest as its PID 1, before and around the
// container: the file systems an init mounts, kernel modules, the
// virtio-serial port to the host, 9p shares, the clock, the hostname, and
// powering off. Diagnostics go to the kernel log (/dev/kmsg), which the
// host sees on the VM's serial console.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "agent/requests.h"
#include "common/error.h"
#include "common/unique_fd.h"

namespace isola::agent {

// Writes "isola-agent: text" to the kernel log (errors at KERN_ERR, which a
// `quiet` console still prints; the rest at KERN_INFO unless isola.debug is
// on the kernel command line). Falls back to stderr.
void kmsg(std::string_view text, bool error = false);
void set_kmsg_verbose(bool on);

// fds 0-2 of PID 1 may be closed (an initramfs without /dev/console): they
// must not be handed out as other descriptors. Points them at /dev/console
// (or /dev/null) once /dev is mounted.
void fix_stdio();

// /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp, and cgroup2 at
// /sys/fs/cgroup with +memory +pids +cpu enabled below the root. Failing to
// mount /proc, /sys or /dev is fatal; the rest is logged.
Result<void> mount_basics();

// Loads the modules named in `dir`/`list` (one file name a line,
// dependencies first) with finit_module; EEXIST is success. Returns the
// names that failed (each logged); a missing list loads nothing.
std::vector<std::string> load_modules(const std::string& dir, std::string_view list = "order");

// Where the initramfs keeps the modules and their lists: "order" is loaded
// at boot, "net-order" (virtio_net and its dependencies) only for a
// container with a network.
inline constexpr const char* kModuleDir = "/lib/modules";

// True when the VM has a virtio network device (virtio device ID 1),
// whether or not its driver is loaded.
bool has_virtio_net();
// Loads the network modules (net-order) unless virtio_net is already in.
Result<void> load_network_modules();

// A container's network in the guest: loads the network modules, then
// configures the NIC (configure_nic). Logs how long each took.
Result<void> set_up_network(const NicConfig& nic);

// True when the kernel knows the file system (/proc/filesystems).
bool have_filesystem(std::string_view name);

// Opens the virtio-serial port called `name` (O_RDWR | O_NONBLOCK),
// waiting up to `wait` for the port's name and its /dev node to appear.
Result<UniqueFd> open_port(std::string_view name, std::chrono::milliseconds wait);

// Mounts one share with kNinePOptions; a share already mounted there by an
// earlier (failed) create is left as it is.
Result<void> mount_share(const Share& share);

// Brings up lo in the guest's own network namespace (for a container that
// shares it).
void loopback_up();

// What a container needs that the agent can make before the host asks for
// one, at boot, so that a VM template carries it and its clones do not
// make it under emulation (some 60 ms): the container's cgroup, the device
// access programs of the usual specs, and a fresh network namespace with lo
// up. Failures are logged: the container then makes its own.
inline constexpr const char* kPreparedCgroup = "isola/container";
inline constexpr const char* kPreparedNetns = "/run/isola-netns";
void prepare_for_container();
// Points `spec` at what prepare_for_container made (its cgroup path, and
// its network namespace when it asks for a new one).
void use_prepared(RuntimeSpec& spec);

Result<void> set_clock(int64_t realtime_ns);

// Mixes `bytes` into the kernel's random pool, credited as entropy, and
// forces the CRNG to reseed at once (RNDADDENTROPY, RNDRESEEDCRNG): a
// write to /dev/urandom alone would leave a clone of a VM template
// producing its siblings' numbers until the next scheduled reseed.
Result<void> reseed_random(std::string_view bytes);

// CLOCK_BOOTTIME in milliseconds: the time since the kernel started.
int64_t boottime_ms();

// The kernel's release, as uname -r prints it.
std::string kernel_release();

// True when the kernel command line has `word` (e.g. "isola.debug").
bool kernel_cmdline_has(std::string_view word);

// Syncs and powers the VM off; never returns (PID 1 must not exit).
[[noreturn]] void power_off();

}  // namespace isola::agent
