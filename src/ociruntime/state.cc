#include "ociruntime/state.h"

#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/container_store.h"
#include "runtime/cgroup.h"

namespace isola::oci {

Json ContainerInfo::to_json() const {
  Json ann = Json::object();
  for (const auto& [k, v] : annotations) ann[k] = v;
  Json j = {{"id", id},
          {"bundle", bundle},
          {"rootfs", rootfs},
          {"backend", backend == Backend::vm ? "vm" : "process"},
          {"pid", pid},
          {"pid_start", pid_start},
          {"cgroup_path", cgroup_path},
          {"created_ns", created_ns},
          {"annotations", ann},
          {"keeper_socket", keeper_socket}};
  if (!pod_sandbox.empty()) j["pod_sandbox"] = pod_sandbox;
  return j;
}

Result<ContainerInfo> ContainerInfo::from_json(const Json& j) {
  const std::string what = "state.json";
  ContainerInfo c;
  c.id = TRY(json_string(j, "id", what));
  c.bundle = json_string_or(j, "bundle");
  c.rootfs = json_string_or(j, "rootfs");
  c.backend = json_string_or(j, "backend") == "vm" ? Backend::vm : Backend::process;
  c.pid = static_cast<pid_t>(json_int_or(j, "pid", 0));
  c.pid_start = static_cast<uint64_t>(json_int_or(j, "pid_start", 0));
  c.cgroup_path = json_string_or(j, "cgroup_path");
  c.created_ns = json_int_or(j, "created_ns", 0);
  if (auto it = j.find("annotations"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) c.annotations[k] = v.get<std::string>();
  c.keeper_socket = json_string_or(j, "keeper_socket");
  c.pod_sandbox = json_string_or(j, "pod_sandbox");
  return c;
}

std::string status_of(const ContainerInfo& info, const std::string& start_socket) {
  if (info.pid <= 0 || !process_matches(info.pid, info.pid_start)) return "stopped";
  // A zombie has exited; its parent (the engine's shim) has yet to reap it.
  if (auto stat = read_file("/proc/" + std::to_string(info.pid) + "/stat", 4096)) {
    size_t close = stat->rfind(')');
    if (close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z') return "stopped";
  }
  if (path_exists(start_socket)) return "created";
  if (!info.cgroup_path.empty()) {
    if (auto cg = Cgroup::open(info.cgroup_path)) {
      if (auto frozen = cg->frozen(); frozen && *frozen) return "paused";
    }
  }
  return "running";
}

Json oci_state(const ContainerInfo& info, const std::string& status) {
  Json ann = Json::object();
  for (const auto& [k, v] : info.annotations) ann[k] = v;
  Json j = {{"ociVersion", "1.1.0"}, {"id", info.id}, {"status", status}, {"bundle", info.bundle}};
  j["pid"] = status == "stopped" ? 0 : info.pid;
  if (!ann.empty()) j["annotations"] = std::move(ann);
  j["rootfs"] = info.rootfs;
  j["created"] = format_time_ns(info.created_ns);
  return j;
}

Result<void> check_id(const std::string& id) {
  auto bad = [&](const char* why) { return fail(make_error("container id", id, why)); };
  if (id.empty()) return bad("is empty");
  if (id.size() > 1024) return bad("is longer than 1024 bytes");
  if (id[0] == '.') return bad("must not start with '.'");
  for (char ch : id) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '+' || ch == '-' || ch == '.';
    if (!ok) return bad("may contain only letters, digits and _ + - .");
  }
  return {};
}

Result<StateRoot> StateRoot::open(const std::string& root) {
  if (root.empty() || root[0] != '/') return fail(make_error("state root", root, "must be an absolute path"));
  TRYV(mkdir_p(root, 0700));
  return StateRoot(root);
}

Result<UniqueFd> StateRoot::lock(const std::string& id) const {
  TRYV(check_id(id));
  int fd = ::open(dir(id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail(make_error("container", id, "does not exist"));
    return fail(sys_error("open", dir(id)));
  }
  UniqueFd owner(fd);
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return fail(sys_error("lock", dir(id)));
  return owner;
}

Result<void> StateRoot::add(const std::string& id) const {
  TRYV(check_id(id));
  if (::mkdir(dir(id).c_str(), 0700) != 0) {
    if (errno == EEXIST) return fail(make_error("create container", id, "a container with this ID already exists"));
    return fail(sys_error("mkdir", dir(id)));
  }
  return {};
}

Result<ContainerInfo> StateRoot::load(const std::string& id) const {
  TRYV(check_id(id));
  auto text = read_file(state_path(id), 1u << 20);
  if (!text) {
    if (text.error().err == ENOENT) return fail(make_error("container", id, "does not exist"));
    return fail(text.error());
  }
  return ContainerInfo::from_json(TRY(parse_json(*text, state_path(id))));
}

Result<void> StateRoot::save(const ContainerInfo& info) const {
  return write_file_atomic(state_path(info.id), info.to_json().dump() + "\n", 0600);
}

Result<void> StateRoot::remove(const std::string& id) const {
  TRYV(check_id(id));
  return remove_tree(dir(id));
}

Result<std::vector<std::string>> StateRoot::list() const {
  std::vector<std::string> ids;
  for (std::string& name : TRY(list_dir(root_)))
    if (name[0] != '.' && path_exists(state_path(name))) ids.push_back(std::move(name));
  return ids;
}

}  // namespace isola::oci
