// New images made in the store: `isola import` (a rootfs tarball as a
// one-layer image) and `isola commit` (a container's changes as one more
// layer). Both write an OCI layout into a staging directory and load it, so
// the new image gets the same verification and all-or-nothing commit as any
// loaded one.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "common/fs.h"
#include "common/sha256.h"
#include "image/blob.h"
#include "image/changes.h"
#include "image/pack.h"
#include "image/reference.h"
#include "image/staging.h"
#include "image/store.h"

namespace isola {

namespace {

std::string now_rfc3339() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%09ldZ", ts.tv_nsec);
  return buf;
}

struct LayerBlob {
  Digest digest;
  Digest diff_id;
  uint64_t size = 0;
  Compression compression = Compression::none;
};

Result<LayerBlob> describe_layer(const std::string& path, const std::string& what) {
  LayerBlob b;
  b.digest = Digest{TRY(sha256_file(path, &b.size))};
  b.diff_id = Digest{TRY(uncompressed_sha256(path, what))};
  b.compression = TRY(sniff_compression(path));
  return b;
}

Json history_entry(const std::string& created, const NewImage& spec) {
  Json h = {{"created", created}, {"created_by", spec.created_by}};
  if (!spec.comment.empty()) h["comment"] = spec.comment;
  if (!spec.author.empty()) h["author"] = spec.author;
  return h;
}

Result<void> check_tag(const std::string& tag) {
  if (!tag.empty()) TRY(Reference::parse(tag));
  return {};
}

// Copies `input` (or standard input for "-") to `dest`.
Result<void> copy_input(const std::string& input, const std::string& dest) {
  if (input != "-") return copy_file(input, dest);
  UniqueFd out = TRY(open_path(dest, O_WRONLY | O_CREAT | O_EXCL, 0644));
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(sys_error("read", "standard input"));
    if (n == 0) return {};
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail(sys_error("write", dest));
      done += w;
    }
  }
}

}  // namespace

Result<LoadReport> ImageStore::load_new_image(const std::string& dir, const std::string& manifest_json,
                                              const std::string& config_json,
                                              const std::vector<std::pair<Digest, std::string>>& layer_files,
                                              const std::string& tag) {
  std::string blobs = path_join(dir, "blobs/sha256");
  TRYV(mkdir_p(blobs, 0700));
  TRYV(write_file_atomic(path_join(dir, "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})", 0644));
  Digest manifest{sha256_hex(manifest_json)};
  TRYV(write_file_atomic(path_join(blobs, manifest.hex), manifest_json, 0644));
  TRYV(write_file_atomic(path_join(blobs, sha256_hex(config_json)), config_json, 0644));
  for (const auto& [digest, path] : layer_files) {
    std::string dest = path_join(blobs, digest.hex);
    if (!path_exists(dest)) TRYV(link_or_copy(path, dest));
  }
  Json parsed = TRY(parse_json(manifest_json, "manifest " + manifest.str()));
  Json desc = {{"mediaType", json_string_or(parsed, "mediaType", kOciManifestType)},
               {"digest", manifest.str()},
               {"size", manifest_json.size()}};
  if (!tag.empty()) desc["annotations"] = {{"io.containerd.image.name", TRY(Reference::parse(tag)).full_name()}};
  Json index = {{"schemaVersion", 2}, {"manifests", Json::array({desc})}};
  TRYV(write_file_atomic(path_join(dir, "index.json"), index.dump(), 0644));
  std::vector<LoadReport> reports = TRY(load_input(dir, true));
  if (reports.size() != 1) return fail(make_error("add image", dir, "expected one image"));
  return reports.front();
}

Result<LoadReport> ImageStore::import_rootfs(const std::string& tarball, const NewImage& spec) {
  TRYV(check_tag(spec.tag));
  Staging staging = TRY(Staging::create(path_join(root_, "tmp"), "load-"));
  // A copy, not a link: the store must not share an inode with a file the
  // user may change after the import.
  std::string layer = path_join(staging.path(), "layer");
  auto copied = copy_input(tarball, layer);
  if (!copied) return fail(copied.error().context("import"));
  LayerBlob blob = TRY(describe_layer(layer, "import '" + tarball + "'"));
  std::string created = now_rfc3339();
  Json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"created", created},
                 {"config", Json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", Json::array({blob.diff_id.str()})}}},
                 {"history", Json::array({history_entry(created, spec)})}};
  TRYV(apply_changes(config["config"], spec.changes));
  std::string config_json = config.dump();
  Json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config", {{"mediaType", kOciConfigType}, {"digest", "sha256:" + sha256_hex(config_json)},
                  {"size", config_json.size()}}},
      {"layers", Json::array({{{"mediaType", layer_media_type(blob.compression, false)},
                               {"digest", blob.digest.str()},
                               {"size", blob.size}}})}};
  return load_new_image(path_join(staging.path(), "layout"), manifest.dump(), config_json,
                        {{blob.digest, layer}}, spec.tag);
}

Result<LoadReport> ImageStore::commit_upper(const ImageRecord& base, const std::string& upper, uint32_t id_base,
                                            const NewImage& spec) {
  TRYV(check_tag(spec.tag));
  ImageBlobs base_blobs = TRY(blobs(base));
  Json config = TRY(this->config(base));
  Json manifest = TRY(parse_json(base_blobs.manifest_json, "manifest " + base.manifest.str()));
  Staging staging = TRY(Staging::create(path_join(root_, "tmp"), "load-"));
  std::string layer = path_join(staging.path(), "layer.tar.gz");
  TRYV(pack_upper(upper, layer, {id_base}));
  LayerBlob blob = TRY(describe_layer(layer, "the container's changes"));

  std::string created = now_rfc3339();
  if (!config.contains("rootfs") || !config["rootfs"].contains("diff_ids") || !config["rootfs"]["diff_ids"].is_array())
    return fail(make_error("commit", "config " + base.id.str(), "has no rootfs.diff_ids"));
  config["rootfs"]["diff_ids"].push_back(blob.diff_id.str());
  config["created"] = created;
  if (!spec.author.empty()) config["author"] = spec.author;
  // History has one entry per layer (and some for no layer); without any
  // history, one entry for the new layer alone would miscount.
  if (auto h = config.find("history"); h != config.end() && h->is_array()) h->push_back(history_entry(created, spec));
  if (!config.contains("config") || !config["config"].is_object()) config["config"] = Json::object();
  TRYV(apply_changes(config["config"], spec.changes));
  std::string config_json = config.dump();

  bool docker = json_string_or(manifest, "mediaType") == kDockerManifestType;
  manifest["config"]["digest"] = "sha256:" + sha256_hex(config_json);
  manifest["config"]["size"] = config_json.size();
  manifest["layers"].push_back({{"mediaType", layer_media_type(blob.compression, docker)},
                                {"digest", blob.digest.str()},
                                {"size", blob.size}});
  std::vector<std::pair<Digest, std::string>> files;
  for (const BlobRef& l : base_blobs.layers) files.emplace_back(l.digest, blob_path(l.digest));
  files.emplace_back(blob.digest, layer);
  return load_new_image(path_join(staging.path(), "layout"), manifest.dump(), config_json, files, spec.tag);
}

}  // namespace isola
