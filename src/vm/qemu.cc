#include "vm/qemu.h"

namespace isola {

namespace {
constexpr uint64_t kDefaultMemoryMb = 256;
constexpr uint64_t kGuestReserveMb = 64;  // kernel, agent, page tables
}  // namespace

std::string vm_process_name(const std::string& id) { return "isola-vm-" + id.substr(0, 6); }

uint64_t vm_memory_mb(int64_t container_limit) {
  if (container_limit <= 0) return kDefaultMemoryMb;
  uint64_t mb = (static_cast<uint64_t>(container_limit) + (1u << 20) - 1) >> 20;
  return mb + kGuestReserveMb;
}

std::vector<std::string> qemu_command(const VmConfig& c) {
  std::vector<std::string> a = {"qemu-system-x86_64"};
  auto add = [&](std::initializer_list<std::string> items) { a.insert(a.end(), items); };
  add({"-name", "isola-vm-" + c.id.substr(0, 12) + ",process=" + vm_process_name(c.id)});
  add({"-M", "microvm,x-option-roms=off,rtc=off"});
  if (c.accel == "kvm") add({"-accel", "kvm", "-cpu", "host"});
  else add({"-accel", "tcg", "-cpu", "max"});
  add({"-m", std::to_string(c.memory_mb) + "M", "-smp", std::to_string(c.cpus)});
  add({"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"});
  // Nothing QEMU needs at run time calls for more than this.
  add({"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"});
  add({"-kernel", c.assets.kernel, "-initrd", c.assets.initramfs});
  add({"-append",
       "console=ttyS0 quiet loglevel=1 panic=-1 reboot=t tsc=reliable no_timer_check "
       "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd rdinit=/init"});
  add({"-serial", "file:" + c.console_log});
  add({"-device", "virtio-serial-device"});
  add({"-chardev", "socket,id=agent,path=" + c.agent_socket + ",server=on,wait=off"});
  add({"-device", "virtserialport,chardev=agent,name=isola.agent"});
  int n = 0;
  for (const VmShare& s : c.shares) {
    std::string id = "fs" + std::to_string(n++);
    add({"-fsdev", "local,id=" + id + ",path=" + s.host_path + ",security_model=passthrough" +
                       (s.readonly ? ",readonly=on" : "")});
    add({"-device", "virtio-9p-device,fsdev=" + id + ",mount_tag=" + s.tag});
  }
  return a;
}

}  // namespace isola
