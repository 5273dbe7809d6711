// Image layouts as 'isola load' reads them (src/image/source.cc
// read_image_dir, then src/image/store.cc ImageStore::load): OCI index.json,
// image indexes, manifests and configs, and docker-save manifest.json.
//
// Every blob is checked against its digest, which a mutating fuzzer cannot
// forge, so the input describes a directory and the harness computes the
// digests. It is split at lines "===" into sections:
//   section 0   the top document: written as manifest.json (docker save)
//               if it starts with '[', else as index.json (OCI layout);
//   section N   a blob, written as blobs/sha256/<hex> and as <hex>.json
//               (docker's legacy config name).
// "@N" (N = 1..9) in a section stands for the hex digest of section N > it,
// so "sha256:@1" is a valid descriptor digest and, for an uncompressed tar,
// "sha256:@3" a valid diff_id.
#include <cstdint>
#include <string>

#include "common/sha256.h"
#include "fuzz_util.h"
#include "image/reference.h"
#include "image/source.h"
#include "image/store.h"

namespace {

using namespace isola;
using namespace isola::fuzz;

struct Harness {
  std::string root = workdir("image");
  std::string img = root + "/img";
  std::string store_root = root + "/store";
  Snapshot baseline;

  Harness() {
    write_all(root + "/canary", "canary\n");
    make_dir(img, 0755);
    make_dir(store_root, 0711);
    baseline = take();
  }
  Snapshot take() { return snapshot(root, {"img", "store"}, {}); }
};

// Replaces "@N" for N > self with the digests already computed.
std::string substitute(const std::string& text, size_t self, const std::vector<std::string>& hex) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '@' && i + 1 < text.size() && text[i + 1] >= '1' && text[i + 1] <= '9') {
      size_t n = static_cast<size_t>(text[i + 1] - '0');
      if (n > self && n < hex.size()) {
        out += hex[n];
        ++i;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

void check_images(const std::string& dir, const std::vector<SourceImage>& images) {
  for (const SourceImage& image : images) {
    FUZZ_CHECK(sha256_hex(image.config_json) == image.config_digest.hex);
    FUZZ_CHECK(image.config.is_object());
    FUZZ_CHECK(parse_json(image.manifest_json, "manifest").has_value());
    for (const SourceLayer& layer : image.layers) {
      // Paths from the documents stay beneath the directory.
      FUZZ_CHECK(layer.path.starts_with(dir + "/"));
      FUZZ_CHECK(layer.path.find("/../") == std::string::npos);
      FUZZ_CHECK(Digest::is_hex64(layer.diff_id.hex));
      if (layer.has_digest) FUZZ_CHECK(Digest::is_hex64(layer.digest.hex));
    }
    for (const std::string& tag : image.tags) {
      auto ref = Reference::parse(tag);
      FUZZ_CHECK(ref.has_value());
      FUZZ_CHECK(ref->str() == tag);
    }
  }
}

// A readable layout goes through the whole load into a fresh store.
void load_into_store(Harness& h, const std::vector<SourceImage>& images) {
  auto store = ImageStore::open(h.store_root);
  FUZZ_CHECK(store.has_value());
  auto reports = store->load(h.img);
  if (reports) {
    FUZZ_CHECK(reports->size() == images.size());
    auto listed = store->list();
    FUZZ_CHECK(listed.has_value());
    for (const ImageRecord& rec : *listed) {
      auto config = store->config(rec);
      FUZZ_CHECK(config.has_value());
      auto found = store->resolve(rec.id.str());
      FUZZ_CHECK(found.has_value());
      for (const std::string& tag : rec.tags) FUZZ_CHECK(store->resolve(tag).has_value());
    }
  }
  empty_dir(h.store_root);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  std::vector<std::string> sections =
      split_sections(std::string_view(reinterpret_cast<const char*>(data), size), "\n===\n");
  if (sections.size() > 10) return -1;  // "@N" names at most nine blobs

  std::vector<std::string> hex(sections.size());
  for (size_t i = sections.size(); i-- > 1;) {
    sections[i] = substitute(sections[i], i, hex);
    hex[i] = sha256_hex(sections[i]);
  }
  sections[0] = substitute(sections[0], 0, hex);

  make_dir(h.img + "/blobs");
  make_dir(h.img + "/blobs/sha256");
  for (size_t i = 1; i < sections.size(); ++i) {
    write_all(h.img + "/blobs/sha256/" + hex[i], sections[i]);
    write_all(h.img + "/" + hex[i] + ".json", sections[i]);
  }
  size_t first = sections[0].find_first_not_of(" \t\r\n");
  bool docker = first != std::string::npos && sections[0][first] == '[';
  write_all(h.img + (docker ? "/manifest.json" : "/index.json"), sections[0]);

  // Counted around the calls: libFuzzer's symbolizer keeps pipes of its own.
  int fds = count_fds();
  auto images = read_image_dir(h.img, "fuzz image");
  if (images) {
    check_images(h.img, *images);
    load_into_store(h, *images);
  }
  expect_no_fd_leak(fds);
  expect_same(h.baseline, h.take(), "image load");
  empty_dir(h.img);
  return 0;
}
