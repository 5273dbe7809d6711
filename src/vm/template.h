// VM templates: a guest booted once to the point where its agent waits for
// a container, saved (device state through QEMU's migration with
// x-ignore-shared, guest RAM as a file on tmpfs) and cloned by every later
// VM of the same shape: the clone maps the RAM file privately
// (copy-on-write) and loads the device state instead of booting.
//
// A template is keyed by everything that shapes the guest: the QEMU
// command line with the per-container values (paths, names, MAC) blanked
// out, and the identity of QEMU, the kernel and the initramfs (the agent is
// inside it). Templates live in templates_dir(), one directory per key,
// which appears by rename(2) only once it is complete (sealed); a template
// whose making was interrupted is a dot-directory nobody reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/unique_fd.h"
#include "vm/qemu.h"
#include "vm/qmp.h"

namespace isola {

// ${ISOLA_TEMPLATE_DIR:-/run/isola/templates} (tmpfs: RAM files must not
// touch a disk, and a host reboot must not keep a guest of another boot).
std::string templates_dir();

// Why this host boots every VM cold ("" when templates may be used):
// ISOLA_VM_TEMPLATES=off, or `isola system template disable`
// (/etc/isola/vm-templates says "off").
std::string templates_off_reason();
// `isola system template enable|disable`.
Result<void> set_templates_enabled(bool enabled);

struct TemplateKey {
  std::string id;  // 32 hex characters
  Json shape;      // what went into it: {"memory_mb","cpus","shares","nic","accel","kernel",...}
};

// The key for a VM configured as `config` (its memory, qmp and incoming
// fields are ignored).
TemplateKey template_key(const VmConfig& config);

struct TemplateInfo {
  std::string key;
  std::string dir;
  Json shape;
  int64_t created_ns = 0;
  uint64_t memory_mb = 0;
  uint64_t disk_bytes = 0;  // what the files take on tmpfs
  std::string memory_path() const { return dir + "/memory"; }
  std::string state_path() const { return dir + "/state"; }
};

// The sealed template for `key`, if there is one.
std::optional<TemplateInfo> find_template(const std::string& key);
Result<std::vector<TemplateInfo>> list_templates();
// Removes the template `key` (a full key or a unique prefix); running
// clones keep their private mappings.
Result<void> remove_template(const std::string& key);

// Making a template out of a cold boot. begin() takes the key's lock; when
// another start holds it (it is making this template), there is nothing to
// do and it returns nullopt. The VM then runs on RAM the maker made (a
// memfd QEMU maps with share=on, so migration skips it, and which lives
// outside the templates' tmpfs, so a full tmpfs never starves the VM);
// save() stops the VM, writes its device state, copies the RAM and seals
// the template. The caller continues the VM afterwards. A maker dropped
// before save() succeeded leaves nothing behind.
class TemplateMaker {
 public:
  static Result<std::optional<TemplateMaker>> begin(const TemplateKey& key, uint64_t memory_mb);
  TemplateMaker(TemplateMaker&&) = default;
  TemplateMaker& operator=(TemplateMaker&&) = default;
  ~TemplateMaker();

  // The guest's RAM, for QEMU to inherit as descriptor config.memory_fd.
  int memory_fd() const { return work_.get(); }
  // Phases in milliseconds: {"save", "copy"}.
  Result<Json> save(Qmp& qmp);

 private:
  TemplateMaker() = default;
  TemplateKey key_;
  uint64_t memory_mb_ = 0;
  std::optional<FileLock> lock_;
  std::string staging_;
  UniqueFd work_;
  bool sealed_ = false;
};

// QEMU's side of a clone, after it started with the template's RAM file
// and -incoming defer: loads the device state and waits until it is in.
Result<void> load_template(Qmp& qmp, const TemplateInfo& t);

}  // namespace isola
