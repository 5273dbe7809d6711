// Volumes: directories the engine owns and mounts into containers, which
// outlive the containers. One directory per volume under <root>/volumes:
// `<name>/_data` (what containers see) and `<name>/volume.json` (name,
// driver, labels, options, creation time, whether it is anonymous), written
// atomically. Which containers use a volume is read from the containers'
// records (their "Mounts"), so there is no second copy to go stale.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "engine/container_store.h"
#include "engine/options.h"

namespace isola {

struct VolumeRecord {
  std::string name;
  std::string driver = "local";
  std::map<std::string, std::string> labels, options;
  int64_t created_ns = 0;
  bool anonymous = false;

  Json to_json() const;
  static Result<VolumeRecord> from_json(const Json& j);
};

// Docker's rule for local volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]+.
Result<void> check_volume_name(const std::string& name);

class VolumeStore {
 public:
  static Result<VolumeStore> open(const std::string& root);

  std::string dir(const std::string& name) const { return path_join(dir_, name); }
  std::string data_dir(const std::string& name) const { return path_join(dir(name), "_data"); }
  bool exists(const std::string& name) const;

  // Creates the volume, or returns the one of that name that exists (as
  // docker does: `volume create` of an existing name is not an error).
  // `created` tells which happened. An empty name makes an anonymous one.
  Result<VolumeRecord> create(VolumeRecord rec, bool* created = nullptr);
  Result<VolumeRecord> get(const std::string& name) const;
  Result<std::vector<VolumeRecord>> list() const;
  // Removes the volume whatever uses it; callers check volume_users first.
  Result<void> remove(const std::string& name);

 private:
  explicit VolumeStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Volume name → the IDs of the containers (running or not) that use it.
std::map<std::string, std::vector<std::string>> volume_users(const ContainerStore& containers);
// Removes a volume unless a container (other than `except`) uses it; the
// error names them.
Result<void> remove_unused_volume(VolumeStore& volumes, const ContainerStore& containers, const std::string& name,
                                  const std::string& except = {});
// When a container goes (rm -v, --rm): its anonymous volumes that no other
// container uses. Failures are ignored, as docker does.
void remove_anonymous_volumes(const std::string& root, const ContainerRecord& rec);

// docker volume inspect's object.
Json volume_json(const VolumeStore& store, const VolumeRecord& rec);

// --mount type=bind|volume|tmpfs,source=,target=,readonly,...
Result<VolumeOption> parse_mount(const std::string& text);

// The volume mounts of a container, as recorded in its options ("Mounts",
// docker's inspect fields plus "Anonymous").
Json mount_json(const VolumeOption& v);

// Before a container first uses the volume `name` at `destination`: when
// the volume is empty, docker's copy-up (the image's content at that path,
// with owners and modes; not with `nocopy`), and with a user namespace the
// ownership of its root by the container's root.
Result<void> prepare_volume(const VolumeStore& store, const std::string& name, const std::string& rootfs,
                            const std::string& destination, bool nocopy, uint32_t userns_base);

// The container's mounts: those of the flags, then --volumes-from's and the
// image's VOLUMEs (as anonymous volumes) at the paths the flags left free.
Result<std::vector<VolumeOption>> plan_mounts(const RunOptions& opts, const Json& image_config,
                                             const ContainerStore& containers);
// Creates what `mounts` need: named volumes that do not exist yet,
// anonymous ones (naming them), a -v host directory that is missing. Fills
// each volume's host_path; appends to `created` the volumes it made, for
// the caller to remove if the container is not made after all.
Result<void> make_mount_sources(VolumeStore& store, std::vector<VolumeOption>& mounts,
                                std::vector<std::string>& created);

}  // namespace isola
