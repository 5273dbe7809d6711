#include "image/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/log.h"
#include "common/sha256.h"
#include "image/blob.h"
#include "image/reference.h"
#include "image/rootfs.h"
#include "image/source.h"
#include "image/staging.h"
#include "image/unpack.h"

namespace isola {

namespace {

std::string blob_file(const std::string& root, const Digest& d) {
  return path_join(root, "blobs/sha256/" + d.hex);
}

Result<void> write_blob(const std::string& root, const Digest& d, const std::string& bytes,
                        std::vector<std::string>& written) {
  std::string path = blob_file(root, d);
  if (path_exists(path)) return {};
  TRYV(write_file_atomic(path, bytes, 0644));
  written.push_back(path);
  return {};
}

Result<Json> read_manifest(const std::string& root, const ImageRecord& r) {
  std::string text = TRY(read_file(blob_file(root, r.manifest), kMaxJsonBlob));
  Json j = TRY(parse_json(text, "manifest " + r.manifest.str()));
  if (!j.is_object()) return fail(make_error("read", "manifest " + r.manifest.str(), "not a JSON object"));
  return j;
}

Result<BlobRef> descriptor(const Json& desc, const std::string& what) {
  if (!desc.is_object()) return fail(make_error("read", what, "descriptor is not an object"));
  BlobRef ref;
  ref.digest = TRY(Digest::parse(TRY(json_string(desc, "digest", what))));
  ref.media_type = json_string_or(desc, "mediaType");
  ref.size = static_cast<uint64_t>(json_int_or(desc, "size", 0));
  return ref;
}

// The layer blobs the image's stored manifest names.
Result<std::vector<Digest>> manifest_layer_digests(const std::string& root, const ImageRecord& r) {
  Json manifest = TRY(read_manifest(root, r));
  std::vector<Digest> out;
  for (const Json& l : *TRY(json_array(manifest, "layers", "manifest " + r.manifest.str())))
    out.push_back(TRY(descriptor(l, "manifest " + r.manifest.str())).digest);
  return out;
}

Json record_to_json(const ImageRecord& r) {
  Json layers = Json::array();
  for (const Digest& d : r.layers) layers.push_back(d.str());
  return {{"manifest", r.manifest.str()}, {"layers", layers}, {"created", r.created},
          {"loaded", r.loaded},           {"size", r.size}};
}

Result<ImageRecord> record_from_json(const std::string& hex, const Json& j) {
  const std::string what = "image index entry " + hex;
  ImageRecord r;
  if (!Digest::is_hex64(hex)) return fail(make_error("read", what, "not an image ID"));
  r.id = Digest{hex};
  r.manifest = TRY(Digest::parse(TRY(json_string(j, "manifest", what))));
  for (const Json& l : *TRY(json_array(j, "layers", what))) {
    if (!l.is_string()) return fail(make_error("read", what, "layer is not a string"));
    r.layers.push_back(TRY(Digest::parse(l.get<std::string>())));
  }
  r.created = json_string_or(j, "created");
  r.loaded = j.value("loaded", int64_t{0});
  r.size = j.value("size", uint64_t{0});
  return r;
}

// Moves a directory into <root>/tmp so it can be deleted after the lock is released.
Result<std::string> move_to_trash(const std::string& root, const std::string& path) {
  std::string trash = path_join(root, "tmp/trash-" + random_hex(16));
  if (::rename(path.c_str(), trash.c_str()) != 0) return fail(sys_error("rename", path));
  return trash;
}

}  // namespace

Result<ImageStore> ImageStore::open(const std::string& root_arg) {
  if (root_arg.empty() || root_arg.front() != '/')
    return fail(make_error("open store", root_arg, "the root must be an absolute path"));
  std::string root = root_arg;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.find_first_of(",:\\") != std::string::npos)
    return fail(make_error("open store", root, "the root path must not contain ',', ':' or '\\'"));
  // Layers hold setuid files that unprivileged host users must not reach:
  // everything holding image files is 0700. The root and containers/ are
  // 0711 (traverse, not list) so that a container in a user namespace can
  // reach its own directory, which its mapped root owns (0700) — as
  // docker's userns-remap does.
  TRYV(mkdir_p(root, 0711));
  if (::chmod(root.c_str(), 0711) != 0) return fail(sys_error("chmod", root));
  for (const char* sub : {"blobs/sha256", "layers", "mounts", "tmp", "empty"})
    TRYV(mkdir_p(path_join(root, sub), 0700));
  TRYV(mkdir_p(path_join(root, "containers"), 0711));
  if (::chmod(path_join(root, "containers").c_str(), 0711) != 0) return fail(sys_error("chmod", "containers"));
  return ImageStore(root);
}

