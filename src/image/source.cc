#include "image/source.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/sha256.h"
#include "image/blob.h"
#include "image/reference.h"

namespace isola {

namespace {

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Dir {
  std::string path;
  UniqueFd fd;
  std::string what;
};

// Reads a file named by an untrusted relative path, beneath the directory.
Result<std::string> read_rel(const Dir& dir, const std::string& rel, size_t max) {
  auto fd = open_beneath(dir.fd.get(), rel, O_RDONLY | O_NOFOLLOW);
  if (!fd) return fail(fd.error().context(dir.what));
  return read_fd(fd->get(), dir.what + ": " + rel, max);
}

std::string blob_rel(const Digest& d) { return "blobs/sha256/" + d.hex; }

// Reads a JSON blob by digest and checks its content against the digest.
Result<std::string> read_verified_blob(const Dir& dir, const Digest& d, const char* kind) {
  auto bytes = read_rel(dir, blob_rel(d), kMaxJsonBlob);
  if (!bytes) {
    return fail(make_error("load " + std::string(kind), d.str(),
                           "blob missing or unreadable in " + dir.what + " (" + bytes.error().message() + ")"));
  }
  if (sha256_hex(*bytes) != d.hex)
    return fail(make_error("load " + std::string(kind), d.str(),
                           "content does not match its digest (corrupt or tampered blob)"));
  return bytes;
}

std::string normalize_tag(const std::string& raw) {
  auto ref = Reference::parse(raw);
  return ref ? ref->str() : std::string();
}

// Parses the config and checks that it has one diff_id per layer.
Result<std::vector<Digest>> config_diff_ids(const Json& config, size_t layers, const std::string& what) {
  const Json* rootfs = TRY(json_object(config, "rootfs", what));
  const Json* ids = TRY(json_array(*rootfs, "diff_ids", what));
  if (ids->size() != layers)
    return fail(make_error("read", what,
                           "config lists " + std::to_string(ids->size()) + " diff_ids but the manifest has " +
                               std::to_string(layers) + " layers"));
  std::vector<Digest> out;
  for (const Json& id : *ids) {
    if (!id.is_string()) return fail(make_error("read", what, "diff_ids entry is not a string"));
    out.push_back(TRY(Digest::parse(id.get<std::string>())));
  }
  return out;
}

Result<Json> parse_config(const std::string& bytes, const std::string& what) {
  Json config = TRY(parse_json(bytes, what));
  if (!config.is_object()) return fail(make_error("read", what, "not a JSON object"));
  std::string os = json_string_or(config, "os", "linux");
  if (os != "linux") return fail(make_error("load", what, "image is for os \"" + os + "\", not linux"));
  return config;
}

}  // namespace

// Picks the manifest for linux/amd64 out of an image index.
Result<Digest> pick_platform(const Json& index, const std::string& what) {
  const Json* manifests = TRY(json_array(index, "manifests", what));
  const Json* fallback = nullptr;
  for (const Json& m : *manifests) {
    if (!m.is_object()) continue;
    auto platform = m.find("platform");
    if (platform == m.end()) {
      if (!fallback) fallback = &m;
      continue;
    }
    if (json_string_or(*platform, "os") == "linux" && json_string_or(*platform, "architecture") == "amd64")
      return Digest::parse(TRY(json_string(m, "digest", what)));
  }
  if (fallback) return Digest::parse(TRY(json_string(*fallback, "digest", what)));
  return fail(make_error("load", what, "image index has no linux/amd64 manifest"));
}

namespace {

Result<SourceImage> read_oci_manifest(const Dir& dir, const Digest& manifest_digest, int depth) {
  std::string what = "manifest " + manifest_digest.str();
  std::string bytes = TRY(read_verified_blob(dir, manifest_digest, "manifest"));
  Json manifest = TRY(parse_json(bytes, what));
  if (!manifest.is_object()) return fail(make_error("read", what, "not a JSON object"));
  std::string media = json_string_or(manifest, "mediaType");
  if (media == kOciIndex || media == kDockerList || manifest.contains("manifests")) {
    if (depth > 2) return fail(make_error("read", what, "image indexes nested too deeply"));
    return read_oci_manifest(dir, TRY(pick_platform(manifest, what)), depth + 1);
  }
  if (!media.empty() && media != kOciManifest && media != kDockerManifest)
    return fail(make_error("read", what, "unsupported manifest media type \"" + media + "\""));

  const Json* config_desc = TRY(json_object(manifest, "config", what));
  Digest config_digest = TRY(Digest::parse(TRY(json_string(*config_desc, "digest", what))));
  std::string config_bytes = TRY(read_verified_blob(dir, config_digest, "config"));
  std::string config_what = "config " + config_digest.str();
  Json config = TRY(parse_config(config_bytes, config_what));

  const Json* layers = TRY(json_array(manifest, "layers", what));
  std::vector<Digest> diff_ids = TRY(config_diff_ids(config, layers->size(), config_what));
  SourceImage img;
  img.manifest_json = bytes;
  img.config_json = std::move(config_bytes);
  img.config_digest = config_digest;
  img.config = std::move(config);
  for (size_t i = 0; i < layers->size(); ++i) {
    const Json& desc = (*layers)[i];
    SourceLayer layer;
    layer.digest = TRY(Digest::parse(TRY(json_string(desc, "digest", what))));
    layer.has_digest = true;
    layer.media_type = json_string_or(desc, "mediaType");
    layer.diff_id = diff_ids[i];
    layer.path = path_join(dir.path, blob_rel(layer.digest));
    img.layers.push_back(std::move(layer));
  }
  return img;
}

Result<std::vector<SourceImage>> read_oci_layout(const Dir& dir) {
  std::string index_what = dir.what + ": index.json";
  std::string text = TRY(read_rel(dir, "index.json", kMaxJsonBlob));
  Json index = TRY(parse_json(text, index_what));
  const Json* manifests = TRY(json_array(index, "manifests", index_what));
  if (manifests->empty()) return fail(make_error("load", dir.what, "index.json lists no images"));
  std::vector<SourceImage> out;
  for (const Json& desc : *manifests) {
    Digest digest = TRY(Digest::parse(TRY(json_string(desc, "digest", index_what))));
    SourceImage img = TRY(read_oci_manifest(dir, digest, 0));
    if (auto ann = desc.find("annotations"); ann != desc.end() && ann->is_object()) {
      // containerd and docker put the full name here; the OCI key often holds only a tag.
      std::string name = json_string_or(*ann, "io.containerd.image.name");
      if (name.empty()) name = json_string_or(*ann, "org.opencontainers.image.ref.name");
      if (!name.empty()) {
        std::string tag = normalize_tag(name);
        if (tag.empty()) return fail(make_error("load", dir.what, "invalid image name \"" + name + "\" in index.json"));
        img.tags.push_back(tag);
      }
    }
    out.push_back(std::move(img));
  }
  return out;
}

// A `docker save` manifest.json entry: Config and Layers are paths in the
// archive, either "<hex>.json" + "<id>/layer.tar" or "blobs/sha256/<hex>".
Result<SourceImage> read_docker_entry(const Dir& dir, const Json& entry) {
  std::string what = dir.what + ": manifest.json";
  std::string config_path = TRY(json_string(entry, "Config", what));
  // The config's file name (or blob name) is its digest; verify it.
  std::string base = config_path.substr(config_path.rfind('/') + 1);
  if (base.size() > 5 && base.ends_with(".json")) base.resize(base.size() - 5);
  if (!Digest::is_hex64(base))
    return fail(make_error("load", dir.what, "config path \"" + config_path + "\" is not named by its digest"));
  Digest config_digest{base};
  auto config_bytes = read_rel(dir, config_path, kMaxJsonBlob);
  if (!config_bytes)
    return fail(make_error("load config", config_digest.str(),
                           "missing or unreadable in " + dir.what + " (" + config_bytes.error().message() + ")"));
  if (sha256_hex(*config_bytes) != config_digest.hex)
    return fail(make_error("load config", config_digest.str(),
                           "content does not match its digest (corrupt or tampered blob)"));
  std::string config_what = "config " + config_digest.str();
  Json config = TRY(parse_config(*config_bytes, config_what));

  const Json* layers = TRY(json_array(entry, "Layers", what));
  std::vector<Digest> diff_ids = TRY(config_diff_ids(config, layers->size(), config_what));

  SourceImage img;
  img.config_json = std::move(*config_bytes);
  img.config_digest = config_digest;
  img.config = std::move(config);
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifest},
                   {"config", {{"mediaType", kOciConfig}, {"digest", config_digest.str()},
                               {"size", img.config_json.size()}}},
                   {"layers", Json::array()}};
  for (size_t i = 0; i < layers->size(); ++i) {
    if (!(*layers)[i].is_string()) return fail(make_error("read", what, "Layers entry is not a string"));
    std::string rel = (*layers)[i].get<std::string>();
    // Resolve now so a hostile path is refused before anything is unpacked.
    UniqueFd probe = TRY(open_beneath(dir.fd.get(), rel, O_RDONLY | O_NOFOLLOW));
    SourceLayer layer;
    layer.path = path_join(dir.path, rel);
    layer.diff_id = diff_ids[i];
    uint64_t size = 0;
    if (rel.starts_with("blobs/sha256/") && Digest::is_hex64(rel.substr(13))) {
      layer.has_digest = true;
      layer.digest = Digest{rel.substr(13)};
      struct stat st;
      if (::fstat(probe.get(), &st) == 0) size = static_cast<uint64_t>(st.st_size);
    } else {
      // The synthesized manifest names the blob the store keeps: this file.
      auto hex = sha256_file(layer.path, &size);
      if (!hex) return fail(hex.error().context(dir.what));
      layer.digest = Digest{*hex};
    }
    layer.media_type = layer_media_type(TRY(sniff_compression(layer.path)), false);
    manifest["layers"].push_back({{"mediaType", layer.media_type}, {"digest", layer.digest.str()}, {"size", size}});
    img.layers.push_back(std::move(layer));
  }
  if (auto tags = entry.find("RepoTags"); tags != entry.end() && tags->is_array()) {
    for (const Json& t : *tags) {
      if (!t.is_string()) continue;
      std::string tag = normalize_tag(t.get<std::string>());
      if (tag.empty()) return fail(make_error("load", dir.what, "invalid tag \"" + t.get<std::string>() + "\""));
      img.tags.push_back(tag);
    }
  }
  img.manifest_json = manifest.dump();
  return img;
}

