#include "vm/qemu.h"

#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstdlib>

#include "common/fs.h"
#include "vm/pod_share.h"

namespace isola {

namespace {
constexpr uint64_t kDefaultMemoryMb = 256;
constexpr uint64_t kGuestReserveMb = 64;  // kernel, agent, page tables
}  // namespace

uint64_t host_tsc_khz() {
  static const char* cache = "/run/isola/tsc-khz";
  if (auto text = read_file(cache, 64); text) {
    uint64_t v = std::strtoull(text->c_str(), nullptr, 10);
    if (v > 0) return v;
  }
#if defined(__x86_64__)
  // Count TSC ticks over 50 ms of wall time, once per boot of the host.
  struct timespec a, b;
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &a);
  uint64_t t0 = __rdtsc();
  ::usleep(50000);
  uint64_t t1 = __rdtsc();
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &b);
  double ns = static_cast<double>(b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
  uint64_t khz = ns > 0 ? static_cast<uint64_t>(static_cast<double>(t1 - t0) / ns * 1e6) : 0;
  if (khz > 0) {
    (void)mkdir_p("/run/isola", 0700);
    (void)write_file_atomic(cache, std::to_string(khz) + "\n", 0644);
  }
  return khz;
#else
  return 0;
#endif
}

std::string vm_process_name(const std::string& id) { return "isola-vm-" + id.substr(0, 6); }

uint64_t vm_memory_mb(int64_t container_limit) {
  if (container_limit <= 0) return kDefaultMemoryMb;
  uint64_t mb = (static_cast<uint64_t>(container_limit) + (1u << 20) - 1) >> 20;
  return mb + kGuestReserveMb;
}

int64_t vm_container_memory_max(uint64_t vm_memory_mb) {
  uint64_t mb = vm_memory_mb > kGuestReserveMb ? vm_memory_mb - kGuestReserveMb : 0;
  return static_cast<int64_t>(mb << 20);
}

std::vector<std::string> qemu_command(const VmConfig& c) {
  std::vector<std::string> a = {"qemu-system-x86_64"};
  auto add = [&](std::initializer_list<std::string> items) { a.insert(a.end(), items); };
  add({"-name", "isola-vm-" + c.id.substr(0, 12) + ",process=" + vm_process_name(c.id)});
  // rtc=off would cost the guest two one-second waits for a clock.
  std::string machine = "microvm,x-option-roms=off,rtc=on";
  // The RAM's descriptor by the name QEMU opens; vm/preload.c turns that
  // open into a copy of the descriptor.
  const std::string mem_path = c.memory_fd >= 0 ? "/proc/self/fd/" + std::to_string(c.memory_fd) : "";
  if (!mem_path.empty()) machine += ",memory-backend=mem0";
  add({"-M", machine});
  if (c.accel == "kvm") add({"-accel", "kvm", "-cpu", "host"});
  // TCG's translation buffer is capped, so that the worker's memory limit
  // (vm/jail.h) holds: 128 MiB is many times what a container's guest fills.
  else add({"-accel", "tcg,tb-size=128"});
  add({"-m", std::to_string(c.memory_mb) + "M", "-smp", std::to_string(c.cpus)});
  if (!mem_path.empty())
    add({"-object", "memory-backend-file,id=mem0,size=" + std::to_string(c.memory_mb) + "M,mem-path=" + mem_path +
                        ",share=" + (c.memory_shared ? "on" : "off")});
  add({"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"});
  // Nothing QEMU needs at run time calls for more than this.
  add({"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"});
  add({"-kernel", c.assets.kernel, "-initrd", c.assets.initramfs});
  // Measured under TCG (docs/guest-kernel.md): cryptomgr.notests skips the
  // boot-time crypto self-tests (~15%); tsc_early_khz spares the guest a
  // clock calibration that TCG can make hang.
  std::string append =
      "console=ttyS0 quiet loglevel=1 panic=-1 reboot=t tsc=reliable no_timer_check cryptomgr.notests "
      "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd rdinit=/init";
  if (c.accel != "kvm" && c.tsc_khz > 0) append += " tsc_early_khz=" + std::to_string(c.tsc_khz);
  if (!c.kernel_args.empty()) append += " " + c.kernel_args;
  add({"-append", append});
  // The console, the agent's channel and QMP come as open descriptors:
  // the jailed worker creates no file.
  add({"-add-fd", "fd=" + std::to_string(c.console_fd) + ",set=1", "-serial", "file:/dev/fdset/1"});
  add({"-device", "virtio-serial-device"});
  add({"-chardev", "socket,id=agent,fd=" + std::to_string(c.agent_fd) + ",server=on,wait=off"});
  add({"-device", "virtserialport,chardev=agent,name=isola.agent"});
  int n = 0;
  for (const VmShare& s : c.shares) {
    std::string id = "fs" + std::to_string(n++);
    // The pod share (vm/pod_share.h) holds mounts of many file systems:
    // their inode numbers are remapped so that no two files look alike to
    // the guest.
    add({"-fsdev", "local,id=" + id + ",path=" + s.host_path + ",security_model=passthrough" +
                       (s.readonly ? ",readonly=on" : "") + (s.tag == kPodShareTag ? ",multidevs=remap" : "")});
    add({"-device", "virtio-9p-device,fsdev=" + id + ",mount_tag=" + s.tag});
  }
  if (c.network && c.tap_fd >= 0) {
    // QEMU gets the tap already open: it needs no CAP_NET_ADMIN and never
    // sees /dev/net/tun. vhost would need /dev/vhost-net and only pays off
    // under KVM.
    add({"-netdev", "tap,id=net0,fd=" + std::to_string(c.tap_fd) + ",vhost=off"});
    add({"-device", "virtio-net-device,netdev=net0,mac=" + c.network->mac});
  }
  if (!c.qmp_socket.empty())
    add({"-chardev", "socket,id=qmp,fd=" + std::to_string(c.qmp_fd) + ",server=on,wait=off", "-mon",
         "chardev=qmp,mode=control"});
  if (c.incoming) add({"-S", "-incoming", "defer"});
  return a;
}

}  // namespace isola
