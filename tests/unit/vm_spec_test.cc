// The VM plan of a container spec: the 9p shares it hands out.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/fs.h"
#include "vm/template.h"
#include "vm/vm_spec.h"

using namespace isola;

namespace {

struct Dirs {
  std::string root;
  Dirs() : root(*make_temp_dir("/tmp", "isola-vmspec-")) {
    for (const char* d : {"etc", "vol-a", "vol-b", "rootfs"}) (void)mkdir_p(root + "/" + d, 0755);
    (void)write_file_atomic(root + "/single", "one file\n", 0644);
    (void)write_file_atomic(root + "/etc/hosts", "127.0.0.1 localhost\n", 0644);
  }
  ~Dirs() { (void)remove_tree(root); }
};

RuntimeSpec spec_with(const Dirs& d, bool reversed) {
  RuntimeSpec spec;
  spec.root_path = d.root + "/rootfs";
  std::vector<MountSpec> binds = {{"/etc/hosts", "bind", d.root + "/etc/hosts", {"rbind"}},
                                  {"/data", "bind", d.root + "/vol-a", {"rbind"}},
                                  {"/etc/motd", "bind", d.root + "/single", {"rbind", "ro"}},
                                  {"/srv", "bind", d.root + "/vol-b", {"rbind", "ro"}}};
  if (reversed) std::reverse(binds.begin(), binds.end());
  spec.mounts = {{"/proc", "proc", "proc", {}}};
  spec.mounts.insert(spec.mounts.end(), binds.begin(), binds.end());
  return spec;
}

}  // namespace

TEST(VmPlan, SharesDoNotDependOnTheSpecsMountOrder) {
  // podman lists a container's bind mounts in a different order from one
  // container to the next; the shares (and so the VM template's key) must
  // not change with it.
  Dirs d;
  RuntimeSpec a = spec_with(d, false), b = spec_with(d, true);
  auto pa = plan_vm(a, d.root + "/etc");
  auto pb = plan_vm(b, d.root + "/etc");
  ASSERT_TRUE(pa && pb);
  ASSERT_EQ(pa->shares.size(), pb->shares.size());
  for (size_t i = 0; i < pa->shares.size(); ++i) {
    EXPECT_EQ(pa->shares[i].tag, pb->shares[i].tag) << i;
    EXPECT_EQ(pa->shares[i].readonly, pb->shares[i].readonly) << i;
  }
  VmConfig ca, cb;
  ca.shares = pa->shares;
  cb.shares = pb->shares;
  EXPECT_EQ(template_key(ca).id, template_key(cb).id);
  // The mounts keep the spec's order, each pointing into its share.
  ASSERT_EQ(b.mounts[1].destination, "/srv");
  EXPECT_TRUE(b.mounts[1].source.starts_with("/run/isola/v"));
}
