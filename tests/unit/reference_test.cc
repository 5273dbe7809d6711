#include <gtest/gtest.h>

#include "image/digest.h"
#include "image/reference.h"

using isola::Digest;
using isola::Reference;

TEST(Reference, DefaultsTagToLatest) {
  auto r = Reference::parse("busybox");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->str(), "busybox:latest");
}

TEST(Reference, NormalizesDockerHubNames) {
  EXPECT_EQ(Reference::parse("docker.io/library/busybox:1.36")->str(), "busybox:1.36");
  EXPECT_EQ(Reference::parse("docker.io/someone/app")->str(), "someone/app:latest");
  EXPECT_EQ(Reference::parse("library/busybox")->str(), "busybox:latest");
}

TEST(Reference, KeepsRegistryWithPort) {
  auto r = Reference::parse("localhost:5000/team/app:v1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->repository, "localhost:5000/team/app");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_EQ(Reference::parse("127.0.0.1:5000/app")->str(), "127.0.0.1:5000/app:latest");
}

TEST(Reference, RefusesInvalidNames) {
  for (const char* bad : {"", "Busybox", "a//b", "-x", "x:", "x:-tag", "x@sha256:00", "../etc", "a b",
                          "x:tag/with/slash"}) {
    EXPECT_FALSE(Reference::parse(bad)) << bad;
  }
}

TEST(Digest, ParsesOnlyStrictSha256) {
  std::string hex(64, 'a');
  EXPECT_TRUE(Digest::parse("sha256:" + hex));
  EXPECT_FALSE(Digest::parse("sha512:" + hex));
  EXPECT_FALSE(Digest::parse("sha256:" + hex.substr(1)));
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(63, 'a') + "A"));
  EXPECT_FALSE(Digest::parse("sha256:../../" + std::string(58, 'a')));
}
