// isola cp's path rules (docker's SRC_PATH/DEST_PATH table), container paths
// that would leave the root, and the checks on untrusted tar input.
#include "engine/container_files.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/container_tar.h"

namespace isola {
namespace {

namespace fs = std::filesystem;

const PathState kMissing{false, false};
const PathState kFile{true, false};
const PathState kDir{true, true};

TEST(CopyPlan, FileToMissingIsCreatedUnderTheNewName) {
  auto p = plan_copy("/etc/hosts", kFile, "/tmp/out", kMissing);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dir, "/tmp");
  EXPECT_EQ(p->name, "out");
}

TEST(CopyPlan, FileToMissingDirectoryWithSlashIsAnError) {
  auto p = plan_copy("/etc/hosts", kFile, "/tmp/out/", kMissing);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("does not exist"), std::string::npos);
}

TEST(CopyPlan, FileOverwritesAFileAndGoesIntoADirectory) {
  auto over = plan_copy("a/hosts", kFile, "b/file", kFile);
  ASSERT_TRUE(over);
  EXPECT_EQ(over->dir, "b");
  EXPECT_EQ(over->name, "file");
  auto into = plan_copy("a/hosts", kFile, "b", kDir);
  ASSERT_TRUE(into);
  EXPECT_EQ(into->dir, "b");
  EXPECT_EQ(into->name, "hosts");
}

TEST(CopyPlan, FileWithTrailingSlashIsNotADirectory) {
  EXPECT_FALSE(plan_copy("/etc/hosts/", kFile, "out", kMissing));
  EXPECT_FALSE(plan_copy("/etc/hosts", kFile, "out/", kFile));
}

TEST(CopyPlan, DirectoryToMissingIsCreatedWithItsContents) {
  for (const char* src : {"/etc", "/etc/", "/etc/."}) {
    auto p = plan_copy(src, kDir, "new", kMissing);
    ASSERT_TRUE(p) << src;
    EXPECT_EQ(p->dir, ".");
    EXPECT_EQ(p->name, "new");
  }
}

TEST(CopyPlan, DirectoryIntoDirectoryOrItsContentsWithDot) {
  auto into = plan_copy("/etc", kDir, "dest", kDir);
  ASSERT_TRUE(into);
  EXPECT_EQ(into->dir, "dest");
  EXPECT_EQ(into->name, "etc");
  auto slash = plan_copy("/etc/", kDir, "dest", kDir);
  ASSERT_TRUE(slash);
  EXPECT_EQ(slash->name, "etc");
  auto contents = plan_copy("/etc/.", kDir, "dest", kDir);
  ASSERT_TRUE(contents);
  EXPECT_EQ(contents->dir, "dest");
  EXPECT_EQ(contents->name, "");
}

TEST(CopyPlan, DirectoryOntoAFileIsAnError) {
  auto p = plan_copy("/etc", kDir, "file", kFile);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("cannot copy a directory to a file"), std::string::npos);
}

TEST(CopyPaths, BaseAndDir) {
  EXPECT_EQ(path_base("/a/b/"), "b");
  EXPECT_EQ(path_base("/a/b/."), "b");
  EXPECT_EQ(path_base("/"), "");
  EXPECT_EQ(path_dir("a"), ".");
  EXPECT_EQ(path_dir("/a"), "/");
  EXPECT_EQ(path_dir("/a/b/"), "/a");
}

TEST(CopyPaths, Endpoints) {
  auto c = parse_copy_endpoint("web:/etc/hosts");
  EXPECT_EQ(c.container, "web");
  EXPECT_EQ(c.path, "/etc/hosts");
  EXPECT_EQ(parse_copy_endpoint("./a:b").container, "");
  EXPECT_EQ(parse_copy_endpoint("/tmp/a:b").container, "");
  EXPECT_TRUE(parse_copy_endpoint("-").stream);
  EXPECT_EQ(parse_copy_endpoint("web:").path, "");
}

TEST(CopyPaths, DotDotAboveTheRootIsRefused) {
  EXPECT_FALSE(container_path("../etc", "c"));
  EXPECT_FALSE(container_path("/a/../../etc", "c"));
  auto ok = container_path("/a/../etc", "c");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, "/a/../etc");
  EXPECT_EQ(*container_path("", "c"), "/");
}