std::string ImageStore::layer_dir(const Digest& diff_id) const {
  return path_join(root_, "layers/" + diff_id.hex);
}

std::string ImageStore::blob_path(const Digest& d) const { return blob_file(root_, d); }

Result<ImageBlobs> ImageStore::blobs(const ImageRecord& image) const {
  std::string what = "manifest " + image.manifest.str();
  auto name = [&] { return image.tags.empty() ? image.id.short_id() : image.tags.front(); };
  auto missing = [&](const std::string& blob) {
    return make_error("image", name(),
                      "its " + blob + " is not in the store (images loaded by isola before 0.2 kept no layer "
                      "blobs); load or pull the image again");
  };
  ImageBlobs out;
  out.manifest_json = TRY(read_file(blob_path(image.manifest), kMaxJsonBlob));
  Json manifest = TRY(parse_json(out.manifest_json, what));
  out.manifest_media_type = json_string_or(manifest, "mediaType", kOciManifestType);
  out.config = TRY(descriptor(*TRY(json_object(manifest, "config", what)), what));
  for (const Json& l : *TRY(json_array(manifest, "layers", what))) out.layers.push_back(TRY(descriptor(l, what)));
  if (out.layers.size() != image.layers.size()) return fail(missing("layer list"));
  for (const BlobRef& b : out.layers)
    if (!path_exists(blob_path(b.digest))) return fail(missing("layer blob " + b.digest.str()));
  if (!path_exists(blob_path(out.config.digest))) return fail(missing("config"));
  return out;
}

std::string ImageStore::empty_dir() const { return path_join(root_, "empty"); }

std::string ImageStore::mount_dir(const Digest& id) const { return path_join(root_, "mounts/" + id.hex); }

Result<FileLock> ImageStore::lock() const {
  return FileLock::acquire(path_join(root_, "images.lock"), FileLock::Mode::exclusive);
}

Result<ImageStore::Index> ImageStore::read_index() const {
  Index index;
  std::string path = path_join(root_, "images.json");
  if (!path_exists(path)) return index;
  std::string text = TRY(read_file(path));
  Json j = TRY(parse_json(text, path));
  if (auto it = j.find("images"); it != j.end() && it->is_object())
    for (auto& [hex, entry] : it->items()) index.images[hex] = TRY(record_from_json(hex, entry));
  if (auto it = j.find("tags"); it != j.end() && it->is_object())
    for (auto& [tag, hex] : it->items())
      if (hex.is_string() && index.images.contains(hex.get<std::string>())) {
        index.tags[tag] = hex.get<std::string>();
        index.images[hex.get<std::string>()].tags.push_back(tag);
      }
  if (auto it = j.find("layers"); it != j.end() && it->is_object())
    for (auto& [hex, size] : it->items()) index.layer_sizes[hex] = size.is_number_unsigned() ? size.get<uint64_t>() : 0;
  return index;
}

Result<void> ImageStore::write_index(const Index& index) const {
  Json images = Json::object(), tags = Json::object(), layers = Json::object();
  for (const auto& [hex, r] : index.images) images[hex] = record_to_json(r);
  for (const auto& [tag, hex] : index.tags) tags[tag] = hex;
  for (const auto& [hex, size] : index.layer_sizes) layers[hex] = size;
  Json j = {{"version", 1}, {"images", images}, {"tags", tags}, {"layers", layers}};
  return write_file_atomic(path_join(root_, "images.json"), j.dump(2) + "\n", 0600);
}

