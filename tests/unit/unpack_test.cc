// Layer unpacking and image-archive extraction against archives built here
// with libarchive's writer: content, metadata, whiteouts, digests, and every
// hostile entry we know of being refused without touching anything outside
// the destination. Runs as root (owners, devices, trusted.* xattrs).
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/sha256.h"

namespace isola {
namespace {

enum class Compression { none, gzip, zstd };

struct Entry {
  std::string path;
  unsigned type = AE_IFREG;
  std::string data;
  std::string link;  // symlink target, or hard link target if `hardlink`
  bool hardlink = false;
  mode_t perm = 0644;
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 1600000000;
  dev_t rdev = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Data regions (offset, length) of a sparse file; `data` is then the
  // whole logical content, of which the writer stores only these regions.
  std::vector<std::pair<int64_t, int64_t>> sparse;
};

Entry file(std::string path, std::string data, mode_t perm = 0644) {
  Entry e;
  e.path = std::move(path);
  e.data = std::move(data);
  e.perm = perm;
  return e;
}
Entry dir(std::string path, mode_t perm = 0755) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFDIR;
  e.perm = perm;
  return e;
}
Entry symlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFLNK;
  e.link = std::move(target);
  e.perm = 0777;
  return e;
}
Entry hardlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.link = std::move(target);
  e.hardlink = true;
  return e;
}
Entry special(std::string path, unsigned type, dev_t rdev = 0) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  e.rdev = rdev;
  return e;
}

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using WritePtr = std::unique_ptr<archive, WriteFree>;
using EntryPtr = std::unique_ptr<archive_entry, EntryFree>;

void add_filter(archive* w, Compression c) {
  if (c == Compression::gzip) {
    ASSERT_EQ(archive_write_add_filter_gzip(w), ARCHIVE_OK);
  } else if (c == Compression::zstd) {
    ASSERT_EQ(archive_write_add_filter_zstd(w), ARCHIVE_OK);
  }
}

void write_tar(const std::string& out, const std::vector<Entry>& entries,
               Compression c = Compression::none) {
  WritePtr w(archive_write_new());
  ASSERT_EQ(archive_write_set_format_pax_restricted(w.get()), ARCHIVE_OK);
  add_filter(w.get(), c);
  ASSERT_EQ(archive_write_open_filename(w.get(), out.c_str()), ARCHIVE_OK);
  for (const Entry& in : entries) {
    EntryPtr e(archive_entry_new());
    archive_entry_set_pathname(e.get(), in.path.c_str());
    archive_entry_set_filetype(e.get(), in.type);
    archive_entry_set_perm(e.get(), in.perm);
    archive_entry_set_uid(e.get(), in.uid);
    archive_entry_set_gid(e.get(), in.gid);
    archive_entry_set_mtime(e.get(), in.mtime, 0);
    if (in.hardlink) archive_entry_set_hardlink(e.get(), in.link.c_str());
    if (in.type == AE_IFLNK) archive_entry_set_symlink(e.get(), in.link.c_str());
    if (in.type == AE_IFCHR || in.type == AE_IFBLK) archive_entry_set_rdev(e.get(), in.rdev);
    for (const auto& [name, value] : in.xattrs)
      archive_entry_xattr_add_entry(e.get(), name.c_str(), value.data(), value.size());
    bool has_data = in.type == AE_IFREG && !in.hardlink;
    archive_entry_set_size(e.get(), has_data ? static_cast<int64_t>(in.data.size()) : 0);
    for (const auto& [offset, length] : in.sparse)  // needs the size first
      archive_entry_sparse_add_entry(e.get(), offset, length);
    ASSERT_EQ(archive_write_header(w.get(), e.get()), ARCHIVE_OK)
        << in.path << ": " << archive_error_string(w.get());
    if (has_data && !in.data.empty()) {
      ASSERT_EQ(archive_write_data(w.get(), in.data.data(), in.data.size()),
                static_cast<la_ssize_t>(in.data.size()));
    }
  }
  ASSERT_EQ(archive_write_close(w.get()), ARCHIVE_OK);
}

