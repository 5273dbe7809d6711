#include "vm/template.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/sha256.h"

namespace isola {

namespace {

constexpr const char* kConfigFile = "/etc/isola/vm-templates";
constexpr size_t kKeyLength = 32;
constexpr size_t kMaxTemplates = 8;  // the oldest go beyond this
constexpr int kSaveTimeoutMs = 60000;

int64_t mono_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What identifies a file's contents without reading them: a replaced or
// rewritten file gets another inode, size or change time.
Json file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Json{{"path", path}, {"missing", true}};
  return Json{{"path", path},
              {"ino", static_cast<uint64_t>(st.st_ino)},
              {"size", static_cast<int64_t>(st.st_size)},
              {"ctime_ns", static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec}};
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = path_join(dirs.substr(start, end - start), name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;
}

// A template's files are immutable once sealed: a clone's jailed worker
// holds its RAM and state as descriptors, and no one, root of its user
// namespace included, may write through them (vm/jail.h). Removing one
// lifts the flag first.
Result<void> set_immutable(const std::string& path, bool on) {
  UniqueFd fd = TRY(open_path(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  int flags = 0;
  if (::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) return fail(sys_error("read the flags of", path));
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  if (::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) != 0)
    return fail(make_error("make a template read-only", path,
                           std::string(std::strerror(errno)) + "; its file system must support immutable files "
                                                               "(tmpfs from Linux 6.0)"));
  return {};
}

Result<void> remove_template_dir(const std::string& dir) {
  if (auto entries = list_dir(dir))
    for (const std::string& e : *entries) (void)set_immutable(path_join(dir, e), false);
  return remove_tree(dir);
}

// What makers of `key` that died left (the caller holds its lock, so
// nobody is writing them), and removals that died half-way.
void sweep_leftovers(const std::string& dir, const std::string& key) {
  auto entries = list_dir(dir);
  if (!entries) return;
  for (const std::string& e : *entries)
    if (e.starts_with(".tmp-" + key + "-") || e.starts_with(".rm-")) (void)remove_template_dir(path_join(dir, e));
}

// Copies the data extents of `in` (tmpfs: holes stay holes) into `out`.
Result<void> copy_sparse(int in, int out, uint64_t size, const std::string& what) {
  if (::ftruncate(out, static_cast<off_t>(size)) != 0) return fail(sys_error("truncate", what));
  off_t pos = 0;
  const off_t end = static_cast<off_t>(size);
  std::vector<char> buf(1u << 20);
  while (pos < end) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return fail(sys_error("seek", what));
    }
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) return fail(sys_error("seek", what));
    // The RAM is a memfd and the template a file on another file system:
    // copy_file_range cannot cross them, so the bytes go through a buffer.
    for (off_t at = data; at < hole;) {
      ssize_t n = ::pread(in, buf.data(), std::min<size_t>(buf.size(), static_cast<size_t>(hole - at)), at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(n < 0 ? sys_error("read", "the VM's RAM") : make_error("read", "the VM's RAM", "short"));
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::pwrite(out, buf.data() + done, static_cast<size_t>(n - done), at + done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return fail(sys_error("write", what));
        done += w;
      }
      at += n;
    }
    pos = hole;
  }
  return {};
}

Result<TemplateInfo> read_template(const std::string& dir) {
  TemplateInfo t;
  t.dir = dir;
  Json j = TRY(parse_json(TRY(read_file(path_join(dir, "template.json"), 1u << 20)), "template.json"));
  t.key = TRY(json_string(j, "key", "template.json"));
  if (auto s = j.find("shape"); s != j.end() && s->is_object()) t.shape = *s;
  t.created_ns = json_int_or(j, "created_ns", 0);
  t.memory_mb = static_cast<uint64_t>(json_int_or(t.shape, "memory_mb", 0));
  struct stat st {};
  if (::stat(t.memory_path().c_str(), &st) != 0) return fail(sys_error("stat", t.memory_path()));
  if (static_cast<uint64_t>(st.st_size) != t.memory_mb << 20)
    return fail(make_error("read template", dir, "its RAM file does not have the VM's memory size"));
  t.disk_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  if (::stat(t.state_path().c_str(), &st) != 0) return fail(sys_error("stat", t.state_path()));
  t.disk_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  return t;
}

// True when `old` was made from assets that `fresh` supersedes: a file at
// the same path that has been replaced since (an upgraded kernel or QEMU),
// or another initramfs of the same guest directory (a rebuilt agent: the
// initramfs is named by its contents).
bool assets_replaced(const Json& old, const Json& fresh) {
  if (!old.is_object() || !fresh.is_object()) return false;
  auto dir_of = [](const std::string& p) { return p.substr(0, p.rfind('/') + 1); };
  for (const auto& [name, now] : fresh.items()) {
    auto was = old.find(name);
    if (was == old.end()) continue;
    std::string was_path = was->value("path", ""), now_path = now.value("path", "");
    if (was_path == now_path && *was != now) return true;
    if (name == "initramfs" && was_path != now_path && dir_of(was_path) == dir_of(now_path)) return true;
  }
  return false;
}

// Templates of replaced assets are never used again; past kMaxTemplates
// the oldest go too.
void prune_templates(const TemplateInfo& fresh) {
  auto all = list_templates();
  if (!all) return;
  const Json assets = fresh.shape.value("assets", Json());
  std::vector<TemplateInfo> kept;
  for (TemplateInfo& t : *all) {
    if (t.key == fresh.key) continue;
    if (assets_replaced(t.shape.value("assets", Json()), assets)) (void)remove_template(t.key);
    else kept.push_back(std::move(t));
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.created_ns > b.created_ns; });
  for (size_t i = kMaxTemplates - 1; i < kept.size(); ++i) (void)remove_template(kept[i].key);
}

}  // namespace

