#include "runtime/mount_options.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

using isola::parse_mount_options;
using isola::propagation_flags;

TEST(MountOptions, SplitsFlagsPropagationRecursiveAndData) {
  auto o = parse_mount_options({"rbind", "ro", "nosuid", "rslave", "rro", "rnoatime", "mode=755", "size=1k"}, "m");
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_TRUE(o->bind && o->recursive);
  EXPECT_EQ(o->flags, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID));
  EXPECT_EQ(o->propagation, (std::vector<unsigned long>{MS_SLAVE | MS_REC}));
  EXPECT_EQ(o->attr_set, uint64_t{MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME});
  EXPECT_EQ(o->attr_clear, uint64_t{MOUNT_ATTR__ATIME});
  EXPECT_EQ(o->data, "mode=755,size=1k");
}

TEST(MountOptions, LaterWordsWin) {
  auto o = parse_mount_options({"rro", "rrw", "ro", "rw"}, "m");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->flags, 0ul);
  EXPECT_EQ(o->attr_set, 0u);
  EXPECT_EQ(o->attr_clear, uint64_t{MOUNT_ATTR_RDONLY});
}

TEST(MountOptions, RefusesAtimeNegationsByName) {
  auto o = parse_mount_options({"rbind", "rnostrictatime"}, "mounts[2].options");
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message().find("mounts[2].options"), std::string::npos) << o.error().message();
  EXPECT_NE(o.error().message().find("rnostrictatime"), std::string::npos) << o.error().message();
}

TEST(MountOptions, PropagationWords) {
  EXPECT_EQ(propagation_flags("shared"), MS_SHARED);
  EXPECT_EQ(propagation_flags("runbindable"), MS_UNBINDABLE | MS_REC);
  EXPECT_FALSE(propagation_flags("sideways"));
}
