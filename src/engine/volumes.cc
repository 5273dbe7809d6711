#include "engine/volumes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "engine/events.h"
#include "engine/spec_builder.h"
#include "image/shift.h"

namespace isola {

namespace {

constexpr const char* kNameRule = "[a-zA-Z0-9][a-zA-Z0-9_.-]+";

bool name_char(char c, bool first) {
  bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  return alnum || (!first && (c == '_' || c == '.' || c == '-'));
}

Json string_map(const std::map<std::string, std::string>& m) {
  Json j = Json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

std::map<std::string, std::string> map_of(const Json& j, const char* key) {
  std::map<std::string, std::string> out;
  if (auto it = j.find(key); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

}  // namespace

Json VolumeRecord::to_json() const {
  return {{"name", name},       {"driver", driver},         {"labels", string_map(labels)},
          {"options", string_map(options)}, {"created_ns", created_ns}, {"anonymous", anonymous}};
}

Result<VolumeRecord> VolumeRecord::from_json(const Json& j) {
  VolumeRecord r;
  r.name = TRY(json_string(j, "name", "volume.json"));
  r.driver = json_string_or(j, "driver", "local");
  r.labels = map_of(j, "labels");
  r.options = map_of(j, "options");
  r.created_ns = json_int_or(j, "created_ns", 0);
  r.anonymous = json_bool_or(j, "anonymous", false);
  return r;
}

Result<void> check_volume_name(const std::string& name) {
  bool ok = name.size() >= 2 && name.size() <= 255;
  for (size_t i = 0; ok && i < name.size(); ++i) ok = name_char(name[i], i == 0);
  if (ok) return {};
  std::string fix = name.find('/') != std::string::npos
                        ? "; to mount a host directory give an absolute path (/host/dir:/container/dir)"
                        : "; choose another name";
  return fail(make_error("volume", name, std::string("invalid volume name: only ") + kNameRule + " is allowed" + fix));
}

Result<VolumeStore> VolumeStore::open(const std::string& root) {
  std::string dir = path_join(root, "volumes");
  // Search-only for others: a --userns=auto container's root is an
  // unprivileged host id that must reach the volumes' _data directories.
  TRYV(mkdir_p(dir, 0701));
  return VolumeStore(dir);
}

bool VolumeStore::exists(const std::string& name) const {
  return check_volume_name(name).has_value() && path_exists(path_join(dir(name), "volume.json"));
}

Result<VolumeRecord> VolumeStore::create(VolumeRecord rec, bool* created) {
  if (created) *created = false;
  if (rec.name.empty()) {
    rec.name = random_hex(64);
    rec.anonymous = true;
  }
  TRYV(check_volume_name(rec.name));
  if (rec.driver.empty()) rec.driver = "local";
  if (rec.driver != "local")
    return fail(make_error("create volume", rec.name, "unknown driver '" + rec.driver + "'; isola has the local driver only"));
  if (exists(rec.name)) return get(rec.name);
  rec.created_ns = now_ns();
  // Made complete under a temporary name, then renamed: a volume either
  // exists whole or not at all, and of two creates of one name one wins.
  std::string staging = TRY(make_temp_dir(dir_, ".tmp-"));
  auto made = [&]() -> Result<void> {
    if (::chmod(staging.c_str(), 0701) != 0) return fail(sys_error("chmod", staging));
    std::string data = path_join(staging, "_data");
    if (::mkdir(data.c_str(), 0755) != 0) return fail(sys_error("mkdir", data));
    TRYV(write_file_atomic(path_join(staging, "volume.json"), rec.to_json().dump(2) + "\n", 0600));
    if (::rename(staging.c_str(), dir(rec.name).c_str()) != 0) return fail(sys_error("rename", dir(rec.name)));
    return {};
  }();
  if (!made) {
    (void)remove_tree(staging);
    if (exists(rec.name)) return get(rec.name);
    return fail(made.error());
  }
  if (created) *created = true;
  record_named_event(path_join(dir_, ".."), "volume", "create", rec.name, rec.name, {{"driver", rec.driver}});
  return rec;
}

Result<VolumeRecord> VolumeStore::get(const std::string& name) const {
  if (!exists(name))
    return fail(make_error("volume", name, "no such volume; see 'isola volume ls'"));
  std::string text = TRY(read_file(path_join(dir(name), "volume.json"), 1u << 20));
  return VolumeRecord::from_json(TRY(parse_json(text, "volume.json of " + name)));
}

Result<std::vector<VolumeRecord>> VolumeStore::list() const {
  std::vector<VolumeRecord> out;
  for (const std::string& name : TRY(list_dir(dir_))) {
    if (name.starts_with(".")) continue;
    if (auto rec = get(name); rec) out.push_back(*rec);
  }
  std::sort(out.begin(), out.end(), [](const VolumeRecord& a, const VolumeRecord& b) { return a.name < b.name; });
  return out;
}

Result<void> VolumeStore::remove(const std::string& name) {
  if (!exists(name)) return fail(make_error("remove volume", name, "no such volume; see 'isola volume ls'"));
  // Renamed first, so a removal cut short leaves no half volume by its name.
  std::string doomed = path_join(dir_, ".rm-" + name + "-" + random_hex(8));
  if (::rename(dir(name).c_str(), doomed.c_str()) != 0) return fail(sys_error("rename", dir(name)));
  record_named_event(path_join(dir_, ".."), "volume", "destroy", name, name, {{"driver", "local"}});
  return remove_tree(doomed);
}

std::map<std::string, std::vector<std::string>> volume_users(const ContainerStore& containers) {
  std::map<std::string, std::vector<std::string>> out;
  auto list = containers.list();
  if (!list) return out;
  for (const ContainerRecord& r : *list) {
    auto mounts = r.options.find("Mounts");
    if (mounts == r.options.end() || !mounts->is_array()) continue;
    for (const Json& m : *mounts)
      if (json_string_or(m, "Type") == "volume") out[json_string_or(m, "Name")].push_back(r.id);
  }
  return out;
}

Result<void> remove_unused_volume(VolumeStore& volumes, const ContainerStore& containers, const std::string& name,
                                  const std::string& except) {
  if (!volumes.exists(name)) return fail(make_error("remove volume", name, "no such volume; see 'isola volume ls'"));
  auto users = volume_users(containers);
  if (auto it = users.find(name); it != users.end()) std::erase(it->second, except);
  if (auto it = users.find(name); it != users.end() && !it->second.empty()) {
    std::string ids;
    for (const std::string& id : it->second) ids += (ids.empty() ? "" : ", ") + id;
    return fail(make_error("remove volume", name, "volume is in use - [" + ids + "]; remove those containers first (isola rm)"));
  }
  return volumes.remove(name);
}

void remove_anonymous_volumes(const std::string& root, const ContainerRecord& rec) {
  auto mounts = rec.options.find("Mounts");
  if (mounts == rec.options.end() || !mounts->is_array()) return;
  auto volumes = VolumeStore::open(root);
  auto containers = ContainerStore::open(root);
  if (!volumes || !containers) return;
  for (const Json& m : *mounts)
    if (json_string_or(m, "Type") == "volume" && json_bool_or(m, "Anonymous", false))
      (void)remove_unused_volume(*volumes, *containers, json_string_or(m, "Name"), rec.id);
}

Json volume_json(const VolumeStore& store, const VolumeRecord& rec) {
  Json labels = rec.labels.empty() ? Json(nullptr) : string_map(rec.labels);
  Json options = rec.options.empty() ? Json(nullptr) : string_map(rec.options);
  return {{"CreatedAt", format_time_ns(rec.created_ns)},
          {"Driver", rec.driver},
          {"Labels", labels},
          {"Mountpoint", store.data_dir(rec.name)},
          {"Name", rec.name},
          {"Options", options},
          {"Scope", "local"}};
}

Json mount_json(const VolumeOption& v) {
  static const char* kinds[] = {"bind", "volume", "tmpfs"};
  Json j = {{"Type", kinds[static_cast<int>(v.kind)]},
            {"Source", v.kind == MountKind::volume ? v.host_path : v.kind == MountKind::bind ? v.source : ""},
            {"Destination", v.destination},
            {"Mode", v.readonly ? "ro" : ""},
            {"RW", !v.readonly},
            {"Propagation", v.kind == MountKind::bind ? (v.propagation.empty() ? "rprivate" : v.propagation) : ""}};
  if (v.kind == MountKind::volume) {
    j["Name"] = v.source;
    j["Driver"] = "local";
    j["Anonymous"] = v.anonymous;
    if (v.nocopy) j["NoCopy"] = true;
  }
  if (v.kind == MountKind::tmpfs) {
    if (v.tmpfs_size) j["TmpfsSize"] = *v.tmpfs_size;
    if (v.tmpfs_mode) j["TmpfsMode"] = *v.tmpfs_mode;
  }
  return j;
}

Result<void> prepare_volume(const VolumeStore& store, const std::string& name, const std::string& rootfs,
                            const std::string& destination, bool nocopy, uint32_t userns_base) {
  std::string data = store.data_dir(name);
  if (!TRY(list_dir(data)).empty()) return {};
  if (!nocopy) {
    // The image's directory at `destination`, resolved as the container
    // would (inside its rootfs); nothing to copy when there is none.
    UniqueFd root = TRY(open_dir(rootfs));
    std::string rel = destination.substr(destination.find_first_not_of('/') == std::string::npos
                                             ? destination.size()
                                             : destination.find_first_not_of('/'));
    auto source = rel.empty() ? open_path(rootfs, O_PATH | O_DIRECTORY)
                              : open_in_root(root.get(), rel, O_PATH | O_DIRECTORY);
    if (source) {
      char buf[4096];
      std::string link = "/proc/self/fd/" + std::to_string(source->get());
      ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
      if (n <= 0) return fail(sys_error("readlink", link));
      // A copy of its own for each container that starts with the volume
      // empty (they may be created at once); the first rename wins.
      std::string staging = TRY(make_temp_dir(store.dir(name), ".copy-"));
      std::string copy = path_join(staging, "_data");
      // The rootfs of a --userns=auto container is already shifted.
      auto copied = copy_shifted(std::string(buf, static_cast<size_t>(n)), copy, 0);
      if (!copied) {
        (void)remove_tree(staging);
        return fail(copied.error().context("copy the image's " + destination + " into volume " + name));
      }
      // rename(2) replaces an empty directory only: the volume holds one
      // whole copy, or stays as another container filled it.
      int renamed = ::rename(copy.c_str(), data.c_str());
      int e = errno;
      (void)remove_tree(staging);
      if (renamed != 0 && e != ENOTEMPTY && e != EEXIST) {
        errno = e;
        return fail(sys_error("rename", data));
      }
      return {};
    }
  }
  if (userns_base != 0 && ::chown(data.c_str(), userns_base, userns_base) != 0) return fail(sys_error("chown", data));
  return {};
}

namespace {

Error mount_error(const std::string& text, const std::string& detail) {
  return make_error("--mount", text, detail);
}

Result<bool> parse_bool(const std::string& text, const std::string& key, const std::string& value) {
  if (value.empty() || value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return fail(mount_error(text, "invalid value for " + key + ": " + value + "; use true or false"));
}

// Checks that only the keys of `v.kind` were given.
Result<void> check_mount_kind(const std::string& text, const VolumeOption& v, const std::vector<std::string>& keys) {
  static const char* kinds[] = {"bind", "volume", "tmpfs"};
  std::string type = kinds[static_cast<int>(v.kind)];
  for (const std::string& k : keys) {
    bool bad = (k.starts_with("bind-") && v.kind != MountKind::bind) ||
               (k.starts_with("volume-") && v.kind != MountKind::volume) ||
               (k.starts_with("tmpfs-") && v.kind != MountKind::tmpfs);
    if (bad)
      return fail(mount_error(text, "invalid mount config for type \"" + type + "\": " + k +
                                        " applies to type=" + k.substr(0, k.find('-')) + " only"));
  }
  if (v.destination.empty())
    return fail(mount_error(text, "target is required; add target=/path/in/container"));
  if (v.destination[0] != '/')
    return fail(mount_error(text, "invalid mount path: '" + v.destination + "' mount path must be absolute"));
  if (v.kind == MountKind::tmpfs && !v.source.empty())
    return fail(mount_error(text, "invalid mount config for type \"tmpfs\": source must not be given"));
  if (v.kind == MountKind::bind) {
    if (v.source.empty())
      return fail(mount_error(text, "invalid mount config for type \"bind\": source is required; add source=/host/path"));
    if (v.source[0] != '/')
      return fail(mount_error(text, "invalid mount config for type \"bind\": the source must be an absolute host path"));
    if (!path_exists(v.source))
      return fail(mount_error(text, "bind source path does not exist: " + v.source +
                                        "; create it first (--mount does not, unlike -v)"));
  }
  if (v.kind == MountKind::volume && !v.source.empty()) TRYV(check_volume_name(v.source));
  return {};
}

}  // namespace

Result<VolumeOption> parse_mount(const std::string& text) {
  VolumeOption v;
  v.kind = MountKind::volume;  // docker's default type
  std::vector<std::string> keys;
  std::stringstream in(text);
  for (std::string field; std::getline(in, field, ',');) {
    size_t eq = field.find('=');
    std::string key = field.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
    bool has_value = eq != std::string::npos;
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (key == "type") {
      if (value == "bind") v.kind = MountKind::bind;
      else if (value == "volume") v.kind = MountKind::volume;
      else if (value == "tmpfs") v.kind = MountKind::tmpfs;
      else return fail(mount_error(text, "unknown mount type '" + value + "'; use bind, volume or tmpfs"));
    } else if (key == "source" || key == "src") {
      v.source = value;
    } else if (key == "target" || key == "destination" || key == "dst") {
      v.destination = value;
    } else if (key == "readonly" || key == "ro") {
      v.readonly = TRY(parse_bool(text, key, value));
    } else if (key == "bind-propagation" && has_value) {
      static const char* modes[] = {"private", "rprivate", "shared", "rshared", "slave", "rslave"};
      if (std::find(std::begin(modes), std::end(modes), value) == std::end(modes))
        return fail(mount_error(text, "invalid bind-propagation '" + value +
                                          "'; use private, rprivate, shared, rshared, slave or rslave"));
      v.propagation = value;
    } else if (key == "volume-nocopy") {
      v.nocopy = TRY(parse_bool(text, key, value));
    } else if (key == "tmpfs-size" && has_value) {
      auto size = parse_size(value);
      if (!size || *size <= 0) return fail(mount_error(text, "invalid tmpfs-size '" + value + "'; give a size like 64m"));
      v.tmpfs_size = *size;
    } else if (key == "tmpfs-mode" && has_value) {
      char* end = nullptr;
      unsigned long mode = std::strtoul(value.c_str(), &end, 8);
      if (value.empty() || *end != '\0' || mode > 07777)
        return fail(mount_error(text, "invalid tmpfs-mode '" + value + "'; give octal permissions like 1770"));
      v.tmpfs_mode = static_cast<uint32_t>(mode);
    } else if (key == "consistency") {
      // Docker accepts and ignores it on Linux.
    } else {
      return fail(mount_error(text, "unexpected key '" + key + "' in '" + field +
                                        "'; use type, source, target, readonly, bind-propagation, volume-nocopy, "
                                        "tmpfs-size or tmpfs-mode"));
    }
    keys.push_back(key);
  }
  TRYV(check_mount_kind(text, v, keys));
  v.anonymous = v.kind == MountKind::volume && v.source.empty();
  return v;
}

}  // namespace isola

namespace isola {

namespace {

bool taken(const std::vector<VolumeOption>& mounts, const std::vector<std::string>& tmpfs, const std::string& dst) {
  auto same = [&](const std::string& other) {
    std::string a = dst, b = other;
    while (a.size() > 1 && a.back() == '/') a.pop_back();
    while (b.size() > 1 && b.back() == '/') b.pop_back();
    return a == b;
  };
  for (const VolumeOption& m : mounts)
    if (same(m.destination)) return true;
  for (const std::string& t : tmpfs)
    if (same(t.substr(0, t.find(':')))) return true;
  return false;
}

// --volumes-from CONTAINER[:ro|rw]: its binds and volumes, at the same
// paths, read-only when asked (else as they were).
Result<std::vector<VolumeOption>> mounts_from(const std::string& text, const ContainerStore& containers) {
  std::string ref = text.substr(0, text.find(':'));
  std::string mode = text.find(':') == std::string::npos ? "" : text.substr(text.find(':') + 1);
  if (!mode.empty() && mode != "ro" && mode != "rw")
    return fail(make_error("--volumes-from", text, "unknown mode '" + mode + "'; use CONTAINER, CONTAINER:ro or CONTAINER:rw"));
  auto rec = containers.resolve(ref);
  if (!rec) return fail(make_error("--volumes-from", ref, "no such container; see 'isola ps -a'"));
  std::vector<VolumeOption> out;
  auto mounts = rec->options.find("Mounts");
  if (mounts == rec->options.end() || !mounts->is_array()) return out;
  for (const Json& m : *mounts) {
    std::string type = json_string_or(m, "Type");
    if (type != "bind" && type != "volume") continue;
    VolumeOption v;
    v.kind = type == "bind" ? MountKind::bind : MountKind::volume;
    v.source = type == "bind" ? json_string_or(m, "Source") : json_string_or(m, "Name");
    v.destination = json_string_or(m, "Destination");
    v.readonly = mode.empty() ? !json_bool_or(m, "RW", true) : mode == "ro";
    v.nocopy = true;  // the other container's volume is already in use
    if (type == "bind" && json_string_or(m, "Propagation") != "rprivate") v.propagation = json_string_or(m, "Propagation");
    out.push_back(v);
  }
  return out;
}

}  // namespace

Result<std::vector<VolumeOption>> plan_mounts(const RunOptions& opts, const Json& image_config,
                                             const ContainerStore& containers) {
  std::vector<VolumeOption> out = opts.volumes;
  for (const std::string& from : opts.volumes_from)
    for (const VolumeOption& v : TRY(mounts_from(from, containers)))
      if (!taken(out, opts.tmpfs, v.destination)) out.push_back(v);
  if (auto vols = image_config.find("Volumes"); vols != image_config.end() && vols->is_object())
    for (const auto& [dst, _] : vols->items()) {
      if (dst.empty() || dst[0] != '/' || taken(out, opts.tmpfs, dst)) continue;
      VolumeOption v;
      v.kind = MountKind::volume;
      v.anonymous = true;
      v.destination = dst;
      out.push_back(v);
    }
  return out;
}

Result<void> make_mount_sources(VolumeStore& store, std::vector<VolumeOption>& mounts,
                                std::vector<std::string>& created) {
  for (VolumeOption& v : mounts) {
    if (v.kind == MountKind::bind && !path_exists(v.source)) {
      // As docker does for -v (--mount refused a missing one already).
      TRYV(mkdir_p(v.source, 0755));
      continue;
    }
    if (v.kind != MountKind::volume) continue;
    VolumeRecord rec;
    rec.name = v.source;
    bool made = false;
    rec = TRY(store.create(rec, &made));
    if (made) created.push_back(rec.name);
    v.source = rec.name;
    v.host_path = store.data_dir(rec.name);
  }
  return {};
}

}  // namespace isola
