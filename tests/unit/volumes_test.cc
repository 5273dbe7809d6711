// The volume store, -v / --mount parsing, docker's copy-up, and a volume's
// path through the spec and the VM plan (the same share as a bind mount).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/fs.h"
#include "engine/spec_builder.h"
#include "engine/volumes.h"
#include "vm/vm_spec.h"

using namespace isola;

namespace {

struct TempRoot {
  std::string path;
  TempRoot() : path(*make_temp_dir("/tmp", "isola-volumes-")) {}
  ~TempRoot() { (void)remove_tree(path); }
};

std::string error_of(const Result<VolumeOption>& r) { return r ? "" : r.error().message(); }

}  // namespace

TEST(VolumeName, FollowsDockersRule) {
  for (const char* good : {"data", "a1", "my_vol.2-x", "0abc"}) EXPECT_TRUE(check_volume_name(good)) << good;
  for (const char* bad : {"", "a", "_x", ".hidden", "-x", "a b", "a:b"}) EXPECT_FALSE(check_volume_name(bad)) << bad;
  auto slash = check_volume_name("data/x");
  ASSERT_FALSE(slash);
  EXPECT_NE(slash.error().message().find("[a-zA-Z0-9][a-zA-Z0-9_.-]+"), std::string::npos);
  EXPECT_NE(slash.error().message().find("absolute path"), std::string::npos);
}

TEST(VolumeStore, CreatesListsAndRemoves) {
  TempRoot root;
  VolumeStore store = *VolumeStore::open(root.path);
  VolumeRecord rec;
  rec.name = "data";
  rec.labels["team"] = "db";
  bool created = false;
  auto made = store.create(rec, &created);
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_TRUE(created);
  EXPECT_TRUE(is_directory(store.data_dir("data")));
  EXPECT_FALSE(made->anonymous);
  // A second create of the name returns the volume that is there.
  rec.labels["team"] = "other";
  auto again = store.create(rec, &created);
  ASSERT_TRUE(again);
  EXPECT_FALSE(created);
  EXPECT_EQ(again->labels.at("team"), "db");

  auto anon = store.create(VolumeRecord{});
  ASSERT_TRUE(anon);
  EXPECT_TRUE(anon->anonymous);
  EXPECT_EQ(anon->name.size(), 64u);

  auto list = store.list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  Json j = volume_json(store, *store.get("data"));
  EXPECT_EQ(j["Driver"], "local");
  EXPECT_EQ(j["Scope"], "local");
  EXPECT_EQ(j["Mountpoint"], store.data_dir("data"));
  EXPECT_EQ(j["Labels"]["team"], "db");

  ASSERT_TRUE(store.remove("data"));
  EXPECT_FALSE(store.exists("data"));
  EXPECT_FALSE(store.remove("data"));
  EXPECT_EQ(list_dir(path_join(root.path, "volumes"))->size(), 1u);  // no leftovers
}

TEST(VolumeStore, RefusesOtherDrivers) {
  TempRoot root;
  VolumeStore store = *VolumeStore::open(root.path);
  VolumeRecord rec;
  rec.name = "x1";
  rec.driver = "nfs";
  EXPECT_FALSE(store.create(rec));
  EXPECT_FALSE(store.exists("x1"));
}

TEST(ParseVolume, NamedAnonymousAndBind) {
  auto named = parse_volume("data:/var/lib/db:ro");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->kind, MountKind::volume);
  EXPECT_EQ(named->source, "data");
  EXPECT_TRUE(named->readonly);
  auto anon = parse_volume("/scratch");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->kind, MountKind::volume);
  EXPECT_TRUE(anon->anonymous);
  auto bind = parse_volume("/srv:/srv:rw,rshared");
  ASSERT_TRUE(bind);
  EXPECT_EQ(bind->kind, MountKind::bind);
  EXPECT_EQ(bind->propagation, "rshared");
  auto nocopy = parse_volume("data:/x:nocopy");
  ASSERT_TRUE(nocopy);
  EXPECT_TRUE(nocopy->nocopy);
  EXPECT_NE(error_of(parse_volume("data/x:/y")).find("invalid volume name"), std::string::npos);
  EXPECT_NE(error_of(parse_volume("data:y")).find("absolute"), std::string::npos);
  EXPECT_NE(error_of(parse_volume("data:/y:bogus")).find("unknown mode"), std::string::npos);
}

TEST(ParseMount, EachTypeAndItsOptions) {
  auto vol = parse_mount("type=volume,source=data,target=/d,readonly,volume-nocopy");
  ASSERT_TRUE(vol) << vol.error().message();
  EXPECT_EQ(vol->kind, MountKind::volume);
  EXPECT_EQ(vol->source, "data");
  EXPECT_EQ(vol->destination, "/d");
  EXPECT_TRUE(vol->readonly);
  EXPECT_TRUE(vol->nocopy);
  auto anon = parse_mount("dst=/x");  // type defaults to volume
  ASSERT_TRUE(anon);
  EXPECT_TRUE(anon->anonymous);
  auto tmp = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770");
  ASSERT_TRUE(tmp);
  EXPECT_EQ(tmp->kind, MountKind::tmpfs);
  ASSERT_TRUE(tmp->tmpfs_size && tmp->tmpfs_mode);
  EXPECT_EQ(*tmp->tmpfs_size, 1 << 20);
  EXPECT_EQ(*tmp->tmpfs_mode, 01770u);
  auto bind = parse_mount("type=bind,src=/tmp,target=/h,ro=false,bind-propagation=rslave");
  ASSERT_TRUE(bind);
  EXPECT_FALSE(bind->readonly);
  EXPECT_EQ(bind->propagation, "rslave");
}

