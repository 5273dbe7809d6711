#include "registry/push.h"

#include <set>

namespace isola {

Result<Digest> push_image(const ImageStore& store, const std::string& source, const RemoteRef& dest,
                          const PushOptions& opts) {
  ImageRecord image = TRY(store.resolve(source));
  ImageBlobs blobs = TRY(store.blobs(image));
  // Layers first, config last: the registry needs every blob before the manifest.
  std::vector<BlobRef> order = blobs.layers;
  order.push_back(blobs.config);

  RegistryClient client(dest, opts.registry, true);
  auto observe = [&](const BlobRef& b, BlobPhase phase) {
    if (opts.observer) opts.observer({b.digest.short_id(), phase, b.size, b.size});
  };
  std::set<std::string> seen;  // a manifest may list a layer twice
  for (const BlobRef& b : order) {
    if (!seen.insert(b.digest.hex).second) continue;
    if (TRY(client.has_blob(b.digest))) {
      observe(b, BlobPhase::exists);
      continue;
    }
    if (opts.observer) opts.observer({b.digest.short_id(), BlobPhase::transferring, 0, b.size});
    TRYV(client.put_blob(b.digest, store.blob_path(b.digest), [&](uint64_t sent, uint64_t total) {
      if (opts.observer) opts.observer({b.digest.short_id(), BlobPhase::transferring, sent, total});
    }));
    observe(b, BlobPhase::done);
  }
  TRYV(client.put_manifest(dest.tag.empty() ? image.manifest.str() : dest.tag, blobs.manifest_json,
                           blobs.manifest_media_type));
  return image.manifest;
}

}  // namespace isola