std::string templates_dir() {
  const char* env = std::getenv("ISOLA_TEMPLATE_DIR");
  return env && *env ? env : "/run/isola/templates";
}

std::string templates_off_reason() {
  if (const char* env = std::getenv("ISOLA_VM_TEMPLATES"); env && (std::string(env) == "off" || std::string(env) == "0"))
    return "templates are off on this host (ISOLA_VM_TEMPLATES=" + std::string(env) + ")";
  if (auto text = read_file(kConfigFile, 4096); text && text->starts_with("off"))
    return "templates are off on this host (isola system template disable)";
  return "";
}

Result<void> set_templates_enabled(bool enabled) {
  TRYV(mkdir_p("/etc/isola", 0755));
  return write_file_atomic(kConfigFile, enabled ? "on\n" : "off\n", 0644);
}

TemplateKey template_key(const VmConfig& config) {
  VmConfig c = config;
  // What differs between containers of one shape, and does not enter the
  // guest's saved state, is blanked out.
  c.id = "template";
  for (VmShare& s : c.shares) s.host_path = "-";
  c.agent_socket = c.console_log = "-";
  if (c.network) c.network = VmNetwork{"-", "-", "-", "-"};  // a clone's agent sets its own MAC
  c.memory_fd = -1;
  c.memory_shared = false;
  c.qmp_socket.clear();
  c.jail_root.clear();
  c.worker_cgroup.clear();
  c.incoming = false;
  Json shares = Json::array();
  for (const VmShare& s : c.shares) shares.push_back(s.tag + (s.readonly ? ":ro" : ""));
  Json assets = {{"qemu", file_identity(find_in_path("qemu-system-x86_64"))},
                 {"kernel", file_identity(c.assets.kernel)},
                 {"initramfs", file_identity(c.assets.initramfs)}};
  Json shape = {{"memory_mb", c.memory_mb}, {"cpus", c.cpus},   {"shares", shares},
                {"nic", c.network.has_value()}, {"accel", c.accel}, {"kernel", c.assets.kernel_version},
                {"kernel_args", c.kernel_args}, {"assets", assets}};
  Sha256 h;
  for (const std::string& a : qemu_command(c)) {
    h.update(a);
    h.update(std::string_view("\0", 1));
  }
  h.update(assets.dump());
  return TemplateKey{h.hex_digest().substr(0, kKeyLength), std::move(shape)};
}

std::optional<TemplateInfo> find_template(const std::string& key) {
  std::string dir = path_join(templates_dir(), key);
  if (!is_directory(dir)) return std::nullopt;
  auto t = read_template(dir);
  if (!t || t->key != key) {
    log_debug("template {} is unusable: {}", key, t ? "key mismatch" : t.error().message());
    return std::nullopt;
  }
  return std::move(*t);
}

Result<std::vector<TemplateInfo>> list_templates() {
  std::vector<TemplateInfo> out;
  std::string dir = templates_dir();
  if (!is_directory(dir)) return out;
  for (const std::string& e : TRY(list_dir(dir))) {
    if (e.size() != kKeyLength || e[0] == '.') continue;
    if (auto t = read_template(path_join(dir, e)); t && t->key == e) out.push_back(std::move(*t));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_ns < b.created_ns; });
  return out;
}

Result<void> remove_template(const std::string& key) {
  std::string dir = templates_dir();
  std::string match;
  for (const std::string& e : TRY(list_dir(dir))) {
    if (e.size() != kKeyLength || !e.starts_with(key)) continue;
    if (!match.empty()) return fail(make_error("remove template", key, "the prefix names more than one template"));
    match = e;
  }
  if (key.empty() || match.empty())
    return fail(make_error("remove template", key, "no such template; 'isola system template ls' lists them"));
  // Renamed away first: a start looking for it never sees half of it.
  std::string doomed = path_join(dir, ".rm-" + match + "-" + random_hex(8));
  if (::rename(path_join(dir, match).c_str(), doomed.c_str()) != 0) return fail(sys_error("rename", match));
  return remove_template_dir(doomed);
}

