// Exit and error reports as a hostile guest agent could write them: a field
// of the wrong type or out of range reads as absent and never throws (it
// used to abort the host-side VM monitor).
#include "monitor/reports.h"

#include <gtest/gtest.h>

using namespace isola;

TEST(ExitReport, ReadsCodeOomAndError) {
  ExitReport r = read_exit_report(R"({"exit_code":137,"oom_killed":true,"error":""})");
  EXPECT_EQ(r.exit_code, 137);
  EXPECT_TRUE(r.oom_killed);
  EXPECT_EQ(read_exit_report(R"({"exit_code":3,"error":"no such file"})").error, "no such file");
}

TEST(ExitReport, WrongTypesAndRangesReadAsAbsent) {
  for (const char* payload : {R"({"exit_code":"x"})", R"({"exit_code":1.5})", R"({"exit_code":-1})",
                              R"({"exit_code":256})", R"({"exit_code":null})", R"([1,2])", "\"s\"", "{", ""}) {
    ExitReport r = read_exit_report(payload);
    EXPECT_EQ(r.exit_code, 125) << payload;
    EXPECT_FALSE(r.oom_killed) << payload;
  }
  EXPECT_FALSE(read_exit_report(R"({"exit_code":0,"oom_killed":"yes"})").oom_killed);
  EXPECT_EQ(read_exit_report(R"({"error":7})").error, "");
}

TEST(ErrorReport, ExitCodeFromOpAndErrno) {
  EXPECT_EQ(read_error_report(R"({"message":"m","op":"exec","errno":2})").exit_code, 127);
  EXPECT_EQ(read_error_report(R"({"message":"m","op":"exec","errno":13})").exit_code, 126);
  EXPECT_EQ(read_error_report(R"({"message":"m","op":"mount","errno":2})").exit_code, 125);
  EXPECT_EQ(read_error_report(R"({"message":"m","exit_code":42})").exit_code, 42);
  EXPECT_EQ(read_error_report(R"({"error":"from a monitor"})").message(), "from a monitor");
}

TEST(ErrorReport, HostilePayloadsStillGiveAnError) {
  for (const char* payload : {R"({"message":5,"op":[],"errno":"2","exit_code":"1"})", R"({"message":""})",
                              R"({"errno":-5,"op":"exec"})", R"({"errno":1e300})", "null", "not json"}) {
    Error e = read_error_report(payload);
    EXPECT_FALSE(e.message().empty()) << payload;
    EXPECT_EQ(e.exit_code, 125) << payload;
  }
}