void ImageStore::clean_stale_staging() const {
  std::string tmp = path_join(root_, "tmp");
  auto guard = FileLock::acquire(tmp + ".lock", FileLock::Mode::exclusive);
  if (!guard) return;
  auto names = list_dir(tmp);
  if (!names) return;
  for (const std::string& name : *names) {
    // Only load staging is flock'ed; other entries belong to their removers.
    if (!name.starts_with("load-")) continue;
    std::string path = path_join(tmp, name);
    auto fd = open_path(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd && ::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) continue;  // in use
    log_debug("removing stale staging directory {}", path);
    (void)remove_tree(path);
  }
}

Result<std::vector<LoadReport>> ImageStore::load(const std::string& input) { return load_input(input, false); }

Result<std::vector<LoadReport>> ImageStore::load_staged(const std::string& layout_dir) {
  if (!layout_dir.starts_with(path_join(root_, "tmp") + "/"))
    return fail(make_error("load", layout_dir, "not a staging directory of this store"));
  return load_input(layout_dir, true);
}

Result<std::vector<LoadReport>> ImageStore::load_input(const std::string& input, bool owned) {
  clean_stale_staging();
  // A concurrent rmi can remove a layer this load meant to share; then the
  // load starts over and unpacks it itself.
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool retry = false;
    auto reports = load_once(input, owned, &retry);
    if (!reports || !retry) return reports;
    log_debug("layer removed during load; retrying");
  }
  return fail(make_error("load", input, "the store kept changing underneath; try again"));
}

// What a load put under its staging directory: blobs/<hex> (layer blobs,
// verified against their digests) and layers/<diff id hex> (unpacked from
// them, verified against their diff IDs).
struct ImageStore::Staged {
  std::string dir;
  std::set<std::string> blobs;
  std::map<std::string, uint64_t> layers;  // diff id hex -> size
};

namespace {

// Puts one layer's blob into staging (a link when `linkable`: the source is
// a file the load itself extracted; else a copy, so that the store never
// shares an inode with a file the user may change), verifies the staged
// bytes, and unpacks them into `unpack_dest`, checking the diff ID.
Result<uint64_t> stage_layer(const SourceLayer& layer, const std::string& blob, bool linkable,
                             const std::string& unpack_dest) {
  std::string name = "layer " + layer.digest.str();
  auto staged = linkable ? link_or_copy(layer.path, blob) : copy_file(layer.path, blob);
  if (!staged) return fail(make_error("load " + name, "", "blob missing or unreadable (" + staged.error().message() + ")"));
  auto hex = sha256_file(blob);
  if (!hex) return fail(hex.error().context("load " + name));
  if (*hex != layer.digest.hex)
    return fail(make_error("load " + name, "", "content does not match its digest (corrupt or tampered blob)"));
  TRYV(mkdir_p(unpack_dest, 0755));
  UnpackedLayer unpacked = TRY(unpack_layer(blob, unpack_dest, name));
  if (unpacked.diff_id_hex != layer.diff_id.hex)
    return fail(make_error("load " + name, "",
                           "uncompressed content is sha256:" + unpacked.diff_id_hex +
                               " but the image config says " + layer.diff_id.str()));
  return unpacked.size;
}

}  // namespace

