// isola pull: manifest (an index picks linux/amd64), config and layers from
// a registry into the image store. Layers the store already holds are not
// fetched; others download in parallel into <root>/downloads/<hex>.partial,
// which a later pull resumes with a Range request. Every blob is checked
// against its digest before it is used, and the image reaches the store
// through ImageStore::load, so a failed pull stores nothing.
#pragma once

#include <string>

#include "image/store.h"
#include "registry/client.h"
#include "registry/transfer.h"

namespace isola {

struct PullOptions {
  RegistryOptions registry;
  TransferObserver observer;  // may be empty
  int parallel = 3;           // layer downloads at once
};

struct PullResult {
  Digest image_id;
  Digest manifest_digest;  // of the platform manifest stored
  std::string tag;         // "NAME:TAG" stored, empty for a pull by digest
};

Result<PullResult> pull_image(ImageStore& store, const RemoteRef& ref, const PullOptions& opts);

// Removes what interrupted pulls left in <root>/downloads (not those a pull
// is writing now); returns the digests' short IDs and the bytes freed.
Result<std::pair<std::vector<std::string>, uint64_t>> prune_downloads(const std::string& root);

}  // namespace isola