// A tar built entry by entry, in an anonymous file.
class TarBuilder {
 public:
  TarBuilder() : fd_(*anonymous_file()), a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_open_fd(a_, fd_.get());
  }
  ~TarBuilder() { archive_write_free(a_); }
  TarBuilder& add(const std::string& name, mode_t type, const std::string& data = "", const char* link = nullptr,
                  const char* hardlink = nullptr) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (link) archive_entry_set_symlink(e, link);
    if (hardlink) archive_entry_set_hardlink(e, hardlink);
    archive_write_header(a_, e);
    if (!data.empty()) archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  int done() {
    archive_write_close(a_);
    return fd_.get();
  }

 private:
  UniqueFd fd_;
  archive* a_;
};

class TarExtract : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("isola-cf-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "dest");
    dest_ = *open_path(dir_ / "dest", O_PATH | O_DIRECTORY);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Result<void> extract(int fd) {
    TarTarget t;
    t.dir_fd = dest_.get();
    t.label = "dest";
    return extract_tar(fd, t);
  }
  bool dest_empty() const { return fs::is_empty(dir_ / "dest"); }
  fs::path dir_;
  UniqueFd dest_;
};

TEST_F(TarExtract, WritesFilesDirectoriesAndLinks) {
  TarBuilder tar;
  tar.add("d/", AE_IFDIR).add("d/f", AE_IFREG, "hello").add("d/l", AE_IFLNK, "", "f").add("h", AE_IFREG, "", nullptr,
                                                                                            "d/f");
  ASSERT_TRUE(extract(tar.done()));
  std::ifstream f(dir_ / "dest/d/f");
  std::string text;
  f >> text;
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(fs::read_symlink(dir_ / "dest/d/l"), "f");
  EXPECT_EQ(fs::hard_link_count(dir_ / "dest/h"), 2u);
}

TEST_F(TarExtract, NamesThatLeaveTheDestinationAreRefusedBeforeAnythingIsWritten) {
  TarBuilder tar;
  tar.add("ok", AE_IFREG, "x").add("../escape", AE_IFREG, "x");
  auto r = extract(tar.done());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("leaves the destination"), std::string::npos) << r.error().message();
  EXPECT_TRUE(dest_empty());
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
}

TEST_F(TarExtract, NamesBelowTheTarsOwnSymlinkAreRefused) {
  TarBuilder tar;
  tar.add("link", AE_IFLNK, "", dir_.c_str()).add("link/planted", AE_IFREG, "x");
  auto r = extract(tar.done());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("below a symlink"), std::string::npos) << r.error().message();
  EXPECT_TRUE(dest_empty());
  EXPECT_FALSE(fs::exists(dir_ / "planted"));
}

TEST_F(TarExtract, HardLinksOutsideAndDeviceNodesAreRefused) {
  TarBuilder links;
  links.add("h", AE_IFREG, "", nullptr, "../../etc/passwd");
  EXPECT_FALSE(extract(links.done()));
  TarBuilder dev;
  dev.add("null", AE_IFCHR);
  auto r = extract(dev.done());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("device node"), std::string::npos);
  EXPECT_TRUE(dest_empty());
}

TEST_F(TarExtract, AContainerSymlinkToEtcResolvesInsideTheContainersRoot) {
  fs::create_directories(dir_ / "root/etc");
  fs::create_directory_symlink("/etc", dir_ / "root/cfg");
  fs::create_directory_symlink("../../..", dir_ / "root/up");
  UniqueFd root = *open_path(dir_ / "root", O_PATH | O_DIRECTORY);
  FileTree box{root.get(), 0, "box"};
  std::ofstream(dir_ / "file") << "data";
  CopyOptions plain;
  ASSERT_TRUE(copy_between(FileTree{}, (dir_ / "file").string(), box, "/cfg/placed", plain));
  ASSERT_TRUE(copy_between(FileTree{}, (dir_ / "file").string(), box, "/up/up/placed2", plain));
  EXPECT_TRUE(fs::exists(dir_ / "root/etc/placed"));
  EXPECT_TRUE(fs::exists(dir_ / "root/placed2"));
  EXPECT_FALSE(fs::exists("/etc/placed"));
}

}  // namespace
}  // namespace isola
