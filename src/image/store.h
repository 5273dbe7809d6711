// The image store under $ISOLA_ROOT: layers unpacked once by diff ID, shared
// between images; manifests and configs as blobs; an index of images and tags.
//
//   <root>/images.json            index (written atomically, under <root>/images.lock)
//   <root>/blobs/sha256/<hex>     manifests, configs and layer blobs (as given:
//                                 gzip, zstd or plain tar), byte for byte
//   <root>/layers/<diffid hex>/   unpacked layers in overlayfs form
//   <root>/mounts/<image hex>/    read-only image mounts (isola image mount)
//   <root>/tmp/                   staging for loads and removals
//
// Loads unpack into tmp/ without the lock and only take it to rename layers
// into place and update the index, so concurrent loads and removals never see
// a half-written layer or index.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"
#include "image/digest.h"
#include "image/source.h"

namespace isola {

struct ImageRecord {
  Digest id;                    // the config digest
  Digest manifest;              // digest of the stored manifest
  std::vector<Digest> layers;   // diff IDs, bottom first
  std::string created;          // from the config (RFC 3339), may be empty
  int64_t loaded = 0;           // unix seconds when first loaded
  uint64_t size = 0;            // bytes of unpacked layer content
  std::vector<std::string> tags;
};

struct LoadReport {
  Digest id;
  std::vector<std::string> tags;
};

// A blob an image's manifest names, as the manifest describes it.
struct BlobRef {
  Digest digest;
  std::string media_type;
  uint64_t size = 0;
};

// Everything `isola save` and `push` need of one image, every blob present.
struct ImageBlobs {
  std::string manifest_json;  // the stored bytes (their digest is ImageRecord::manifest)
  std::string manifest_media_type;
  BlobRef config;
  std::vector<BlobRef> layers;
};

// A new image made by import or commit.
struct NewImage {
  std::string tag;                   // NAME[:TAG]; empty: untagged
  std::vector<std::string> changes;  // Dockerfile instructions: CMD, ENTRYPOINT, ENV, ...
  std::string created_by;            // the history entry's
  std::string comment;               // the history entry's (commit -m)
  std::string author;
};

struct RemoveReport {
  std::vector<std::string> untagged;
  std::vector<Digest> deleted;
};

class ImageStore {
 public:
  // Opens (creating if needed) the store at `root`.
  static Result<ImageStore> open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string layer_dir(const Digest& diff_id) const;
  std::string empty_dir() const;

  // Loads every image of an OCI layout or docker-save archive (file or directory).
  Result<std::vector<LoadReport>> load(const std::string& input);
  // Loads an OCI layout that isola itself wrote in a Staging directory under
  // <root>/tmp (a pull): its blobs are hard-linked into the store, not copied.
  Result<std::vector<LoadReport>> load_staged(const std::string& layout_dir);

  std::string blob_path(const Digest& d) const;
  // The manifest and the blobs it names; fails, saying how to fix it, when
  // a blob is missing (images recorded before the store kept layer blobs).
  Result<ImageBlobs> blobs(const ImageRecord& image) const;

  // Writes the images as one OCI layout tar (with a docker manifest.json)
  // to `output` (atomically: a temporary file renamed), or to stdout for "-".
  Result<void> save(const std::vector<std::string>& refs, const std::string& output) const;

  // A one-layer image from a rootfs tarball (plain, gzip or zstd).
  Result<LoadReport> import_rootfs(const std::string& tarball, const NewImage& spec);
  // A new image: `base` plus the container changes in the overlay upper
  // directory `upper` as one more layer. Owners in [id_base, id_base+65536)
  // are shifted down by id_base (containers in a user namespace).
  Result<LoadReport> commit_upper(const ImageRecord& base, const std::string& upper, uint32_t id_base,
                                  const NewImage& spec);

  Result<std::vector<ImageRecord>> list() const;
  // Bytes of each unpacked layer, by diff ID hex; images share layers.
  Result<std::map<std::string, uint64_t>> layer_sizes() const;
  // NAME[:TAG], a full ID, "sha256:ID", or an unambiguous ID prefix (3+ chars).
  Result<ImageRecord> resolve(const std::string& ref) const;
  Result<Json> config(const ImageRecord& image) const;

  Result<void> tag(const std::string& source, const std::string& target);
  Result<RemoveReport> remove(const std::string& ref, bool force);

  // Read-only merged view of an image's layers; returns its path.
  Result<std::string> mount(const std::string& ref);
  Result<void> unmount(const std::string& ref);

  // Images that containers use, from <root>/containers/*/container.json
  // ("image_id"); the process-isolation engine writes those files.
  Result<std::vector<Digest>> images_in_use() const;

 private:
  explicit ImageStore(std::string root) : root_(std::move(root)) {}

  struct Index {
    std::map<std::string, ImageRecord> images;    // by id hex
    std::map<std::string, std::string> tags;      // "repo:tag" -> id hex
    std::map<std::string, uint64_t> layer_sizes;  // diff id hex -> bytes
  };
  Result<Index> read_index() const;
  Result<void> write_index(const Index& index) const;
  Result<FileLock> lock() const;
  Result<ImageRecord> resolve_in(const Index& index, const std::string& ref) const;
  std::string mount_dir(const Digest& id) const;
  bool is_mounted(const Digest& id) const;
  Result<void> unmount_id(const Digest& id) const;
  // Removes layer directories no image references (under the lock).
  Result<void> collect_layers(Index& index) const;
  void clean_stale_staging() const;

  struct Staged;
  // `owned`: `input` is a directory this store made under tmp/, so its
  // blobs may be hard-linked rather than copied.
  Result<std::vector<LoadReport>> load_input(const std::string& input, bool owned);
  Result<std::vector<LoadReport>> load_once(const std::string& input, bool owned, bool* retry);
  Result<void> stage(const std::vector<SourceImage>& images, bool linkable, Staged& out) const;
  Result<std::vector<LoadReport>> commit_load(const std::vector<SourceImage>& images, const Staged& staged,
                                              Index& index, std::vector<std::string>& added) const;
  // Writes an OCI layout of one image into `dir` (blobs hard-linked from
  // `layer_files`, each named by its digest) and loads it.
  Result<LoadReport> load_new_image(const std::string& dir, const std::string& manifest_json,
                                    const std::string& config_json,
                                    const std::vector<std::pair<Digest, std::string>>& layer_files,
                                    const std::string& tag);

  std::string root_;
};

}  // namespace isola
