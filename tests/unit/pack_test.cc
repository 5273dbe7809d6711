// Packing an overlayfs upper directory into a layer (isola commit): whiteouts
// and opaque directories come out in OCI form, links and owners survive, and
// unpack_layer turns the result back into the same overlayfs form. Runs as
// root (0/0 devices, trusted.* xattrs, owners).
#include "image/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>

#include "common/fs.h"
#include "image/unpack.h"

namespace isola {
namespace {

struct Listed {
  mode_t type = 0;
  std::string hardlink, symlink;
  int64_t uid = 0, gid = 0, size = 0;
};

// Every entry of a (compressed) tar by name.
std::map<std::string, Listed> list_tar(const std::string& path) {
  std::map<std::string, Listed> out;
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  EXPECT_EQ(archive_read_open_filename(a.get(), path.c_str(), 65536), ARCHIVE_OK);
  archive_entry* e;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
    Listed l;
    l.type = archive_entry_filetype(e);
    if (const char* h = archive_entry_hardlink(e)) l.hardlink = h;
    if (const char* s = archive_entry_symlink(e)) l.symlink = s;
    l.uid = archive_entry_uid(e);
    l.gid = archive_entry_gid(e);
    l.size = archive_entry_size(e);
    out[archive_entry_pathname(e)] = l;
  }
  return out;
}

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (devices, trusted xattrs)";
    base_ = make_temp_dir("/tmp", "isola-pack-test-").value();
    upper_ = path_join(base_, "upper");
    ASSERT_TRUE(mkdir_p(upper_, 0755));
  }
  void TearDown() override {
    if (!base_.empty()) (void)remove_tree(base_);
  }
  void write(const std::string& rel, const std::string& data) {
    ASSERT_TRUE(write_file_atomic(path_join(upper_, rel), data, 0644));
  }
  std::string run_pack(uint32_t id_base = 0) {
    std::string out = path_join(base_, "layer-" + std::to_string(count_++) + ".tar.gz");
    auto packed = pack_upper(upper_, out, {id_base});
    EXPECT_TRUE(packed) << (packed ? "" : packed.error().message());
    return out;
  }

  std::string base_, upper_;
  int count_ = 0;
};

TEST_F(PackTest, WhiteoutsAndOpaqueDirectoriesBecomeOciMarkers) {
  ASSERT_TRUE(mkdir_p(path_join(upper_, "etc"), 0755));
  ASSERT_EQ(::mknod(path_join(upper_, "etc/group").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_TRUE(mkdir_p(path_join(upper_, "var/spool"), 0755));
  ASSERT_EQ(::setxattr(path_join(upper_, "var/spool").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  write("var/spool/only", "only\n");
  auto entries = list_tar(run_pack());
  ASSERT_TRUE(entries.contains("etc/.wh.group"));
  EXPECT_EQ(entries["etc/.wh.group"].type, AE_IFREG);
  EXPECT_EQ(entries["etc/.wh.group"].size, 0);
  EXPECT_FALSE(entries.contains("etc/group"));
  EXPECT_TRUE(entries.contains("var/spool/.wh..wh..opq"));
  EXPECT_TRUE(entries.contains("var/spool/only"));
  EXPECT_EQ(entries["var/spool/"].type, AE_IFDIR);  // directories end in "/", as docker writes them
}

TEST_F(PackTest, RoundTripsThroughUnpackLayer) {
  ASSERT_TRUE(mkdir_p(path_join(upper_, "d"), 0755));
  ASSERT_EQ(::mknod(path_join(upper_, "gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(::setxattr(path_join(upper_, "d").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  write("d/file", "data\n");
  ASSERT_EQ(::link(path_join(upper_, "d/file").c_str(), path_join(upper_, "link").c_str()), 0);
  ASSERT_EQ(::symlink("d/file", path_join(upper_, "sym").c_str()), 0);
  ASSERT_EQ(::mkfifo(path_join(upper_, "fifo").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(path_join(upper_, "d/file").c_str(), 04755), 0);
  std::string layer = run_pack();
  auto entries = list_tar(layer);
  EXPECT_EQ(entries["link"].hardlink, "d/file");
  EXPECT_EQ(entries["sym"].symlink, "d/file");
  EXPECT_EQ(entries["fifo"].type, AE_IFIFO);

  std::string dest = path_join(base_, "unpacked");
  ASSERT_TRUE(mkdir_p(dest, 0755));
  auto unpacked = unpack_layer(layer, dest, "test layer");
  ASSERT_TRUE(unpacked) << unpacked.error().message();
  struct stat st;
  ASSERT_EQ(::lstat(path_join(dest, "gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
  char value[8] = {};
  EXPECT_EQ(::getxattr(path_join(dest, "d").c_str(), "trusted.overlay.opaque", value, sizeof value), 1);
  EXPECT_EQ(value[0], 'y');
  ASSERT_EQ(::lstat(path_join(dest, "d/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(read_file(path_join(dest, "link")).value(), "data\n");
}

TEST_F(PackTest, UsernsOwnersAreShiftedBack) {
  const uint32_t base = 1u << 20;
  write("owned", "x");
  ASSERT_EQ(::chown(path_join(upper_, "owned").c_str(), base + 5, base + 6), 0);
  write("stranger", "x");
  ASSERT_EQ(::chown(path_join(upper_, "stranger").c_str(), 1000, 1000), 0);
  auto entries = list_tar(run_pack(base));
  EXPECT_EQ(entries["owned"].uid, 5);
  EXPECT_EQ(entries["owned"].gid, 6);
  EXPECT_EQ(entries["stranger"].uid, 65534);
}

TEST_F(PackTest, KeepsDeviceNodesAndRefusesOverlayRedirects) {
  ASSERT_EQ(::mknod(path_join(upper_, "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  std::string out = path_join(base_, "devices.tar.gz");
  ASSERT_TRUE(pack_upper(upper_, out, {}));
  auto entries = list_tar(out);
  ASSERT_TRUE(entries.contains("null"));
  EXPECT_EQ(entries["null"].type, static_cast<mode_t>(AE_IFCHR));

  ASSERT_EQ(::unlink(path_join(upper_, "null").c_str()), 0);
  ASSERT_TRUE(mkdir_p(path_join(upper_, "moved"), 0755));
  ASSERT_EQ(::setxattr(path_join(upper_, "moved").c_str(), "trusted.overlay.redirect", "/orig", 5, 0), 0);
  auto packed = pack_upper(upper_, path_join(base_, "refused2.tar.gz"), {});
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message().find("redirect"), std::string::npos) << packed.error().message();
}

}  // namespace
}  // namespace isola
