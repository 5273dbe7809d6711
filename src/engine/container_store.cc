#include "engine/container_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "image/digest.h"
#include "image/rootfs.h"

namespace isola {

namespace {

const char* kAdjectives[] = {"amber", "brave", "calm", "clever", "eager", "fond", "gentle", "happy",
                             "jolly", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rapid",
                             "sharp", "steady", "swift", "tidy", "vivid", "warm", "wise", "zesty"};
const char* kNouns[] = {"badger", "crane", "dolphin", "falcon", "gecko", "heron", "ibis", "jaguar",
                        "koala", "lemur", "marten", "newt", "otter", "panda", "quail", "raven",
                        "salmon", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "lynx"};

std::string random_name() {
  std::string hex = random_hex(4);
  unsigned v = static_cast<unsigned>(std::stoul(hex, nullptr, 16));
  return std::string(kAdjectives[v % std::size(kAdjectives)]) + "_" +
         kNouns[(v / std::size(kAdjectives)) % std::size(kNouns)];
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

const char* isolation_name(Isolation i) { return i == Isolation::vm ? "vm" : "process"; }

}  // namespace

Json ContainerRecord::to_json() const {
  return {{"id", id},
          {"name", name},
          {"image", image},
          {"image_id", image_id},
          {"command", command},
          {"created_ns", created_ns},
          {"isolation", isolation_name(isolation)},
          {"tty", tty},
          {"interactive", interactive},
          {"auto_remove", auto_remove},
          {"keep_log", keep_log},
          {"stop_signal", stop_signal},
          {"userns_base", userns_base},
          {"labels", labels},
          {"options", options}};
}

Result<ContainerRecord> ContainerRecord::from_json(const Json& j) {
  const std::string what = "container record";
  ContainerRecord r;
  r.id = TRY(json_string(j, "id", what));
  if (!Digest::is_hex64(r.id)) return fail(make_error("read", what, "bad container ID"));
  r.name = json_string_or(j, "name");
  r.image = json_string_or(j, "image");
  r.image_id = json_string_or(j, "image_id");
  if (auto it = j.find("command"); it != j.end() && it->is_array())
    for (const Json& a : *it)
      if (a.is_string()) r.command.push_back(a.get<std::string>());
  r.created_ns = j.value("created_ns", int64_t{0});
  r.isolation = json_string_or(j, "isolation") == "vm" ? Isolation::vm : Isolation::process;
  r.tty = j.value("tty", false);
  r.interactive = j.value("interactive", false);
  r.auto_remove = j.value("auto_remove", false);
  r.keep_log = j.value("keep_log", true);
  r.stop_signal = json_string_or(j, "stop_signal", "SIGTERM");
  r.userns_base = j.value("userns_base", uint32_t{0});
  if (auto it = j.find("labels"); it != j.end() && it->is_object())
    for (auto& [k, v] : it->items())
      if (v.is_string()) r.labels[k] = v.get<std::string>();
  if (auto it = j.find("options"); it != j.end()) r.options = *it;
  return r;
}

Json ContainerState::to_json() const {
  return {{"status", status},           {"pid", pid},
          {"pid_start", pid_start},     {"monitor_pid", monitor_pid},
          {"monitor_start", monitor_start}, {"exit_code", exit_code},
          {"oom_killed", oom_killed},   {"restart_count", restart_count}, {"restart_delay_ms", restart_delay_ms},
          {"started_ns", started_ns},
          {"finished_ns", finished_ns}, {"error", error},
          {"accelerator", accelerator}, {"guest_kernel", guest_kernel}, {"boot_ms", boot_ms},
          {"exec_ms", exec_ms},         {"boot", boot},
          {"boot_reason", boot_reason}, {"template_key", template_key},
          {"boot_phases", boot_phases}};
}

ContainerState ContainerState::from_json(const Json& j) {
  ContainerState s;
  if (!j.is_object()) return s;
  s.status = json_string_or(j, "status", "created");
  s.pid = j.value("pid", 0);
  s.pid_start = j.value("pid_start", uint64_t{0});
  s.monitor_pid = j.value("monitor_pid", 0);
  s.monitor_start = j.value("monitor_start", uint64_t{0});
  s.exit_code = j.value("exit_code", 0);
  s.oom_killed = j.value("oom_killed", false);
  s.restart_count = j.value("restart_count", 0);
  s.restart_delay_ms = j.value("restart_delay_ms", int64_t{0});
  s.started_ns = j.value("started_ns", int64_t{0});
  s.finished_ns = j.value("finished_ns", int64_t{0});
  s.error = json_string_or(j, "error");
  s.accelerator = json_string_or(j, "accelerator");
  s.guest_kernel = json_string_or(j, "guest_kernel");
  s.boot_ms = j.value("boot_ms", int64_t{0});
  s.exec_ms = j.value("exec_ms", int64_t{0});
  s.boot = json_string_or(j, "boot");
  s.boot_reason = json_string_or(j, "boot_reason");
  s.template_key = json_string_or(j, "template_key");
  if (auto p = j.find("boot_phases"); p != j.end() && p->is_object()) s.boot_phases = *p;
  return s;
}

uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text) return 0;
  // The command name may contain spaces and parentheses: fields follow the last ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos) return 0;
  unsigned long long start = 0;
  char state = 0;
  // After ") ": state(3) ... starttime is field 22, i.e. the 20th after the state.
  const char* p = text->c_str() + close + 2;
  if (std::sscanf(p, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &state,
                  &start) != 2)
    return 0;
  if (state == 'Z' || state == 'X') return 0;
  return start;
}

