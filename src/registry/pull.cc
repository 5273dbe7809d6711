#include "registry/pull.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sha256.h"
#include "image/source.h"
#include "image/staging.h"

namespace isola {

namespace {

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr uint64_t kMaxLayerSize = uint64_t{1} << 40;

struct Blob {
  Digest digest;
  uint64_t size = 0;
  std::string path;  // where the verified blob is once fetched
};

struct PlatformManifest {
  FetchedManifest fetched;
  Blob config;
  std::vector<Blob> layers;
};

Result<Blob> read_descriptor(const Json& desc, const std::string& what) {
  if (!desc.is_object()) return fail(make_error("pull", what, "a descriptor is not a JSON object"));
  Blob b;
  b.digest = TRY(Digest::parse(TRY(json_string(desc, "digest", what))));
  int64_t size = TRY(json_int(desc, "size", what));
  if (size < 0 || static_cast<uint64_t>(size) > kMaxLayerSize)
    return fail(make_error("pull", what, "a descriptor has an impossible size"));
  b.size = static_cast<uint64_t>(size);
  if (desc.contains("urls"))
    return fail(make_error("pull", what, "foreign layers (fetched from other URLs) are not supported"));
  return b;
}

// The manifest for the reference; an index or list resolves to linux/amd64.
Result<PlatformManifest> fetch_manifest(RegistryClient& client, const RemoteRef& ref) {
  FetchedManifest m = TRY(client.get_manifest(ref.reference()));
  for (int depth = 0;; ++depth) {
    Json j = TRY(parse_json(m.bytes, "manifest " + m.digest.str()));
    if (!j.contains("manifests")) break;
    if (depth >= 2) return fail(make_error("pull", ref.str(), "image indexes nested too deeply"));
    Digest pick = TRY(pick_platform(j, "image index of " + ref.str()));
    m = TRY(client.get_manifest(pick.str()));
  }
  std::string what = "manifest " + m.digest.str() + " of " + ref.str();
  Json j = TRY(parse_json(m.bytes, what));
  if (json_int_or(j, "schemaVersion", 0) != 2)
    return fail(make_error("pull", ref.str(), "only schema 2 manifests (OCI or docker v2) are supported"));
  if (m.media_type != kOciManifest && m.media_type != kDockerManifest && !m.media_type.empty())
    return fail(make_error("pull", ref.str(), "unsupported manifest media type \"" + m.media_type + "\""));
  PlatformManifest pm;
  pm.config = TRY(read_descriptor(*TRY(json_object(j, "config", what)), what));
  for (const Json& d : *TRY(json_array(j, "layers", what))) pm.layers.push_back(TRY(read_descriptor(d, what)));
  if (m.media_type.empty()) m.media_type = kOciManifest;
  pm.fetched = std::move(m);
  return pm;
}

// What an earlier, interrupted download left in `fd`: hashes it into `hash`
// and returns its size (a file longer than the blob starts over).
Result<uint64_t> resume_partial(int fd, const std::string& path, uint64_t blob_size, Sha256& hash) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail(sys_error("stat", path));
  uint64_t have = static_cast<uint64_t>(st.st_size) <= blob_size ? static_cast<uint64_t>(st.st_size) : 0;
  if (::ftruncate(fd, static_cast<off_t>(have)) != 0) return fail(sys_error("truncate", path));
  char buf[1 << 16];
  for (uint64_t off = 0; off < have;) {
    ssize_t n = ::pread(fd, buf, std::min<uint64_t>(sizeof buf, have - off), static_cast<off_t>(off));
    if (n <= 0) return fail(sys_error("read", path));
    hash.update(buf, static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  return have;
}

// Downloads one blob into <downloads>/<hex>, resuming a partial file left
// by an earlier, interrupted pull. The partial is flock'ed so two pulls of
// the same layer take turns instead of writing over each other.
Result<void> download_blob(RegistryClient& client, Blob& blob, const std::string& downloads,
                           const TransferObserver& observe) {
  std::string id = blob.digest.short_id();
  std::string final_path = path_join(downloads, blob.digest.hex);
  std::string partial = final_path + ".partial";
  UniqueFd fd = TRY(open_path(partial, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (::flock(fd.get(), LOCK_EX) != 0) return fail(sys_error("lock", partial));
  blob.path = final_path;
  if (path_exists(final_path)) return {};  // the other pull finished it

  Sha256 hash;
  uint64_t have = TRY(resume_partial(fd.get(), partial, blob.size, hash));
  if (have > 0) log_debug("{}: resuming at byte {} of {}", id, have, blob.size);
  if (observe) observe({id, BlobPhase::transferring, have, blob.size});

  uint64_t written = have;
  bool too_big = false, truncate_failed = false;
  auto sink = [&](const char* p, size_t n) {
    if (truncate_failed) return false;
    if (written + n > blob.size) {
      too_big = true;
      return false;
    }
    for (size_t off = 0; off < n;) {
      ssize_t w = ::pwrite(fd.get(), p + off, n - off, static_cast<off_t>(written + off));
      if (w <= 0) return false;
      off += static_cast<size_t>(w);
    }
    hash.update(p, n);
    written += n;
    if (observe) observe({id, BlobPhase::transferring, written, blob.size});
    return true;
  };
  // A registry that ignores the range sends everything: start the file over.
  auto restart = [&] {
    log_debug("{}: the registry ignored the range; downloading from the start", id);
    hash = Sha256();
    have = written = 0;
    truncate_failed = ::ftruncate(fd.get(), 0) != 0;
  };
  Result<void> got = have == blob.size ? Result<void>{} : client.get_blob(blob.digest, have, sink, restart);
  auto discard = [&](const std::string& why) {
    (void)::unlink(partial.c_str());
    return fail(make_error("pull", "blob " + blob.digest.str(), why + "; nothing was stored"));
  };
  if (too_big) return discard("the registry sent more bytes than its descriptor's size (corrupt or tampered)");
  if (truncate_failed) return fail(sys_error("truncate", partial));
  if (!got) return fail(got.error());
  if (observe) observe({id, BlobPhase::verifying, written, blob.size});
  if (written != blob.size)
    return discard("the registry sent " + std::to_string(written) + " of " + std::to_string(blob.size) + " bytes");
  if (hash.hex_digest() != blob.digest.hex) return discard("content does not match its digest (corrupt or tampered)");
  if (::fsync(fd.get()) != 0) return fail(sys_error("fsync", partial));
  if (::rename(partial.c_str(), final_path.c_str()) != 0) return fail(sys_error("rename", partial));
  if (observe) observe({id, BlobPhase::done, written, blob.size});
  return {};
}

// Runs the downloads, `parallel` at a time; the first error wins.
Result<void> download_all(RegistryClient& client, std::vector<Blob*>& todo, const std::string& downloads,
                          const PullOptions& opts) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::optional<Error> first_error;
  auto worker = [&] {
    for (size_t i; (i = next++) < todo.size();) {
      {
        std::lock_guard lock(mu);
        if (first_error) return;
      }
      auto r = download_blob(client, *todo[i], downloads, opts.observer);
      if (!r) {
        std::lock_guard lock(mu);
        if (!first_error) first_error = r.error();
      }
    }
  };
  std::vector<std::thread> threads;
  int n = std::max(1, std::min<int>(opts.parallel, static_cast<int>(todo.size())));
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  if (first_error) return fail(*first_error);
  return {};
}

// The pulled image as an OCI layout in `dir`, layers hard-linked.
Result<void> write_layout(const std::string& dir, const PlatformManifest& pm, const std::string& config,
                          const std::string& tag) {
  auto blob = [&](const Digest& d) { return path_join(dir, "blobs/sha256/" + d.hex); };
  TRYV(mkdir_p(path_join(dir, "blobs/sha256"), 0700));
  TRYV(write_file_atomic(path_join(dir, "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})", 0600));
  TRYV(write_file_atomic(blob(pm.fetched.digest), pm.fetched.bytes, 0600));
  TRYV(write_file_atomic(blob(pm.config.digest), config, 0600));
  for (const Blob& b : pm.layers)
    if (!path_exists(blob(b.digest))) TRYV(link_or_copy(b.path, blob(b.digest)));
  Json desc = {{"mediaType", pm.fetched.media_type},
               {"digest", pm.fetched.digest.str()},
               {"size", pm.fetched.bytes.size()}};
  if (!tag.empty()) desc["annotations"] = {{"io.containerd.image.name", tag}};
  Json index = {{"schemaVersion", 2}, {"manifests", Json::array({desc})}};
  return write_file_atomic(path_join(dir, "index.json"), index.dump(), 0600);
}

}  // namespace

Result<PullResult> pull_image(ImageStore& store, const RemoteRef& ref, const PullOptions& opts) {
  RegistryClient client(ref, opts.registry, false);
  PlatformManifest pm = TRY(fetch_manifest(client, ref));
  std::string config = TRY(client.get_small_blob(pm.config.digest));

  std::string downloads = path_join(store.root(), "downloads");
  TRYV(mkdir_p(downloads, 0700));
  std::vector<Blob*> todo;
  std::set<std::string> seen;  // a manifest may list a layer twice
  for (Blob& b : pm.layers) {
    std::string stored = path_join(store.root(), "blobs/sha256/" + b.digest.hex);
    if (path_exists(stored)) {
      b.path = stored;
      if (opts.observer) opts.observer({b.digest.short_id(), BlobPhase::exists, b.size, b.size});
    } else if (seen.insert(b.digest.hex).second) {
      if (opts.observer) opts.observer({b.digest.short_id(), BlobPhase::waiting, 0, b.size});
      todo.push_back(&b);
    }
  }
  TRYV(download_all(client, todo, downloads, opts));
  for (Blob& b : pm.layers)
    if (b.path.empty()) b.path = path_join(downloads, b.digest.hex);

  Staging staging = TRY(Staging::create(path_join(store.root(), "tmp"), "load-pull-"));
  TRYV(write_layout(staging.path(), pm, config, ref.local_tag()));
  for (Blob* b : todo)
    if (opts.observer) opts.observer({b->digest.short_id(), BlobPhase::extracting, b->size, b->size});
  auto loaded = store.load_staged(staging.path());
  // The layout's links keep the blobs until the layout goes; the downloads
  // are only needed again if the load failed for a reason of ours.
  for (Blob* b : todo) (void)::unlink(b->path.c_str());
  if (!loaded) return fail(loaded.error());
  if (loaded->empty()) return fail(make_error("pull", ref.str(), "the store loaded nothing"));
  for (Blob* b : todo)
    if (opts.observer) opts.observer({b->digest.short_id(), BlobPhase::stored, b->size, b->size});
  return PullResult{loaded->front().id, pm.fetched.digest, ref.local_tag()};
}

Result<std::pair<std::vector<std::string>, uint64_t>> prune_downloads(const std::string& root) {
  std::string dir = path_join(root, "downloads");
  std::pair<std::vector<std::string>, uint64_t> out{{}, 0};
  if (!is_directory(dir)) return out;
  for (const std::string& name : TRY(list_dir(dir))) {
    std::string path = path_join(dir, name);
    auto fd = open_path(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (!fd || ::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) continue;  // a pull is on it
    struct stat st;
    uint64_t size = ::fstat(fd->get(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    if (::unlink(path.c_str()) != 0) return fail(sys_error("remove", path));
    out.first.push_back(name.substr(0, 12));
    out.second += size;
  }
  return out;
}

}  // namespace isola