Result<void> ImageStore::stage(const std::vector<SourceImage>& images, bool linkable, Staged& out) const {
  TRYV(mkdir_p(path_join(out.dir, "blobs"), 0700));
  int checks = 0;
  for (const SourceImage& img : images) {
    for (const SourceLayer& layer : img.layers) {
      bool need_blob = !out.blobs.contains(layer.digest.hex) && !path_exists(blob_path(layer.digest));
      bool need_layer = !out.layers.contains(layer.diff_id.hex) && !is_directory(layer_dir(layer.diff_id));
      if (!need_blob && !need_layer) continue;
      // A layer already unpacked is unpacked again all the same, to check
      // that the new blob really holds it.
      std::string dest = need_layer ? path_join(out.dir, "layers/" + layer.diff_id.hex)
                                    : path_join(out.dir, "check/" + std::to_string(checks++));
      std::string blob = path_join(out.dir, "blobs/" + layer.digest.hex);
      uint64_t size = TRY(stage_layer(layer, blob, linkable, dest));
      out.blobs.insert(layer.digest.hex);
      if (need_layer) out.layers[layer.diff_id.hex] = size;
    }
  }
  return {};
}

Result<std::vector<LoadReport>> ImageStore::load_once(const std::string& input, bool owned, bool* retry) {
  struct stat st;
  if (::stat(input.c_str(), &st) != 0) return fail(sys_error("open", input));
  Staging staging = TRY(Staging::create(path_join(root_, "tmp"), "load-"));
  std::string src = input;
  bool linkable = owned;
  if (!S_ISDIR(st.st_mode)) {
    src = path_join(staging.path(), "src");
    TRYV(mkdir_p(src, 0700));
    TRYV(extract_archive(input, src, "image archive '" + input + "'"));
    linkable = true;
  }
  std::vector<SourceImage> images = TRY(read_image_dir(src, "image archive '" + input + "'"));

  // Stage what the store lacks, outside the lock.
  Staged staged{staging.path(), {}, {}};
  TRYV(stage(images, linkable, staged));

  FileLock guard = TRY(lock());
  Index index = TRY(read_index());
  for (const SourceImage& img : images)
    for (const SourceLayer& layer : img.layers)
      if ((!staged.layers.contains(layer.diff_id.hex) && !is_directory(layer_dir(layer.diff_id))) ||
          (!staged.blobs.contains(layer.digest.hex) && !path_exists(blob_path(layer.digest)))) {
        *retry = true;
        return std::vector<LoadReport>{};
      }

  std::vector<std::string> added;  // undone if the index cannot be written
  auto reports = commit_load(images, staged, index, added);
  if (!reports) {
    for (const std::string& path : added) (void)remove_tree(path);
  }
  return reports;
}

Result<std::vector<LoadReport>> ImageStore::commit_load(const std::vector<SourceImage>& images,
                                                        const Staged& staged, Index& index,
                                                        std::vector<std::string>& added) const {
  for (const std::string& hex : staged.blobs) {
    std::string dest = blob_path(Digest{hex});
    if (path_exists(dest)) continue;
    std::string from = path_join(staged.dir, "blobs/" + hex);
    if (::rename(from.c_str(), dest.c_str()) != 0) return fail(sys_error("rename", dest));
    added.push_back(dest);
  }
  for (const auto& [hex, size] : staged.layers) {
    std::string dest = layer_dir(Digest{hex});
    if (is_directory(dest)) continue;
    std::string from = path_join(staged.dir, "layers/" + hex);
    if (::rename(from.c_str(), dest.c_str()) != 0) return fail(sys_error("rename", dest));
    added.push_back(dest);
    index.layer_sizes[hex] = size;
  }
  std::vector<LoadReport> reports;
  int64_t now = static_cast<int64_t>(::time(nullptr));
  for (const SourceImage& img : images) {
    Digest manifest{sha256_hex(img.manifest_json)};
    TRYV(write_blob(root_, manifest, img.manifest_json, added));
    TRYV(write_blob(root_, img.config_digest, img.config_json, added));
    ImageRecord rec;
    rec.id = img.config_digest;
    rec.manifest = manifest;
    rec.created = json_string_or(img.config, "created");
    rec.loaded = now;
    for (const SourceLayer& l : img.layers) {
      rec.layers.push_back(l.diff_id);
      rec.size += index.layer_sizes[l.diff_id.hex];
    }
    if (auto old = index.images.find(rec.id.hex); old != index.images.end()) rec.loaded = old->second.loaded;
    index.images[rec.id.hex] = rec;
    for (const std::string& t : img.tags) index.tags[t] = rec.id.hex;
    reports.push_back({rec.id, img.tags});
  }
  TRYV(write_index(index));
  return reports;
}