bool process_matches(pid_t pid, uint64_t start) {
  return pid > 0 && start != 0 && process_start_time(pid) == start;
}

int64_t now_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string format_time_ns(int64_t ns) {
  if (ns <= 0) return "0001-01-01T00:00:00Z";
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ns % 1000000000));
  return buf;
}

Result<ContainerStore> ContainerStore::open(const std::string& root) {
  TRYV(mkdir_p(path_join(root, "containers"), 0711));
  return ContainerStore(root);
}

std::string ContainerStore::dir(const std::string& id) const { return path_join(root_, "containers/" + id); }
std::string ContainerStore::run_dir(const std::string& id) { return "/run/isola/" + id; }
std::string ContainerStore::socket_path(const std::string& id) { return run_dir(id) + "/ctl.sock"; }

Result<FileLock> ContainerStore::lock_names() const {
  return FileLock::acquire(path_join(root_, "containers.lock"), FileLock::Mode::exclusive);
}

Result<FileLock> ContainerStore::lock(const std::string& id) const {
  return FileLock::acquire(path_join(dir(id), "lock"), FileLock::Mode::exclusive);
}

Result<ContainerRecord> ContainerStore::create(ContainerRecord record, bool allocate_userns) {
  if (!record.name.empty() && !valid_name(record.name))
    return fail(make_error("create container", record.name,
                           "invalid name: use letters, digits, '_', '.' and '-', starting with a letter or digit"));
  FileLock guard = TRY(lock_names());
  remove_stale_locked();
  std::vector<ContainerRecord> existing = TRY(list());
  auto taken = [&](const std::string& name) {
    return std::any_of(existing.begin(), existing.end(), [&](const ContainerRecord& r) { return r.name == name; });
  };
  if (record.name.empty()) {
    do record.name = random_name();
    while (taken(record.name) && (record.name += "_" + random_hex(4), taken(record.name)));
  } else if (taken(record.name)) {
    return fail(make_error("create container", record.name,
                           "the name is already in use; remove that container or choose another name"));
  }
  if (allocate_userns) {
    std::vector<uint32_t> used;
    for (const ContainerRecord& r : existing) used.push_back(r.userns_base);
    record.userns_base = 0;
    for (uint32_t k = 0; k < 4000 && record.userns_base == 0; ++k) {
      uint32_t base = kUsernsFirstBase + k * kUsernsSize;
      if (std::find(used.begin(), used.end(), base) == used.end()) record.userns_base = base;
    }
    if (record.userns_base == 0)
      return fail(make_error("create container", record.name, "no free host id range for --userns=auto"));
  }
  record.id = random_hex(64);
  record.created_ns = now_ns();
  std::string d = dir(record.id);
  std::string staging = d + ".creating";
  TRYV(mkdir_p(staging, 0700));
  auto written = write_file_atomic(path_join(staging, "container.json"), record.to_json().dump(2) + "\n", 0600);
  if (written) written = write_file_atomic(path_join(staging, "state.json"), ContainerState{}.to_json().dump() + "\n", 0600);
  // A container in a user namespace must reach its rootfs as its mapped root.
  if (written && record.userns_base != 0 && ::chown(staging.c_str(), record.userns_base, record.userns_base) != 0)
    written = fail(sys_error("chown", staging));
  if (written && ::rename(staging.c_str(), d.c_str()) != 0) written = fail(sys_error("rename", d));
  if (!written) {
    (void)remove_tree(staging);
    return fail(written.error());
  }
  return record;
}