// Compresses the bytes of `in` as they are (libarchive's raw format), so a
// test knows exactly which uncompressed stream a blob holds.
void compress_file(const std::string& in, const std::string& out, Compression c) {
  auto data = read_file(in);
  ASSERT_TRUE(data) << data.error().message();
  WritePtr w(archive_write_new());
  ASSERT_EQ(archive_write_set_format_raw(w.get()), ARCHIVE_OK);
  add_filter(w.get(), c);
  ASSERT_EQ(archive_write_open_filename(w.get(), out.c_str()), ARCHIVE_OK);
  EntryPtr e(archive_entry_new());
  archive_entry_set_pathname(e.get(), "data");
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_size(e.get(), static_cast<int64_t>(data->size()));
  ASSERT_EQ(archive_write_header(w.get(), e.get()), ARCHIVE_OK);
  ASSERT_EQ(archive_write_data(w.get(), data->data(), data->size()),
            static_cast<la_ssize_t>(data->size()));
  ASSERT_EQ(archive_write_close(w.get()), ARCHIVE_OK);
}

// Bytes that don't compress, so a truncated stream is really cut short.
std::string noise(size_t n) {
  std::string out(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return out;
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto made = make_temp_dir("/tmp", "isola-unpack-test-");
    ASSERT_TRUE(made) << made.error().message();
    base_ = *made;
    dest_ = base_ + "/dest";
    sentinel_ = base_ + "/sentinel";
    blob_ = base_ + "/blob";
    ASSERT_EQ(::mkdir(dest_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(sentinel_.c_str(), 0755), 0);
    ASSERT_TRUE(write_file_atomic(sentinel_ + "/keep", "keep"));
    ASSERT_TRUE(write_file_atomic(base_ + "/outside", "outside"));
  }
  void TearDown() override {
    if (!base_.empty()) {
      EXPECT_TRUE(remove_tree(base_));
    }
  }

  Result<UnpackedLayer> unpack(const std::vector<Entry>& entries,
                               Compression c = Compression::none) {
    write_tar(blob_, entries, c);
    return unpack_layer(blob_, dest_, "layer sha256:abc");
  }

  void reset_dest() {
    ASSERT_TRUE(remove_tree(dest_));
    ASSERT_EQ(::mkdir(dest_.c_str(), 0755), 0);
  }

  std::string in_dest(const std::string& rel) const { return dest_ + "/" + rel; }

  std::string content(const std::string& rel) const {
    auto data = read_file(in_dest(rel));
    return data ? *data : "<" + data.error().message() + ">";
  }

  struct stat lstat_of(const std::string& path) const {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
  }

  // Nothing outside dest may change: the sentinel tree, the file beside
  // dest, and no new names next to dest.
  void expect_outside_untouched() const {
    auto names = list_dir(base_);
    ASSERT_TRUE(names);
    std::sort(names->begin(), names->end());
    std::vector<std::string> expected = {"blob", "dest", "outside", "sentinel"};
    std::vector<std::string> got;
    for (auto& n : *names)
      if (!n.starts_with("blob")) got.push_back(n);
    got.push_back("blob");
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected);
    auto inner = list_dir(sentinel_);
    ASSERT_TRUE(inner);
    EXPECT_EQ(*inner, std::vector<std::string>{"keep"});
    EXPECT_EQ(read_file(sentinel_ + "/keep").value_or("?"), "keep");
    EXPECT_EQ(lstat_of(sentinel_ + "/keep").st_nlink, 1u);
    EXPECT_EQ(lstat_of(sentinel_ + "/keep").st_mode & 07777, 0644u);
    EXPECT_EQ(read_file(base_ + "/outside").value_or("?"), "outside");
    EXPECT_EQ(lstat_of(base_ + "/outside").st_nlink, 1u);
  }

  void expect_refused(const std::vector<Entry>& entries,
                      std::initializer_list<std::string> needles) {
    reset_dest();
    auto r = unpack(entries);
    ASSERT_FALSE(r) << "unpacked a hostile layer";
    std::string msg = r.error().message();
    EXPECT_NE(msg.find("layer sha256:abc"), std::string::npos) << msg;
    for (const auto& needle : needles) EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    expect_outside_untouched();
  }

  std::string base_, dest_, sentinel_, blob_;
};

