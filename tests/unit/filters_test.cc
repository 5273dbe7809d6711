// --filter: parsing, docker's OR within a key and AND across keys, labels.
#include "cli/filters.h"

#include <gtest/gtest.h>

using isola::cli::Filters;
using isola::cli::glob_match;

namespace {

const std::vector<std::string> kValid = {"name", "status", "label"};

TEST(Filters, SameKeyOrsDifferentKeysAnd) {
  auto f = Filters::parse({"name=web", "name=db", "status=running"}, kValid);
  ASSERT_TRUE(f) << f.error().message();
  auto is = [](std::string want) { return [want](const std::string& v) { return v == want; }; };
  EXPECT_TRUE(f->any("name", is("web")));
  EXPECT_TRUE(f->any("name", is("db")));
  EXPECT_FALSE(f->any("name", is("cache")));
  EXPECT_TRUE(f->any("label", is("x")));  // not given: everything passes
  EXPECT_EQ(f->values("name"), (std::vector<std::string>{"web", "db"}));
  EXPECT_TRUE(f->has("status"));
  EXPECT_FALSE(f->has("label"));
}

TEST(Filters, ValueMayHoldEquals) {
  auto f = Filters::parse({"label=a=b=c"}, kValid);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->labels_match({{"a", "b=c"}}));
  EXPECT_FALSE(f->labels_match({{"a", "b"}}));
}

TEST(Filters, LabelsAllApply) {
  auto f = Filters::parse({"label=app", "label=tier=db", "label!=debug", "label!=env=prod"}, kValid);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->labels_match({{"app", "x"}, {"tier", "db"}, {"env", "dev"}}));
  EXPECT_FALSE(f->labels_match({{"app", "x"}}));
  EXPECT_FALSE(f->labels_match({{"app", "x"}, {"tier", "web"}}));
  EXPECT_FALSE(f->labels_match({{"app", "x"}, {"tier", "db"}, {"debug", ""}}));
  EXPECT_FALSE(f->labels_match({{"app", "x"}, {"tier", "db"}, {"env", "prod"}}));
}

TEST(Filters, UnknownKeyNamesTheValidOnes) {
  auto f = Filters::parse({"colour=red"}, kValid);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message(),
            "--filter 'colour=red': unknown filter \"colour\"; valid filters are: name, status, label");
  EXPECT_FALSE(Filters::parse({"name!=x"}, kValid));
}

TEST(Filters, MissingEqualsIsAnError) {
  auto f = Filters::parse({"name"}, kValid);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("use KEY=VALUE"), std::string::npos);
  EXPECT_FALSE(Filters::parse({"=x"}, kValid));
}

TEST(Filters, Globs) {
  EXPECT_TRUE(glob_match("busy*", "busybox"));
  EXPECT_TRUE(glob_match("*/busybox", "example.com/busybox"));
  EXPECT_TRUE(glob_match("b?sybox", "busybox"));
  EXPECT_FALSE(glob_match("alpine*", "busybox"));
}

}  // namespace
