// Restart policies, docker's back-off, Go durations and the health state.
#include <gtest/gtest.h>

#include "common/duration.h"
#include "engine/health.h"
#include "engine/restart.h"

namespace isola {
namespace {

TEST(RestartPolicy, ParsesDockersPolicies) {
  EXPECT_EQ(parse_restart_policy("always")->name, "always");
  EXPECT_EQ(parse_restart_policy("unless-stopped")->name, "unless-stopped");
  auto p = parse_restart_policy("on-failure:3");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "on-failure");
  EXPECT_EQ(p->max_retries, 3);
  EXPECT_EQ(parse_restart_policy("on-failure")->max_retries, 0);
  for (const char* bad : {"sometimes", "always:3", "on-failure:", "on-failure:-1", "on-failure:x", ""}) {
    auto r = parse_restart_policy(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message().find("--restart"), std::string::npos) << r.error().message();
  }
}

TEST(RestartPolicy, DecidesAsDocker) {
  RestartPolicy no, always{"always", 0}, failure{"on-failure", 2}, unlimited{"on-failure", 0};
  EXPECT_FALSE(should_restart(no, 1, 0, false));
  EXPECT_TRUE(should_restart(always, 0, 100, false));
  EXPECT_FALSE(should_restart(always, 1, 0, true));  // a user's stop
  EXPECT_FALSE(should_restart(failure, 0, 0, false));
  EXPECT_TRUE(should_restart(failure, 1, 1, false));
  EXPECT_FALSE(should_restart(failure, 1, 2, false));  // the retries are spent
  EXPECT_TRUE(should_restart(unlimited, 137, 1000, false));
}

TEST(RestartPolicy, BacksOffAndResetsAfterALongRun) {
  EXPECT_EQ(next_restart_delay_ms(0, 5), 100);
  EXPECT_EQ(next_restart_delay_ms(100, 5), 200);
  EXPECT_EQ(next_restart_delay_ms(40000, 5), 60000);
  EXPECT_EQ(next_restart_delay_ms(60000, 5), 60000);
  EXPECT_EQ(next_restart_delay_ms(60000, 10000), 100);
}

TEST(GoDuration, ParsesAndFormats) {
  EXPECT_EQ(parse_go_duration("30s"), 30'000'000'000);
  EXPECT_EQ(parse_go_duration("1m30s"), 90'000'000'000);
  EXPECT_EQ(parse_go_duration("500ms"), 500'000'000);
  EXPECT_EQ(parse_go_duration("1.5h"), 5'400'000'000'000);
  EXPECT_EQ(parse_go_duration("0"), 0);
  for (const char* bad : {"", "30", "s", "1x", "1..5s", "-1s", "99999999999999h"})
    EXPECT_FALSE(parse_go_duration(bad)) << bad;
  EXPECT_EQ(format_go_duration(30'000'000'000), "30s");
  EXPECT_EQ(format_go_duration(90'000'000'000), "1m30s");
  EXPECT_EQ(format_go_duration(500'000'000), "500ms");
  EXPECT_EQ(format_go_duration(3'600'000'000'000), "1h0m0s");
}

TEST(Healthcheck, FlagsOverTheImagesCheckFieldByField) {
  Json image = {{"Healthcheck", {{"Test", {"CMD", "check"}}, {"Interval", 5'000'000'000}, {"Retries", 7}}}};
  HealthOption flags;
  flags.timeout_ns = 2'000'000'000;
  Json hc = merge_healthcheck(flags, image);
  EXPECT_EQ(hc["Test"], Json({"CMD", "check"}));
  EXPECT_EQ(hc["Interval"], 5'000'000'000);
  EXPECT_EQ(hc["Timeout"], 2'000'000'000);
  EXPECT_EQ(hc["Retries"], 7);
  flags.test = {"CMD-SHELL", "true"};
  EXPECT_EQ(merge_healthcheck(flags, image)["Test"], Json({"CMD-SHELL", "true"}));
  flags.disable = true;
  EXPECT_TRUE(merge_healthcheck(flags, image).is_null());
  EXPECT_TRUE(merge_healthcheck({}, {{"Healthcheck", {{"Test", {"NONE"}}}}}).is_null());
  EXPECT_TRUE(merge_healthcheck({}, {{"Healthcheck", "hostile"}}).is_null());
  EXPECT_TRUE(merge_healthcheck({}, Json::object()).is_null());
}

TEST(HealthState, StreaksStartPeriodAndLog) {
  HealthState s;
  HealthProbe fail{1, 2, 1, "no"}, ok{3, 4, 0, "yes"};
  s.record(fail, 2, true);  // in the start period: logged only
  EXPECT_EQ(s.status, "starting");
  EXPECT_EQ(s.failing_streak, 0);
  s.record(fail, 2, false);
  EXPECT_EQ(s.status, "starting");
  s.record(fail, 2, false);
  EXPECT_EQ(s.status, "unhealthy");
  s.record(ok, 2, false);
  EXPECT_EQ(s.status, "healthy");
  EXPECT_EQ(s.failing_streak, 0);
  s.record(fail, 2, true);  // healthy once: the start period is over
  EXPECT_EQ(s.failing_streak, 1);
  for (int i = 0; i < 10; ++i) s.record(ok, 2, false);
  EXPECT_EQ(s.log.size(), 5u);
  HealthState back = HealthState::from_json(s.to_json());
  EXPECT_EQ(back.status, "healthy");
  EXPECT_EQ(back.log.size(), 5u);
  EXPECT_EQ(back.log[0].output, "yes");
}

}  // namespace
}  // namespace isola
