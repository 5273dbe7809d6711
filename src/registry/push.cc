#include "registry/push.h"

#include <set>

#include "common/fs.h"
#include "common/json.h"
#include "image/source.h"

namespace isola {

namespace {

struct StoredBlob {
  Digest digest;
  uint64_t size = 0;
  std::string path;
};

// The blobs the stored manifest names, config last (as registries want the
// layers in place before the manifest, the order among blobs is free).
Result<std::vector<StoredBlob>> manifest_blobs(const ImageStore& store, const std::string& source,
                                               const Json& manifest) {
  std::string what = "manifest of " + source;
  std::vector<StoredBlob> out;
  std::set<std::string> seen;
  auto add = [&](const Json& desc) -> Result<void> {
    StoredBlob b;
    b.digest = TRY(Digest::parse(TRY(json_string(desc, "digest", what))));
    b.size = static_cast<uint64_t>(std::max<int64_t>(0, json_int_or(desc, "size", 0)));
    b.path = path_join(store.root(), "blobs/sha256/" + b.digest.hex);
    if (!path_exists(b.path))
      return fail(make_error("push", source,
                             "the store lacks blob " + b.digest.str() +
                                 " (images loaded by isola before 0.2 kept no layer blobs); "
                                 "load or pull the image again, then push"));
    if (seen.insert(b.digest.hex).second) out.push_back(std::move(b));
    return {};
  };
  for (const Json& d : *TRY(json_array(manifest, "layers", what))) TRYV(add(d));
  TRYV(add(*TRY(json_object(manifest, "config", what))));
  return out;
}

}  // namespace

Result<Digest> push_image(const ImageStore& store, const std::string& source, const RemoteRef& dest,
                          const PushOptions& opts) {
  ImageRecord image = TRY(store.resolve(source));
  std::string bytes = TRY(read_file(path_join(store.root(), "blobs/sha256/" + image.manifest.hex), kMaxJsonBlob));
  Json manifest = TRY(parse_json(bytes, "manifest of " + source));
  if (!manifest.is_object()) return fail(make_error("push", source, "the stored manifest is not a JSON object"));
  std::string media = json_string_or(manifest, "mediaType", "application/vnd.oci.image.manifest.v1+json");
  std::vector<StoredBlob> blobs = TRY(manifest_blobs(store, source, manifest));

  RegistryClient client(dest, opts.registry, true);
  auto observe = [&](const StoredBlob& b, BlobPhase phase) {
    if (opts.observer) opts.observer({b.digest.short_id(), phase, b.size, b.size});
  };
  for (const StoredBlob& b : blobs) {
    if (TRY(client.has_blob(b.digest))) {
      observe(b, BlobPhase::exists);
      continue;
    }
    observe(b, BlobPhase::transferring);
    TRYV(client.put_blob(b.digest, b.path));
    observe(b, BlobPhase::done);
  }
  TRYV(client.put_manifest(dest.tag.empty() ? image.manifest.str() : dest.tag, bytes, media));
  return image.manifest;
}

}  // namespace isola