TEST_F(UnpackTest, ExtractsContentMetadataAndLinks) {
  Entry su = file("bin/su", "su binary", 04755);
  Entry own = file("home/user/notes", "mine", 0600);
  own.uid = 1000;
  own.gid = 1001;
  Entry home = dir("home/user/", 0700);
  home.uid = 1000;
  home.gid = 1000;
  home.mtime = 1500000000;
  Entry sh = symlink("bin/sh", "busybox");
  sh.uid = 5;
  sh.gid = 6;
  sh.mtime = 1400000000;
  Entry fifo = special("run/ctl", AE_IFIFO);
  fifo.perm = 0620;
  auto r = unpack({
      dir("./"),
      dir("./bin/"),
      file("./bin/busybox", "busybox binary", 0755),
      su,
      sh,
      hardlink("bin/ls", "./bin/busybox"),
      symlink("bin/abs", "/etc/passwd"),
      dir("tmp", 01777),
      dir("srv", 02750),
      home,
      own,
      fifo,
      file("usr/lib/deep/file", "deep"),
      file("a//b/./c", "dotted"),
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->entries, 14u);
  EXPECT_EQ(r->size, std::string("busybox binarysu binarymine" "deepdotted").size());

  EXPECT_EQ(content("bin/busybox"), "busybox binary");
  EXPECT_EQ(lstat_of(in_dest("bin/busybox")).st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_of(in_dest("bin/su")).st_mode & 07777, 04755u);
  EXPECT_EQ(lstat_of(in_dest("tmp")).st_mode & 07777, 01777u);
  EXPECT_EQ(lstat_of(in_dest("srv")).st_mode & 07777, 02750u);

  struct stat st = lstat_of(in_dest("home/user"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
  // Applied at the end, after "notes" was created inside it.
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);

  st = lstat_of(in_dest("home/user/notes"));
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);

  st = lstat_of(in_dest("bin/sh"));
  ASSERT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 5u);
  EXPECT_EQ(st.st_gid, 6u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1400000000);
  char buf[64] = {};
  ASSERT_EQ(::readlink(in_dest("bin/sh").c_str(), buf, sizeof buf - 1), 7);
  EXPECT_STREQ(buf, "busybox");
  // An absolute target is just data; it was not resolved or refused.
  EXPECT_TRUE(S_ISLNK(lstat_of(in_dest("bin/abs")).st_mode));

  struct stat ls = lstat_of(in_dest("bin/ls"));
  EXPECT_EQ(ls.st_ino, lstat_of(in_dest("bin/busybox")).st_ino);
  EXPECT_EQ(ls.st_nlink, 2u);

  st = lstat_of(in_dest("run/ctl"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);

  // Parents missing from the archive: 0755 root directories.
  for (const char* implied : {"usr", "usr/lib", "usr/lib/deep", "run", "a", "a/b"}) {
    st = lstat_of(in_dest(implied));
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << implied;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << implied;
    EXPECT_EQ(st.st_uid, 0u) << implied;
  }
  EXPECT_EQ(content("usr/lib/deep/file"), "deep");
  EXPECT_EQ(content("a/b/c"), "dotted");
}

TEST_F(UnpackTest, KeepsFileCapabilities) {
  // struct vfs_cap_data, revision 2: cap_net_bind_service (10), effective.
  std::string cap(20, '\0');
  const uint32_t words[5] = {0x02000001, 1u << 10, 0, 0, 0};
  std::memcpy(cap.data(), words, sizeof words);
  Entry ping = file("bin/ping", "ping", 0755);
  ping.xattrs = {{"security.capability", cap}, {"user.ignored", "x"}};
  auto r = unpack({ping});
  ASSERT_TRUE(r) << r.error().message();
  char got[64];
  ssize_t n = ::getxattr(in_dest("bin/ping").c_str(), "security.capability", got, sizeof got);
  ASSERT_EQ(n, 20) << std::strerror(errno);
  EXPECT_EQ(std::string(got, 20), cap);
  EXPECT_LT(::getxattr(in_dest("bin/ping").c_str(), "user.ignored", got, sizeof got), 0);
}

TEST_F(UnpackTest, SparseFilesKeepTheirHoles) {
  Entry sparse = file("sparse", std::string(3 << 20, '\0'));
  sparse.data.replace(1 << 20, 4, "data");
  sparse.sparse = {{1 << 20, 4}};
  write_tar(blob_, {sparse});
  auto tar_size = lstat_of(blob_).st_size;
  ASSERT_LT(tar_size, 1 << 20) << "the writer did not store a sparse file";
  auto r = unpack_layer(blob_, dest_, "layer sha256:abc");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(content("sparse"), sparse.data);
  EXPECT_EQ(r->size, 3u << 20);
  EXPECT_LT(lstat_of(in_dest("sparse")).st_blocks * 512, 1 << 20);
}

TEST_F(UnpackTest, LaterEntriesReplaceEarlierOnes) {
  auto r = unpack({
      file("dup", "one"),
      file("dup", "two", 0600),
      dir("d/"),
      file("d/inner", "gone"),
      file("d", "now a file"),
      file("f", "file"),
      dir("f/", 0711),
      dir("keepdir/"),
      file("keepdir/child", "child"),
      dir("keepdir/", 0700),
      symlink("l", "somewhere"),
      file("l", "not a link"),
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(content("dup"), "two");
  EXPECT_EQ(lstat_of(in_dest("dup")).st_mode & 07777, 0600u);
  EXPECT_EQ(content("d"), "now a file");
  struct stat st = lstat_of(in_dest("f"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(content("keepdir/child"), "child");
  EXPECT_EQ(lstat_of(in_dest("keepdir")).st_mode & 07777, 0700u);
  EXPECT_TRUE(S_ISREG(lstat_of(in_dest("l")).st_mode));
  EXPECT_EQ(content("l"), "not a link");
}

TEST_F(UnpackTest, WhiteoutsBecomeOverlayfsMarkers) {
  auto r = unpack({
      file(".wh.gone", ""),
      dir("etc/"),
      file("etc/.wh.hosts", ""),
      file("etc/.wh..wh..opq", ""),
      file("var/cache/.wh..wh..opq", ""),  // directory not in the archive
      file("present", "here"),
      file(".wh.present", ""),  // only hides lower layers
      file(".wh..wh.plnk", ""),  // reserved, ignored
  });
  ASSERT_TRUE(r) << r.error().message();
  for (const char* gone : {"gone", "etc/hosts"}) {
    struct stat st = lstat_of(in_dest(gone));
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << gone;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << gone;
  }
  for (const char* opaque : {"etc", "var/cache"}) {
    char v[8] = {};
    ASSERT_EQ(::lgetxattr(in_dest(opaque).c_str(), "trusted.overlay.opaque", v, sizeof v), 1)
        << opaque;
    EXPECT_EQ(v[0], 'y');
  }
  EXPECT_EQ(content("present"), "here");
  auto names = list_dir(dest_);
  ASSERT_TRUE(names);
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"etc", "gone", "present", "var"}));
  names = list_dir(in_dest("etc"));
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{"hosts"});
}

TEST_F(UnpackTest, DiffIdIsDigestOfUncompressedStream) {
  std::string plain = base_ + "/blob-plain.tar";
  write_tar(plain, {dir("etc/"), file("etc/motd", "hello\n"), file("big", noise(300000))});
  auto expected = sha256_file(plain);
  ASSERT_TRUE(expected);
  for (Compression c : {Compression::none, Compression::gzip, Compression::zstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    std::string blob = plain;
    if (c != Compression::none) {
      blob = base_ + "/blob-" + std::to_string(static_cast<int>(c));
      compress_file(plain, blob, c);
      ASSERT_NE(sha256_file(blob).value_or(""), *expected);
    }
    reset_dest();
    auto r = unpack_layer(blob, dest_, "layer sha256:abc");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->diff_id_hex, *expected);
    EXPECT_EQ(r->entries, 3u);
    EXPECT_EQ(r->size, 6u + 300000u);
    EXPECT_EQ(content("etc/motd"), "hello\n");
    EXPECT_EQ(content("big"), noise(300000));
  }
}

TEST_F(UnpackTest, DiffIdCoversBytesAfterEndOfArchive) {
  // More than the tar reader reads ahead, so only a final drain sees it.
  std::string plain = base_ + "/blob-plain.tar";
  write_tar(plain, {file("x", "x")});
  auto tar = read_file(plain);
  ASSERT_TRUE(tar);
  std::string padded = *tar + std::string(8192, '\0') + noise(3 << 20);
  ASSERT_TRUE(write_file_atomic(plain, padded));
  for (Compression c : {Compression::none, Compression::gzip, Compression::zstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    std::string blob = plain;
    if (c != Compression::none) {
      blob = blob_;
      compress_file(plain, blob, c);
    }
    reset_dest();
    auto r = unpack_layer(blob, dest_, "layer sha256:abc");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->diff_id_hex, sha256_hex(padded));
    EXPECT_EQ(content("x"), "x");
    if (c == Compression::none) continue;
    // Cut inside the bytes after the archive: still a corrupt blob.
    auto whole = read_file(blob);
    ASSERT_TRUE(whole);
    ASSERT_TRUE(write_file_atomic(blob, whole->substr(0, whole->size() - 100)));
    reset_dest();
    EXPECT_FALSE(unpack_layer(blob, dest_, "layer sha256:abc"));
  }
}

TEST_F(UnpackTest, CorruptInputIsAnError) {
  std::string plain = base_ + "/blob-plain.tar";
  write_tar(plain, {file("a", noise(200000)), file("b", "b")});
  for (Compression c : {Compression::gzip, Compression::zstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    compress_file(plain, blob_, c);
    auto whole = read_file(blob_);
    ASSERT_TRUE(whole);
    // Cut in the middle, and cut just the last bytes (gzip's trailer, the
    // end of zstd's last block) after all tar entries were decoded.
    for (size_t keep : {whole->size() / 2, whole->size() - 4}) {
      ASSERT_TRUE(write_file_atomic(blob_, whole->substr(0, keep)));
      reset_dest();
      auto r = unpack_layer(blob_, dest_, "layer sha256:abc");
      EXPECT_FALSE(r) << "accepted a stream cut to " << keep << " of " << whole->size();
      if (!r) {
        EXPECT_NE(r.error().message().find("layer sha256:abc"), std::string::npos);
      }
    }
  }
  // A flipped byte inside the compressed data: an error, or at least never
  // the original diff_id (libarchive skips gzip's CRC, and zstd frames
  // written without a checksum have none).
  auto expected = sha256_file(plain);
  ASSERT_TRUE(expected);
  for (Compression c : {Compression::gzip, Compression::zstd}) {
    compress_file(plain, blob_, c);
    auto whole = read_file(blob_);
    ASSERT_TRUE(whole);
    (*whole)[whole->size() / 2] ^= 0x55;
    ASSERT_TRUE(write_file_atomic(blob_, *whole));
    reset_dest();
    auto r = unpack_layer(blob_, dest_, "layer sha256:abc");
    if (r) {
      EXPECT_NE(r->diff_id_hex, *expected);
    }
  }
  reset_dest();
  ASSERT_TRUE(write_file_atomic(blob_, noise(5000)));
  EXPECT_FALSE(unpack_layer(blob_, dest_, "layer sha256:abc"));
  ASSERT_TRUE(write_file_atomic(blob_, ""));
  EXPECT_FALSE(unpack_layer(blob_, dest_, "layer sha256:abc"));
  // gzip inside gzip would make the digest cover the wrong stream.
  std::string once = base_ + "/blob-once";
  compress_file(plain, once, Compression::gzip);
  compress_file(once, blob_, Compression::gzip);
  EXPECT_FALSE(unpack_layer(blob_, dest_, "layer sha256:abc"));
}

TEST_F(UnpackTest, RefusesDotDot) {
  expect_refused({file("../escape", "x")}, {"entry '../escape'", "path escapes the layer"});
}

TEST_F(UnpackTest, RefusesDotDotInTheMiddle) {
  expect_refused({dir("a/"), file("a/../../escape", "x")}, {"path escapes the layer"});
}

TEST_F(UnpackTest, RefusesAbsolutePath) {
  expect_refused({file(sentinel_ + "/abs", "x")}, {"absolute path"});
}

TEST_F(UnpackTest, RefusesOverlongPath) {
  std::string name;
  while (name.size() <= 4096) name += "abcdefghij/";
  expect_refused({file(name + "x", "x")}, {"longer than 4096"});
}

TEST_F(UnpackTest, RefusesWritingThroughAbsoluteSymlink) {
  expect_refused({symlink("evil", sentinel_), file("evil/x", "x")},
                 {"entry 'evil/x'", "goes through symlink 'evil'"});
}

TEST_F(UnpackTest, RefusesWritingThroughRelativeSymlink) {
  std::string name = "isola-unpack-escape-" + random_hex(8);
  expect_refused({symlink("up", "../.."), file("up/" + name, "x")}, {"goes through symlink"});
  EXPECT_FALSE(path_exists("/tmp/" + name));
}

TEST_F(UnpackTest, RefusesDirectoryThroughSymlink) {
  expect_refused({symlink("evil", sentinel_), dir("evil/sub/")}, {"goes through symlink"});
}

TEST_F(UnpackTest, RefusesWhiteoutThroughSymlink) {
  expect_refused({symlink("evil", sentinel_), file("evil/.wh.keep", "")},
                 {"goes through symlink"});
  expect_refused({symlink("evil", sentinel_), file("evil/.wh..wh..opq", "")},
                 {"goes through symlink"});
}

TEST_F(UnpackTest, RefusesHardlinkOutside) {
  expect_refused({hardlink("h", "../outside")}, {"entry 'h'", "path escapes the layer"});
}

TEST_F(UnpackTest, RefusesHardlinkToAbsolutePath) {
  struct stat before = lstat_of("/etc/passwd");
  expect_refused({hardlink("h", "/etc/passwd")}, {"absolute path"});
  EXPECT_EQ(lstat_of("/etc/passwd").st_nlink, before.st_nlink);
}

TEST_F(UnpackTest, RefusesHardlinkThroughSymlink) {
  expect_refused({symlink("s", sentinel_), hardlink("h", "s/keep")}, {"goes through symlink"});
  expect_refused({dir("d/"), file("d/f", "f"), symlink("s", "d"), hardlink("h", "s/f")},
                 {"goes through symlink"});
}

TEST_F(UnpackTest, RefusesHardlinkToMissingTarget) {
  expect_refused({hardlink("h", "nothing")}, {"does not exist"});
}

TEST_F(UnpackTest, HardlinkToSymlinkLinksTheSymlink) {
  auto r = unpack({symlink("s", sentinel_ + "/keep"), hardlink("h", "s")});
  ASSERT_TRUE(r) << r.error().message();
  struct stat st = lstat_of(in_dest("h"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_ino, lstat_of(in_dest("s")).st_ino);
  expect_outside_untouched();
}

TEST_F(UnpackTest, FileReplacingHardlinkDoesNotWriteThroughIt) {
  auto r = unpack({file("orig", "original"), hardlink("h", "orig"), file("h", "replaced")});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(content("orig"), "original");
  EXPECT_EQ(content("h"), "replaced");
  EXPECT_EQ(lstat_of(in_dest("orig")).st_nlink, 1u);
}

TEST_F(UnpackTest, FileReplacingSymlinkDoesNotWriteThroughIt) {
  auto r = unpack({symlink("s", sentinel_ + "/keep"), file("s", "replaced")});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(content("s"), "replaced");
  expect_outside_untouched();
}

TEST_F(UnpackTest, MakesDeviceNodesButNotWhiteoutLookalikes) {
  // As docker and podman load them: a root file system's /dev/null, a disk.
  Entry null = special("dev/null", AE_IFCHR, makedev(1, 3));
  null.perm = 0666;
  Entry sda = special("dev/sda", AE_IFBLK, makedev(8, 0));
  sda.perm = 0660;
  sda.gid = 6;
  auto r = unpack({null, sda});
  ASSERT_TRUE(r) << r.error().message();
  struct stat st = lstat_of(in_dest("dev/null"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  st = lstat_of(in_dest("dev/sda"));
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(8, 0));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, 6u);
  // 0/0 would be an overlay whiteout: whiteouts arrive as .wh. files.
  expect_refused({special("x", AE_IFCHR, makedev(0, 0))}, {"entry 'x'", "whiteout"});
}

TEST_F(UnpackTest, RefusesBadWhiteoutAndRootReplacement) {
  expect_refused({file(".wh..", "")}, {"invalid whiteout"});
  expect_refused({symlink(".", "/")}, {"root"});
}

TEST_F(UnpackTest, MissingDestinationIsAnError) {
  write_tar(blob_, {file("x", "x")});
  EXPECT_FALSE(unpack_layer(blob_, base_ + "/nope", "layer sha256:abc"));
  EXPECT_FALSE(unpack_layer(base_ + "/no-blob", dest_, "layer sha256:abc"));
}

// --- extract_archive ---------------------------------------------------

class ExtractArchiveTest : public UnpackTest {
 protected:
  Result<void> extract(const std::vector<Entry>& entries, Compression c = Compression::none) {
    write_tar(blob_, entries, c);
    return extract_archive(blob_, dest_, "archive img.tar");
  }
  void expect_refused_archive(const std::vector<Entry>& entries, const std::string& needle) {
    reset_dest();
    auto r = extract(entries);
    ASSERT_FALSE(r) << "extracted a hostile archive";
    EXPECT_NE(r.error().message().find("archive img.tar"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
    expect_outside_untouched();
  }
};

TEST_F(ExtractArchiveTest, SymlinksToFilesBecomeHardLinks) {
  Entry owned = file("id2/json", "{}", 0600);
  owned.uid = 1000;
  for (Compression c : {Compression::none, Compression::gzip}) {
    SCOPED_TRACE(static_cast<int>(c));
    reset_dest();
    auto r = extract(
        {
            file("manifest.json", "[]"),
            dir("id1/", 0700),
            symlink("id1/layer.tar", "../id2/layer.tar"),  // before its target
            dir("id2/"),
            file("id2/layer.tar", "layer bytes", 0700),
            owned,
            symlink("id3/layer.tar", "/id1/layer.tar"),  // absolute, and a chain
            symlink("top.tar", "./id2/../id2/layer.tar"),
        },
        c);
    ASSERT_TRUE(r) << r.error().message();
    ino_t ino = lstat_of(in_dest("id2/layer.tar")).st_ino;
    for (const char* link : {"id1/layer.tar", "id3/layer.tar", "top.tar"}) {
      struct stat st = lstat_of(in_dest(link));
      EXPECT_TRUE(S_ISREG(st.st_mode)) << link;
      EXPECT_EQ(st.st_ino, ino) << link;
      EXPECT_EQ(content(link), "layer bytes") << link;
    }
    EXPECT_EQ(lstat_of(in_dest("id2/layer.tar")).st_nlink, 4u);
    EXPECT_EQ(lstat_of(in_dest("id2/layer.tar")).st_mode & 07777, 0755u);
    struct stat st = lstat_of(in_dest("id2/json"));
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(lstat_of(in_dest("id1")).st_mode & 07777, 0755u);
    EXPECT_EQ(content("manifest.json"), "[]");
  }
}

TEST_F(ExtractArchiveTest, RefusesSymlinkOutside) {
  expect_refused_archive({symlink("x", "../outside")}, "points outside the archive");
  expect_refused_archive({symlink("a/b/x", "../../../outside")}, "points outside the archive");
}

TEST_F(ExtractArchiveTest, RefusesSymlinkToMissingOrNonFile) {
  expect_refused_archive({symlink("x", "missing")}, "not a regular file");
  expect_refused_archive({dir("d/"), symlink("x", "d")}, "not a regular file");
  expect_refused_archive({symlink("x", "y"), symlink("y", "x")}, "too many levels");
}

TEST_F(ExtractArchiveTest, RefusesPathThroughPendingSymlink) {
  expect_refused_archive({file("f", "f"), symlink("s", "f"), file("s/x", "x")},
                         "goes through symlink");
}

TEST_F(ExtractArchiveTest, RefusesOtherEntryTypes) {
  expect_refused_archive({special("fifo", AE_IFIFO)}, "fifos are not allowed");
  expect_refused_archive({special("null", AE_IFCHR, makedev(1, 3))}, "device nodes");
  expect_refused_archive({hardlink("h", "../outside")}, "path escapes the archive");
  expect_refused_archive({file("../x", "x")}, "path escapes the archive");
}

TEST_F(ExtractArchiveTest, WhiteoutNamesAreOrdinaryFiles) {
  auto r = extract({file(".wh.x", "data")});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(content(".wh.x"), "data");
}

}  // namespace
}  // namespace isola