Result<std::vector<ImageRecord>> ImageStore::list() const {
  Index index = TRY(read_index());
  std::vector<ImageRecord> out;
  for (auto& [hex, r] : index.images) out.push_back(r);
  return out;
}

Result<std::map<std::string, uint64_t>> ImageStore::layer_sizes() const {
  Index index = TRY(read_index());
  return index.layer_sizes;
}

Result<ImageRecord> ImageStore::resolve_in(const Index& index, const std::string& ref) const {
  std::string id = ref;
  if (id.starts_with("sha256:")) id = id.substr(7);
  bool hexish = id.size() >= 3 && id.size() <= 64 &&
                std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  if (auto r = Reference::parse(ref); r) {
    if (auto it = index.tags.find(r->str()); it != index.tags.end()) return index.images.at(it->second);
  }
  if (hexish) {
    const ImageRecord* found = nullptr;
    for (const auto& [hex, rec] : index.images) {
      if (hex.compare(0, id.size(), id) != 0) continue;
      if (found) return fail(make_error("find image", ref, "the ID prefix is ambiguous; give more characters"));
      found = &rec;
    }
    if (found) return *found;
  }
  return fail(make_error("image", ref, "not found locally; pull it with 'isola pull NAME' or load it with 'isola load -i FILE'"));
}

Result<ImageRecord> ImageStore::resolve(const std::string& ref) const {
  Index index = TRY(read_index());
  return resolve_in(index, ref);
}

Result<Json> ImageStore::config(const ImageRecord& image) const {
  std::string text = TRY(read_file(blob_path(image.id), kMaxJsonBlob));
  return parse_json(text, "config " + image.id.str());
}

Result<void> ImageStore::tag(const std::string& source, const std::string& target) {
  Reference ref = TRY(Reference::parse(target));
  FileLock guard = TRY(lock());
  Index index = TRY(read_index());
  ImageRecord image = TRY(resolve_in(index, source));
  index.tags[ref.str()] = image.id.hex;
  return write_index(index);
}

Result<std::vector<Digest>> ImageStore::images_in_use() const {
  std::vector<Digest> out;
  std::string dir = path_join(root_, "containers");
  auto names = list_dir(dir);
  if (!names) return out;
  for (const std::string& name : *names) {
    auto text = read_file(path_join(dir, name + "/container.json"));
    if (!text) continue;
    auto j = parse_json(*text, name);
    if (!j) continue;
    std::string id = json_string_or(*j, "image_id");
    if (Digest::is_hex64(id)) out.push_back(Digest{id});
  }
  return out;
}

bool ImageStore::is_mounted(const Digest& id) const { return is_mount_point(mount_dir(id)); }

Result<void> ImageStore::unmount_id(const Digest& id) const {
  std::string dir = mount_dir(id);
  if (is_mounted(id)) TRYV(unmount_path(dir));
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return fail(sys_error("rmdir", dir));
  return {};
}

Result<void> ImageStore::collect_layers(Index& index) const {
  std::set<std::string> used;
  for (const auto& [hex, r] : index.images)
    for (const Digest& d : r.layers) used.insert(d.hex);
  std::vector<std::string> trash;
  for (const std::string& name : TRY(list_dir(path_join(root_, "layers")))) {
    if (used.contains(name)) continue;
    trash.push_back(TRY(move_to_trash(root_, path_join(root_, "layers/" + name))));
    index.layer_sizes.erase(name);
  }
  std::set<std::string> blobs;
  bool all_known = true;
  for (const auto& [hex, r] : index.images) {
    blobs.insert(r.id.hex);
    blobs.insert(r.manifest.hex);
    auto named = manifest_layer_digests(root_, r);
    if (!named) {
      // Then which blobs it needs is unknown: keep every blob.
      log_warn("image {}: {}; keeping all blobs", r.id.short_id(), named.error().message());
      all_known = false;
      continue;
    }
    for (const Digest& d : *named) blobs.insert(d.hex);
  }
  for (const std::string& name : TRY(list_dir(path_join(root_, "blobs/sha256")))) {
    if (!all_known || blobs.contains(name)) continue;
    if (::unlink(path_join(root_, "blobs/sha256/" + name).c_str()) != 0 && errno != ENOENT)
      return fail(sys_error("unlink", name));
  }
  for (const std::string& t : trash) (void)remove_tree(t);
  return {};
}