TEST(ParseMount, DockersErrors) {
  EXPECT_NE(error_of(parse_mount("type=volume,target=/x,foo=bar")).find("unexpected key 'foo' in 'foo=bar'"),
            std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=volume,source=data")).find("target is required"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=bind,target=/x")).find("source is required"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=bind,source=/no/such/dir/here,target=/x")).find("does not exist"),
            std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=tmpfs,target=/x,volume-nocopy")).find("type=volume only"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=nfs,target=/x")).find("unknown mount type"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=volume,source=a/b,target=/x")).find("invalid volume name"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("type=tmpfs,target=/x,tmpfs-mode=99")).find("tmpfs-mode"), std::string::npos);
  EXPECT_NE(error_of(parse_mount("target=/x,readonly=maybe")).find("invalid value for readonly"), std::string::npos);
}

TEST(PrepareVolume, CopiesTheImagesContentIntoAnEmptyVolumeOnly) {
  TempRoot root;
  std::string rootfs = path_join(root.path, "rootfs");
  ASSERT_TRUE(mkdir_p(rootfs + "/srv/app", 0750));
  ASSERT_TRUE(write_file_atomic(rootfs + "/srv/app/config", "from the image\n", 0640));
  ASSERT_EQ(::chown((rootfs + "/srv/app/config").c_str(), 123, 456), 0);
  VolumeStore store = *VolumeStore::open(root.path);
  VolumeRecord rec;
  rec.name = "app";
  ASSERT_TRUE(store.create(rec));
  ASSERT_TRUE(prepare_volume(store, "app", rootfs, "/srv/app", false, 0));
  std::string copied = store.data_dir("app") + "/config";
  EXPECT_EQ(*read_file(copied), "from the image\n");
  struct stat st;
  ASSERT_EQ(::stat(copied.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 123u);
  EXPECT_EQ(st.st_gid, 456u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::stat(store.data_dir("app").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);  // the directory's mode too

  // A volume with content is left alone.
  ASSERT_TRUE(write_file_atomic(copied, "changed\n", 0640));
  ASSERT_TRUE(prepare_volume(store, "app", rootfs, "/srv/app", false, 0));
  EXPECT_EQ(*read_file(copied), "changed\n");

  // nocopy, and a path the image lacks: nothing copied.
  rec.name = "empty";
  ASSERT_TRUE(store.create(rec));
  ASSERT_TRUE(prepare_volume(store, "empty", rootfs, "/srv/app", true, 0));
  ASSERT_TRUE(prepare_volume(store, "empty", rootfs, "/no/such", false, 0));
  EXPECT_TRUE(list_dir(store.data_dir("empty"))->empty());
}

TEST(PrepareVolume, UsernsOwnsAnEmptyVolume) {
  TempRoot root;
  std::string rootfs = path_join(root.path, "rootfs");
  ASSERT_TRUE(mkdir_p(rootfs, 0755));
  VolumeStore store = *VolumeStore::open(root.path);
  VolumeRecord rec;
  rec.name = "u1";
  ASSERT_TRUE(store.create(rec));
  ASSERT_TRUE(prepare_volume(store, "u1", rootfs, "/data", false, 1u << 20));
  struct stat st;
  ASSERT_EQ(::stat(store.data_dir("u1").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1u << 20);
}

// A volume reaches the VM as a share of its _data directory, exactly as a
// bind mount of that directory would: the same template key.
TEST(VolumeSpec, IsABindOfItsDataDirectoryAndTheSameVmShare) {
  TempRoot root;
  std::string rootfs = path_join(root.path, "rootfs"), etc = path_join(root.path, "etc");
  ASSERT_TRUE(mkdir_p(rootfs, 0755));
  ASSERT_TRUE(mkdir_p(etc, 0755));
  VolumeStore store = *VolumeStore::open(root.path);
  VolumeRecord rec;
  rec.name = "data";
  ASSERT_TRUE(store.create(rec));
  SpecInputs in;
  in.id = std::string(64, 'a');
  in.rootfs = rootfs;
  in.etc_dir = etc;
  in.image_config = {{"Cmd", {"sh"}}};
  auto plan_for = [&](const VolumeOption& v) {
    RunOptions opts;
    opts.volumes.push_back(v);
    RuntimeSpec spec = *build_spec(opts, in);
    return *plan_vm(spec, etc);
  };
  VolumeOption vol = *parse_volume("data:/d");
  vol.host_path = store.data_dir("data");
  VolumeOption bind = *parse_volume(store.data_dir("data") + ":/d");
  VmPlan a = plan_for(vol), b = plan_for(bind);
  ASSERT_EQ(a.shares.size(), b.shares.size());
  for (size_t i = 0; i < a.shares.size(); ++i) {
    EXPECT_EQ(a.shares[i].tag, b.shares[i].tag);
    EXPECT_EQ(a.shares[i].host_path, b.shares[i].host_path);
    EXPECT_EQ(a.shares[i].readonly, b.shares[i].readonly);
  }
  EXPECT_EQ(a.shares.back().host_path, store.data_dir("data"));
}
