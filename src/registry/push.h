// isola push: a stored image's manifest, config and layer blobs, byte for
// byte, to a registry. Blobs the registry already has are not sent again.
#pragma once

#include <string>

#include "image/store.h"
#include "registry/client.h"
#include "registry/transfer.h"

namespace isola {

struct PushOptions {
  RegistryOptions registry;
  TransferObserver observer;  // may be empty
};

// Pushes the local image `source` to `dest`; returns the manifest digest.
Result<Digest> push_image(const ImageStore& store, const std::string& source, const RemoteRef& dest,
                          const PushOptions& opts);

}  // namespace isola