Result<RemoveReport> ImageStore::remove(const std::string& ref, bool force) {
  FileLock guard = TRY(lock());
  Index index = TRY(read_index());
  ImageRecord image = TRY(resolve_in(index, ref));
  RemoveReport report;

  // By name: drop that tag; the image goes only with its last tag.
  auto name = Reference::parse(ref);
  bool by_name = name && index.tags.contains(name->str());
  if (by_name && image.tags.size() > 1) {
    index.tags.erase(name->str());
    report.untagged.push_back(name->str());
    TRYV(write_index(index));
    return report;
  }
  if (!by_name && image.tags.size() > 1 && !force) {
    std::string list;
    for (const auto& t : image.tags) list += (list.empty() ? "" : ", ") + t;
    return fail(make_error("remove image", image.id.short_id(),
                           "it is tagged in several repositories (" + list + "); remove it by name or use -f"));
  }
  auto users = TRY(images_in_use());
  if (std::find(users.begin(), users.end(), image.id) != users.end()) {
    if (!force)
      return fail(make_error("remove image", ref,
                             "it is in use by a container; remove the container first or use -f"));
    // As docker: -f takes the names away but the containers keep the image.
    for (const std::string& t : image.tags) {
      index.tags.erase(t);
      report.untagged.push_back(t);
    }
    TRYV(write_index(index));
    return report;
  }
  if (is_mounted(image.id)) {
    if (!force)
      return fail(make_error("remove image", ref,
                             "it is mounted at " + mount_dir(image.id) + "; run 'isola image unmount " + ref +
                                 "' or use -f"));
    TRYV(unmount_id(image.id));
  }
  (void)::rmdir(mount_dir(image.id).c_str());
  for (const std::string& t : image.tags) {
    index.tags.erase(t);
    report.untagged.push_back(t);
  }
  index.images.erase(image.id.hex);
  report.deleted.push_back(image.id);
  TRYV(write_index(index));
  TRYV(collect_layers(index));
  TRYV(write_index(index));
  return report;
}

Result<std::string> ImageStore::mount(const std::string& ref) {
  FileLock guard = TRY(lock());
  Index index = TRY(read_index());
  ImageRecord image = TRY(resolve_in(index, ref));
  std::string dir = mount_dir(image.id);
  if (is_mounted(image.id)) return dir;
  TRYV(mkdir_p(dir, 0700));
  OverlaySpec spec;
  for (auto it = image.layers.rbegin(); it != image.layers.rend(); ++it) spec.lowers_top_first.push_back(layer_dir(*it));
  // A bottom empty layer: overlayfs wants two lower layers when there is no
  // upper one, and it hides whiteouts only in layers above the lowest.
  spec.lowers_top_first.push_back(empty_dir());
  auto mounted = mount_overlay(spec, dir);
  if (!mounted) {
    (void)::rmdir(dir.c_str());
    return fail(mounted.error());
  }
  return dir;
}

Result<void> ImageStore::unmount(const std::string& ref) {
  FileLock guard = TRY(lock());
  Index index = TRY(read_index());
  ImageRecord image = TRY(resolve_in(index, ref));
  if (!is_mounted(image.id)) return fail(make_error("unmount image", ref, "it is not mounted"));
  return unmount_id(image.id);
}

}  // namespace isola