Result<std::vector<ContainerRecord>> ContainerStore::list() const {
  std::vector<ContainerRecord> out;
  for (const std::string& name : TRY(list_dir(path_join(root_, "containers")))) {
    if (!Digest::is_hex64(name)) continue;  // staging or foreign entries
    auto text = read_file(path_join(dir(name), "container.json"), 4u << 20);
    if (!text) continue;
    auto j = parse_json(*text, name);
    if (!j) continue;
    auto rec = ContainerRecord::from_json(*j);
    if (rec) out.push_back(std::move(*rec));
  }
  std::sort(out.begin(), out.end(),
            [](const ContainerRecord& a, const ContainerRecord& b) { return a.created_ns > b.created_ns; });
  return out;
}

Result<ContainerRecord> ContainerStore::resolve(const std::string& ref) const {
  std::vector<ContainerRecord> all = TRY(list());
  for (const ContainerRecord& r : all)
    if (r.name == ref || r.id == ref) return r;
  const ContainerRecord* found = nullptr;
  if (ref.size() >= 3 && ref.find_first_not_of("0123456789abcdef") == std::string::npos) {
    for (const ContainerRecord& r : all) {
      if (r.id.compare(0, ref.size(), ref) != 0) continue;
      if (found) return fail(make_error("find container", ref, "the ID prefix is ambiguous; give more characters"));
      found = &r;
    }
  }
  if (found) return *found;
  return fail(make_error("container", ref, "no such container"));
}

Result<void> ContainerStore::rename(const std::string& ref, const std::string& new_name) {
  if (!valid_name(new_name))
    return fail(make_error("rename container", new_name,
                           "invalid name: use letters, digits, '_', '.' and '-', starting with a letter or digit"));
  FileLock guard = TRY(lock_names());
  ContainerRecord rec = TRY(resolve(ref));
  for (const ContainerRecord& r : TRY(list()))
    if (r.name == new_name && r.id != rec.id)
      return fail(make_error("rename container", new_name, "the name is already in use"));
  // The record is rewritten under its container's lock too, as update
  // rewrites it (names lock first, then the container's: never the other way).
  FileLock one = TRY(lock(rec.id));
  rec = TRY(resolve(rec.id));
  rec.name = new_name;
  return write_record(rec);
}

Result<void> ContainerStore::remove_stale() {
  FileLock guard = TRY(lock_names());
  remove_stale_locked();
  return {};
}