Result<std::optional<TemplateMaker>> TemplateMaker::begin(const TemplateKey& key, uint64_t memory_mb) {
  std::string dir = templates_dir();
  TRYV(mkdir_p(dir, 0700));
  if (::chmod(dir.c_str(), 0700) != 0) return fail(sys_error("chmod", dir));
  auto lock = TRY(FileLock::try_acquire(path_join(dir, ".lock-" + key.id)));
  if (!lock) return std::optional<TemplateMaker>();
  if (find_template(key.id)) return std::optional<TemplateMaker>();  // made while we looked
  sweep_leftovers(dir, key.id);
  TemplateMaker m;
  m.key_ = key;
  m.memory_mb_ = memory_mb;
  m.lock_ = std::move(lock);
  m.staging_ = TRY(make_temp_dir(dir, ".tmp-" + key.id + "-"));
  int fd = ::memfd_create("isola-vm-ram", MFD_CLOEXEC);
  if (fd < 0) return fail(sys_error("memfd_create", "the VM's RAM"));
  m.work_.reset(fd);
  if (::ftruncate(fd, static_cast<off_t>(memory_mb << 20)) != 0) return fail(sys_error("truncate", "the VM's RAM"));
  return std::optional<TemplateMaker>(std::move(m));
}

TemplateMaker::~TemplateMaker() {
  if (!sealed_ && !staging_.empty()) (void)remove_template_dir(staging_);
}

Result<Json> TemplateMaker::save(Qmp& qmp) {
  int64_t t0 = mono_ms();
  TRY(qmp.execute("stop"));
  TRY(qmp.execute("migrate-set-capabilities",
                  {{"capabilities", Json::array({{{"capability", "x-ignore-shared"}, {"state", true}}})}}));
  {
    UniqueFd state = TRY(open_path(path_join(staging_, "state"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    TRYV(qmp.pass_fd(state.get(), "template-state"));
  }
  TRY(qmp.execute("migrate", {{"uri", "fd:template-state"}}));
  for (int64_t deadline = mono_ms() + kSaveTimeoutMs;;) {
    Json info = TRY(qmp.execute("query-migrate"));
    std::string status = json_string_or(info, "status");
    if (status == "completed") break;
    if (status == "failed" || status == "cancelled")
      return fail(make_error("save the VM", key_.id, "migration " + status + ": " + json_string_or(info, "error-desc")));
    if (mono_ms() > deadline) return fail(make_error("save the VM", key_.id, "migration did not complete in time"));
    ::usleep(1000);
  }
  int64_t t1 = mono_ms();
  std::string mem = path_join(staging_, "memory");
  {
    UniqueFd out = TRY(open_path(mem, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    TRYV(copy_sparse(work_.get(), out.get(), memory_mb_ << 20, mem));
  }
  int64_t t2 = mono_ms();
  Json meta = {{"key", key_.id}, {"shape", key_.shape}, {"created_ns", wall_ns()}};
  TRYV(write_file_atomic(path_join(staging_, "template.json"), meta.dump(2) + "\n", 0400));
  for (const char* f : {"memory", "state"}) {
    if (::chmod(path_join(staging_, f).c_str(), 0400) != 0) return fail(sys_error("chmod", f));
    TRYV(set_immutable(path_join(staging_, f), true));
  }
  std::string final_dir = path_join(templates_dir(), key_.id);
  if (::rename(staging_.c_str(), final_dir.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) return Json{{"save", t1 - t0}, {"copy", t2 - t1}};  // kept theirs
    return fail(sys_error("rename", final_dir));
  }
  sealed_ = true;
  if (auto made = read_template(final_dir)) prune_templates(*made);
  return Json{{"save", t1 - t0}, {"copy", t2 - t1}};
}

Result<void> load_template(Qmp& qmp, const TemplateInfo& t) {
  TRY(qmp.execute("migrate-set-capabilities",
                  {{"capabilities", Json::array({{{"capability", "x-ignore-shared"}, {"state", true}},
                                                 {{"capability", "events"}, {"state", true}}})}}));
  {
    UniqueFd state = TRY(open_path(t.state_path(), O_RDONLY | O_CLOEXEC));
    TRYV(qmp.pass_fd(state.get(), "template-state"));
  }
  TRY(qmp.execute("migrate-incoming", {{"uri", "fd:template-state"}}));
  for (;;) {
    Json ev = TRY(qmp.wait_event("MIGRATION", "", "", kSaveTimeoutMs));
    std::string status = ev.contains("data") && ev["data"].is_object() ? json_string_or(ev["data"], "status") : "";
    if (status == "completed") return {};
    if (status == "failed" || status == "cancelled")
      return fail(make_error("load the template", t.key, "QEMU could not load its saved state (" + status + ")"));
  }
}

}  // namespace isola
