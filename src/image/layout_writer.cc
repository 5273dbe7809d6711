// `isola save`: images out of the store as one OCI image layout tar, with a
// docker-style manifest.json beside index.json so that `docker load` reads
// it too. Manifests and blobs are the stored bytes, so every digest (the
// image ID, the manifest digest) is unchanged.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <set>

#include "common/fs.h"
#include "common/sha256.h"
#include "image/blob.h"
#include "image/reference.h"
#include "image/store.h"

namespace isola {

namespace {

constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};

class TarWriter {
 public:
  static Result<TarWriter> open(int fd, const std::string& what) {
    TarWriter w(what);
    w.a_.reset(archive_write_new());
    if (!w.a_) return fail(sys_error(ENOMEM, "write", what));
    if (archive_write_set_format_pax_restricted(w.a_.get()) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w.a_.get(), 1) != ARCHIVE_OK ||
        archive_write_open_fd(w.a_.get(), fd) != ARCHIVE_OK)
      return fail(w.error("open"));
    return w;
  }

  Result<void> dir(const std::string& name) { return header(name, AE_IFDIR, 0755, 0); }

  Result<void> file(const std::string& name, std::string_view data) {
    TRYV(header(name, AE_IFREG, 0644, data.size()));
    return write(data.data(), data.size());
  }

  // Streams a store file; it must still have `size` bytes.
  Result<void> file_from(const std::string& name, const std::string& path, uint64_t size) {
    TRYV(header(name, AE_IFREG, 0644, size));
    UniqueFd fd = TRY(open_path(path, O_RDONLY | O_NOFOLLOW));
    std::string buf(1 << 20, '\0');
    uint64_t left = size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<uint64_t>(buf.size(), left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(sys_error("read", path));
      if (n == 0) return fail(make_error("read", path, "the blob is shorter than its descriptor says"));
      TRYV(write(buf.data(), static_cast<size_t>(n)));
      left -= static_cast<uint64_t>(n);
    }
    return {};
  }

  Result<void> close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return fail(error("finish"));
    return {};
  }

 private:
  explicit TarWriter(std::string what) : what_(std::move(what)) {}

  Error error(const std::string& op) const {
    const char* s = archive_error_string(a_.get());
    int err = archive_errno(a_.get());
    if (err > 0) return sys_error(err, op, what_);
    return make_error(op, what_, s ? s : "libarchive error");
  }

  Result<void> header(const std::string& name, mode_t type, mode_t perm, uint64_t size) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return fail(error("write"));
    return {};
  }

  Result<void> write(const char* p, size_t n) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_.get(), p, n);
      if (w <= 0) return fail(error("write"));
      p += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }

  std::string what_;
  std::unique_ptr<archive, WriteFree> a_;
};

// One image to save and the names it is saved under (those it was asked by).
struct SaveItem {
  ImageRecord image;
  ImageBlobs blobs;
  std::vector<std::string> tags;
};

std::string blob_name(const Digest& d) { return "blobs/sha256/" + d.hex; }

Json index_json(const std::vector<SaveItem>& items) {
  Json manifests = Json::array();
  for (const SaveItem& item : items) {
    Json desc = {{"mediaType", item.blobs.manifest_media_type},
                 {"digest", item.image.manifest.str()},
                 {"size", item.blobs.manifest_json.size()}};
    if (item.tags.empty()) manifests.push_back(desc);
    // One descriptor per name: the OCI key holds the tag, containerd's the full name.
    for (const std::string& t : item.tags) {
      Reference ref = Reference::parse(t).value();
      desc["annotations"] = {{"io.containerd.image.name", ref.full_name()},
                             {"org.opencontainers.image.ref.name", ref.tag}};
      manifests.push_back(desc);
    }
  }
  return {{"schemaVersion", 2}, {"mediaType", kIndexType}, {"manifests", manifests}};
}

Json docker_manifest_json(const std::vector<SaveItem>& items) {
  Json out = Json::array();
  for (const SaveItem& item : items) {
    Json layers = Json::array();
    for (const BlobRef& l : item.blobs.layers) layers.push_back(blob_name(l.digest));
    out.push_back({{"Config", blob_name(item.blobs.config.digest)}, {"RepoTags", item.tags}, {"Layers", layers}});
  }
  return out;
}

Result<void> write_layout(const ImageStore& store, const std::vector<SaveItem>& items, TarWriter& tar) {
  TRYV(tar.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  TRYV(tar.dir("blobs"));
  TRYV(tar.dir("blobs/sha256"));
  std::set<std::string> written;
  auto blob = [&](const Digest& d, uint64_t size) -> Result<void> {
    if (!written.insert(d.hex).second) return {};
    return tar.file_from(blob_name(d), store.blob_path(d), size);
  };
  for (const SaveItem& item : items) {
    if (written.insert(item.image.manifest.hex).second)
      TRYV(tar.file(blob_name(item.image.manifest), item.blobs.manifest_json));
    TRYV(blob(item.blobs.config.digest, item.blobs.config.size));
    for (const BlobRef& l : item.blobs.layers) TRYV(blob(l.digest, l.size));
  }
  TRYV(tar.file("index.json", index_json(items).dump()));
  TRYV(tar.file("manifest.json", docker_manifest_json(items).dump()));
  return tar.close();
}

}  // namespace

Result<void> ImageStore::save(const std::vector<std::string>& refs, const std::string& output) const {
  std::vector<SaveItem> items;
  for (const std::string& ref : refs) {
    ImageRecord image = TRY(resolve(ref));
    SaveItem* item = nullptr;
    for (SaveItem& s : items)
      if (s.image.id == image.id) item = &s;
    if (!item) {
      ImageBlobs blobs = TRY(this->blobs(image));
      items.push_back({image, std::move(blobs), {}});
      item = &items.back();
    }
    // By name: saved under that name. By ID: untagged, as docker does.
    auto name = Reference::parse(ref);
    if (name && std::find(image.tags.begin(), image.tags.end(), name->str()) != image.tags.end() &&
        std::find(item->tags.begin(), item->tags.end(), name->str()) == item->tags.end())
      item->tags.push_back(name->str());
  }
  if (output == "-") {
    TarWriter tar = TRY(TarWriter::open(STDOUT_FILENO, "standard output"));
    return write_layout(*this, items, tar);
  }
  std::string tmp = output + ".tmp-" + random_hex(8);
  UniqueFd fd = TRY(open_path(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644));
  auto written = [&]() -> Result<void> {
    TarWriter tar = TRY(TarWriter::open(fd.get(), output));
    TRYV(write_layout(*this, items, tar));
    if (::fsync(fd.get()) != 0) return fail(sys_error("fsync", tmp));
    if (::rename(tmp.c_str(), output.c_str()) != 0) return fail(sys_error("rename", output));
    return {};
  }();
  if (!written) ::unlink(tmp.c_str());
  return written;
}

}  // namespace isola