void ContainerStore::remove_stale_locked() const {
  // Both exist only while create() or remove() holds the names lock, which
  // the caller holds now: any found belongs to a process that died.
  std::vector<std::string> stale;
  if (auto names = list_dir(path_join(root_, "containers")); names)
    for (const std::string& name : *names)
      if (name.ends_with(".creating")) stale.push_back(path_join(root_, "containers/" + name));
  if (auto names = list_dir(path_join(root_, "tmp")); names)
    for (const std::string& name : *names)
      if (name.starts_with("container-") && Digest::is_hex64(name.substr(10))) {
        stale.push_back(path_join(root_, "tmp/" + name));
        stale.push_back(run_dir(name.substr(10)));
      }
  for (const std::string& path : stale) {
    (void)unmount_path(path_join(path, "rootfs"));  // a remover that died before unmounting
    (void)remove_tree(path);
  }
}

Result<void> ContainerStore::remove(const std::string& id) {
  FileLock guard = TRY(lock_names());
  remove_stale_locked();
  std::string d = dir(id);
  // Rename first so a half-removed container never lists.
  std::string trash = path_join(root_, "tmp/container-" + id);
  (void)mkdir_p(path_join(root_, "tmp"), 0700);
  if (::rename(d.c_str(), trash.c_str()) != 0 && errno != ENOENT) return fail(sys_error("rename", d));
  TRYV(remove_tree(trash));
  (void)remove_tree(run_dir(id));
  return {};
}

Result<void> ContainerStore::unmount_rootfs(const std::string& id) const { return unmount_path(rootfs_dir(id)); }

ContainerState ContainerStore::recorded_state(const std::string& id) const {
  auto text = read_file(path_join(dir(id), "state.json"), 1u << 20);
  if (!text) return {};
  auto j = parse_json(*text, "state");
  if (!j) return {};
  return ContainerState::from_json(*j);
}

ContainerState ContainerStore::state(const std::string& id) const {
  ContainerState s = recorded_state(id);
  if (s.status == "running" || s.status == "paused") {
    // A live monitor records the exit itself, a moment after the process
    // ends. Without one nobody will: tell the truth from here. (The
    // container's init dies with its monitor: PR_SET_PDEATHSIG.)
    if (!process_matches(s.monitor_pid, s.monitor_start)) {
      s.status = "exited";
      if (s.finished_ns == 0) s.finished_ns = now_ns();
      if (s.error.empty()) s.error = "the container's monitor died";
      if (s.exit_code == 0) s.exit_code = 137;
      // Recorded, so the first look fixes the time it finished (best
      // effort: unless a new monitor took the record over meanwhile).
      if (recorded_state(id).monitor_pid == s.monitor_pid) (void)write_state(id, s);
    }
  }
  // A monitor waiting to restart its container that died: nobody will.
  if (s.status == "restarting" && !process_matches(s.monitor_pid, s.monitor_start)) s.status = "exited";
  return s;
}

Result<void> ContainerStore::write_record(const ContainerRecord& rec) const {
  return write_file_atomic(path_join(dir(rec.id), "container.json"), rec.to_json().dump(2) + "\n", 0600);
}

Result<void> ContainerStore::write_state(const std::string& id, const ContainerState& state) const {
  std::string path = path_join(dir(id), "state.json");
  std::string text = state.to_json().dump() + "\n";
  auto written = write_file_atomic(path, text, 0600);
  if (written || (written.error().err != ENOSPC && written.error().err != EDQUOT)) return written;
  // A full file system (a container filled it) has no room for a new file,
  // but the old state's own blocks can take the new one: overwrite it in
  // place, padded with spaces to its old length, so the exit is still
  // recorded. Not atomic, but better than a record that stays "running".
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return written;
  size_t old_size = static_cast<size_t>(st.st_size);
  if (text.size() < old_size) text.insert(text.size() - 1, old_size - text.size(), ' ');
  if (!write_file_in_place(path, text)) return written;
  return {};
}

}  // namespace isola
