#include "image/blob.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>

#include "common/fs.h"
#include "common/sha256.h"

namespace isola {

Result<Compression> sniff_compression(const std::string& path) {
  UniqueFd fd = TRY(open_path(path, O_RDONLY | O_NOFOLLOW));
  unsigned char magic[4] = {};
  ssize_t n = ::read(fd.get(), magic, sizeof magic);
  if (n < 0) return fail(sys_error("read", path));
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return Compression::gzip;
  if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
    return Compression::zstd;
  return Compression::none;
}

std::string layer_media_type(Compression c, bool docker) {
  if (docker) {
    // Docker's schema has no zstd type; the OCI one is what docker writes.
    if (c == Compression::gzip) return "application/vnd.docker.image.rootfs.diff.tar.gzip";
    if (c == Compression::none) return "application/vnd.docker.image.rootfs.diff.tar";
  }
  switch (c) {
    case Compression::gzip: return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::zstd: return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Compression::none: break;
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

namespace {
struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
}  // namespace

Result<std::string> uncompressed_sha256(const std::string& path, const std::string& what) {
  UniqueFd fd = TRY(open_path(path, O_RDONLY | O_NOFOLLOW));
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  if (!a) return fail(sys_error(ENOMEM, what + ": read", path));
  auto text = [&] {
    const char* s = archive_error_string(a.get());
    return std::string(s ? s : "truncated or corrupt data");
  };
  if (archive_read_support_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(a.get()) != ARCHIVE_OK || archive_read_support_format_raw(a.get()) != ARCHIVE_OK)
    return fail(make_error(what + ": read", path, "libarchive lacks built-in gzip or zstd support"));
  archive_entry* entry = nullptr;
  if (archive_read_open_fd(a.get(), fd.get(), 1 << 20) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &entry) < ARCHIVE_WARN)
    return fail(make_error(what + ": read", path, text()));
  if (archive_filter_count(a.get()) > 2)
    return fail(make_error(what + ": read", path, "nested compression is not supported"));
  Sha256 hash;
  for (;;) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a.get(), &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail(make_error(what + ": decompress", path, text()));
    hash.update(buf, size);
  }
  return hash.hex_digest();
}

}  // namespace isola
