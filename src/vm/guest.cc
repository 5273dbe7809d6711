#include "vm/guest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "common/fs.h"
#include "common/sha256.h"

namespace isola {

namespace {

// The cpio "newc" format the kernel unpacks an initramfs from.
class CpioWriter {
 public:
  void dir(const std::string& name) { entry(name, 040755, {}); }
  void file(const std::string& name, mode_t mode, const std::string& data) { entry(name, 0100000 | mode, data); }
  std::string finish() {
    entry("TRAILER!!!", 0, {});
    return std::move(out_);
  }

 private:
  void entry(const std::string& name, unsigned mode, const std::string& data) {
    char hdr[111];
    std::snprintf(hdr, sizeof hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ++ino_, mode, 0u,
                  0u, 1u, 0u, static_cast<unsigned>(data.size()), 0u, 0u, 0u, 0u,
                  static_cast<unsigned>(name.size() + 1), 0u);
    out_.append(hdr, 110);
    out_ += name;
    out_ += '\0';
    pad();
    out_ += data;
    pad();
  }
  void pad() {
    while (out_.size() % 4) out_ += '\0';
  }
  std::string out_;
  unsigned ino_ = 0;
};

std::string exe_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// A digest of the identity of every file the initramfs is made from.
Result<std::string> inputs_identity(const std::string& dir, const std::string& agent) {
  Sha256 h;
  auto add = [&](const std::string& path) -> Result<void> {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return fail(sys_error("stat", path));
    std::string id = path + "\n" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
                     std::to_string(st.st_size) + ":" + std::to_string(st.st_ctim.tv_sec) + "." +
                     std::to_string(st.st_ctim.tv_nsec) + "\n";
    h.update(id);
    return {};
  };
  TRYV(add(agent));
  for (const char* list : {"order", "net-order"}) {
    std::string list_path = path_join(dir, std::string("modules/") + list);
    if (!path_exists(list_path)) continue;
    TRYV(add(list_path));
    std::istringstream lines(TRY(read_file(list_path, 1u << 20)));
    for (std::string name; std::getline(lines, name);) {
      if (name.empty() || name.find('/') != std::string::npos) continue;
      if (!name.ends_with(".ko")) name += ".ko";
      TRYV(add(path_join(dir, "modules/" + name)));
    }
  }
  return h.hex_digest().substr(0, 16);
}

}  // namespace

std::string guest_dir() {
  const char* cache = std::getenv("ISOLA_CACHE");
  return path_join(cache && *cache ? cache : "/var/cache/isola", "guest/current");
}

namespace {

// A file installed beside isola or in ../libexec/isola.
Result<std::string> find_beside_isola(const std::string& name, const std::string& what) {
  std::string dir = exe_dir();
  for (const std::string& candidate : {dir + "/" + name, dir + "/../libexec/isola/" + name})
    if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  return fail(make_error("find " + what, name,
                         "VM isolation needs " + name + " beside isola or in ../libexec/isola; reinstall isola"));
}

}  // namespace

Result<std::string> find_agent() { return find_beside_isola("isola-agent", "the guest agent"); }

Result<std::string> find_qemu_preload() {
  auto found = find_beside_isola("isola-qemu-preload.so", "the VM worker's preload library");
  if (!found) return found;
  // The jail shows it at this path: make it one without symbolic links.
  char* real = ::realpath(found->c_str(), nullptr);
  if (!real) return fail(sys_error("realpath", *found));
  std::string path(real);
  ::free(real);
  return path;
}

Result<GuestAssets> prepare_guest_assets(const std::string& agent) {
  std::string dir = guest_dir();
  GuestAssets a;
  a.kernel = path_join(dir, "vmlinux");
  if (!path_exists(a.kernel))
    return fail(make_error("find the guest kernel", a.kernel,
                           "VM isolation needs the guest kernel; run scripts/setup (it runs scripts/guest-kernel)"));
  auto version = read_file(path_join(dir, "kernel.version"), 4096);
  if (!version) return fail(version.error());
  a.kernel_version = *version;
  while (!a.kernel_version.empty() && std::isspace(static_cast<unsigned char>(a.kernel_version.back())))
    a.kernel_version.pop_back();

  // A start that finds the files as they were when the initramfs was made
  // (path, inode, size, change time) takes it without reading and hashing
  // megabytes again: that was some 40 ms of every VM start.
  std::string by_identity = path_join(dir, "initramfs-id-" + TRY(inputs_identity(dir, agent)));
  if (auto name = read_file(by_identity, 4096); name && name->find('/') == std::string::npos) {
    a.initramfs = path_join(dir, *name);
    if (path_exists(a.initramfs)) return a;
  }

  // The initramfs is named by the hash of what goes into it.
  std::string agent_bytes = TRY(read_file(agent, 256u << 20));
  Sha256 h;
  h.update(agent_bytes);
  // order: loaded at every boot. net-order: loaded by the agent only for a
  // container with a network; a cache from before it existed has none.
  std::vector<std::pair<std::string, std::string>> modules;
  std::string listed[2];
  const char* lists[2] = {"order", "net-order"};
  for (int l = 0; l < 2; ++l) {
    std::string list_path = path_join(dir, std::string("modules/") + lists[l]);
    if (l == 1 && !path_exists(list_path)) continue;
    std::string order = TRY(read_file(list_path, 1u << 20));
    h.update(lists[l]);
    std::istringstream lines(order);
    for (std::string name; std::getline(lines, name);) {
      if (name.empty()) continue;
      if (name.find('/') != std::string::npos) return fail(make_error("read", list_path, "bad module name"));
      if (!name.ends_with(".ko")) name += ".ko";  // the order file may list bare module names
      std::string data = TRY(read_file(path_join(dir, "modules/" + name), 64u << 20));
      h.update(name);
      h.update(data);
      listed[l] += name + "\n";
      modules.emplace_back(name, std::move(data));
    }
  }
  std::string cpio_name = "initramfs-" + h.hex_digest().substr(0, 16) + ".cpio";
  std::string cache = path_join(dir, cpio_name);
  a.initramfs = cache;
  if (path_exists(cache)) {
    (void)write_file_atomic(by_identity, cpio_name, 0644);
    return a;
  }

  CpioWriter cpio;
  for (const char* d : {"dev", "proc", "sys", "run", "tmp", "lib", "lib/modules"}) cpio.dir(d);
  cpio.file("init", 0755, agent_bytes);
  for (const auto& [name, data] : modules) cpio.file("lib/modules/" + name, 0644, data);
  cpio.file("lib/modules/order", 0644, listed[0]);
  if (!listed[1].empty()) cpio.file("lib/modules/net-order", 0644, listed[1]);
  TRYV(write_file_atomic(cache, cpio.finish(), 0644));
  (void)write_file_atomic(by_identity, cpio_name, 0644);
  return a;
}

std::string detect_accelerator(std::string* why) {
  auto say = [&](const char* text) {
    if (why) *why = text;
  };
  if (const char* env = std::getenv("ISOLA_VM_ACCEL"); env && *env) {
    say("set by ISOLA_VM_ACCEL");
    return env;
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    say("no usable /dev/kvm");
    return "tcg";
  }
  if (path_exists("/sys/module/kvm_pvm")) {
    say("/dev/kvm is PVM (kvm_pvm), which cannot boot a stock guest kernel");
    return "tcg";
  }
  auto cpuinfo = read_file("/proc/cpuinfo", 16u << 20);
  if (!cpuinfo || (cpuinfo->find(" vmx") == std::string::npos && cpuinfo->find(" svm") == std::string::npos)) {
    say("the CPU shows no vmx/svm");
    return "tcg";
  }
  say("hardware virtualisation through /dev/kvm");
  return "kvm";
}

}  // namespace isola
