#include <gtest/gtest.h>

#include "cli/table.h"

using namespace isola::cli;

TEST(HumanSize, UsesDecimalUnitsLikeDocker) {
  EXPECT_EQ(human_size(0), "0B");
  EXPECT_EQ(human_size(999), "999B");
  EXPECT_EQ(human_size(1000), "1kB");
  EXPECT_EQ(human_size(4260000), "4.26MB");
  EXPECT_EQ(human_size(12300), "12.3kB");
  EXPECT_EQ(human_size(100000000), "100MB");
}

TEST(HumanAgo, ReadsLikeDocker) {
  EXPECT_EQ(human_ago(1000, 1000), "Less than a second ago");
  EXPECT_EQ(human_ago(1000, 1003), "3 seconds ago");
  EXPECT_EQ(human_ago(1000, 1000 + 90), "About a minute ago");
  EXPECT_EQ(human_ago(1000, 1000 + 3 * 86400), "3 days ago");
  EXPECT_EQ(human_ago(1000, 1000 + 21 * 86400), "3 weeks ago");
}

TEST(Rfc3339, ParsesZonesAndFractions) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:10Z"), 10);
  EXPECT_EQ(parse_rfc3339("1970-01-01T01:00:10.123456789+01:00"), 10);
  EXPECT_EQ(parse_rfc3339("garbage"), -1);
}

TEST(Table, AlignsColumns) {
  Table t({"A", "LONG HEADER", "C"});
  t.add({"xxxx", "y", "z"});
  EXPECT_EQ(t.render(), "A      LONG HEADER   C\nxxxx   y             z\n");
}