Result<std::vector<SourceImage>> read_docker_save(const Dir& dir) {
  std::string what = dir.what + ": manifest.json";
  std::string text = TRY(read_rel(dir, "manifest.json", kMaxJsonBlob));
  Json entries = TRY(parse_json(text, what));
  if (!entries.is_array() || entries.empty())
    return fail(make_error("read", what, "expected a non-empty JSON array"));
  std::vector<SourceImage> out;
  for (const Json& entry : entries) out.push_back(TRY(read_docker_entry(dir, entry)));
  return out;
}

// When an archive holds both forms (docker 25, isola save), the OCI
// manifest of the same config and layers is the image's real manifest:
// keeping its bytes keeps its digest, which a synthesized one would change.
// An OCI side that does not read is ignored: manifest.json stands alone.
void prefer_oci_manifests(const Dir& dir, std::vector<SourceImage>& images) {
  auto oci = read_oci_layout(dir);
  if (!oci) return;
  auto same_layers = [](const SourceImage& a, const SourceImage& b) {
    if (a.layers.size() != b.layers.size()) return false;
    for (size_t i = 0; i < a.layers.size(); ++i)
      if (!(a.layers[i].digest == b.layers[i].digest)) return false;
    return true;
  };
  for (SourceImage& img : images) {
    for (const SourceImage& candidate : *oci) {
      if (candidate.config_digest == img.config_digest && same_layers(candidate, img)) {
        img.manifest_json = candidate.manifest_json;
        for (size_t i = 0; i < img.layers.size(); ++i) img.layers[i].media_type = candidate.layers[i].media_type;
        break;
      }
    }
  }
}

}  // namespace

Result<std::vector<SourceImage>> read_image_dir(const std::string& path, const std::string& what) {
  Dir dir{path, TRY(open_dir(path)), what};
  // docker 25+ writes both forms; its manifest.json carries the full names.
  if (path_exists(path_join(path, "manifest.json"))) {
    std::vector<SourceImage> images = TRY(read_docker_save(dir));
    if (path_exists(path_join(path, "index.json"))) prefer_oci_manifests(dir, images);
    return images;
  }
  if (path_exists(path_join(path, "index.json"))) return read_oci_layout(dir);
  return fail(make_error("load", what,
                         "not an image archive: expected an OCI image layout (index.json) or a "
                         "'docker save' archive (manifest.json)"));
}

}  // namespace isola
