// The event log (its bound, rotation, crash-torn lines and order) and what
// `isola events` selects from it (filters, --since/--until, the line).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "cli/events_query.h"
#include "common/fs.h"
#include "engine/events.h"

using namespace isola;
using namespace isola::cli;

namespace {

struct TempRoot {
  std::string path;
  TempRoot() : path(*make_temp_dir("/tmp", "isola-events-")) {}
  ~TempRoot() { (void)remove_tree(path); }
  std::string log() const { return path + "/events.log"; }
};

off_t size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

Event container_event(const std::string& action, const std::string& name, int64_t t = 0) {
  return Event{"container", action, std::string(64, 'a'), {{"image", "busybox"}, {"name", name}}, t};
}

void append_raw(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
}

Filters filters(const std::vector<std::string>& args) { return *Filters::parse(args, kEventFilters); }

}  // namespace

TEST(EventLog, LineIsDockersShape) {
  Event e = container_event("die", "web", 1700000000123456789);
  e.attributes["exitCode"] = "3";
  Json j = Json::parse(event_to_line(e));
  EXPECT_EQ(j["status"], "die");
  EXPECT_EQ(j["id"], e.id);
  EXPECT_EQ(j["from"], "busybox");
  EXPECT_EQ(j["Type"], "container");
  EXPECT_EQ(j["Action"], "die");
  EXPECT_EQ(j["Actor"]["ID"], e.id);
  EXPECT_EQ(j["Actor"]["Attributes"]["exitCode"], "3");
  EXPECT_EQ(j["scope"], "local");
  EXPECT_EQ(j["time"], 1700000000);
  EXPECT_EQ(j["timeNano"], 1700000000123456789);
  auto back = event_from_line(event_to_line(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->attributes, e.attributes);
  EXPECT_EQ(back->time_ns, e.time_ns);
}

TEST(EventLog, ReadsInWrittenOrderAcrossRotation) {
  TempRoot root;
  EventReader reader = EventReader::open(root.path, true);
  // Big labels make each line ~8 KiB, so 400 events rotate the log ~3 times.
  std::string big(8000, 'x');
  int seen = 0;
  for (int i = 0; i < 400; ++i) {
    Event e = container_event("start", "c" + std::to_string(i));
    e.attributes["big"] = big;
    record_event(root.path, e);
    if (i % 50 != 49) continue;
    for (const Event& got : reader.poll()) {
      EXPECT_EQ(got.attributes.at("name"), "c" + std::to_string(seen));
      ++seen;
    }
  }
  EXPECT_EQ(seen, 400);
  EXPECT_TRUE(path_exists(root.log() + ".1"));
}

TEST(EventLog, AFollowerSeesTheGenerationBetweenTwoRotations) {
  TempRoot root;
  EventReader reader = EventReader::open(root.path, false);
  std::string big(8000, 'x');
  // The log rotates twice before the reader looks: the generation written
  // between the rotations is events.log.1 by then.
  int written = 0;
  auto write_until_rotations = [&](int rotations) {
    for (int done = 0; done < rotations;) {
      Event e = container_event("start", "c" + std::to_string(written++));
      e.attributes["big"] = big;
      bool had = path_exists(root.log());
      off_t before = had ? size_of(root.log()) : 0;
      record_event(root.path, e);
      if (had && size_of(root.log()) < before) ++done;
    }
  };
  record_event(root.path, container_event("create", "first"));
  ASSERT_EQ(reader.poll().size(), 1u);
  write_until_rotations(2);
  record_event(root.path, container_event("start", "c" + std::to_string(written++)));  // opens the third generation
  // The generation the reader had open is drained through its descriptor,
  // the middle one from events.log.1, then the new log: every event, in order.
  std::vector<Event> got = reader.poll();
  ASSERT_EQ(got.size(), static_cast<size_t>(written));
  for (int i = 0; i < written; ++i) EXPECT_EQ(got[static_cast<size_t>(i)].attributes.at("name"), "c" + std::to_string(i));
}

TEST(EventLog, StaysBounded) {
  TempRoot root;
  std::string big(8000, 'y');
  for (int i = 0; i < 1000; ++i) {
    Event e = container_event("create", "n");
    e.attributes["big"] = big;
    record_event(root.path, e);
  }
  EXPECT_LE(size_of(root.log()), static_cast<off_t>(kEventLogRotateBytes + kEventMaxLine));
  EXPECT_LE(size_of(root.log() + ".1"), static_cast<off_t>(kEventLogRotateBytes + kEventMaxLine));
  // The newest events are kept: the last one is at the end of events.log.
  std::vector<Event> all = EventReader::open(root.path, true).poll();
  ASSERT_FALSE(all.empty());
  EXPECT_LT(all.size(), 1000u);
}

TEST(EventLog, ConcurrentWritersNeverInterleave) {
  TempRoot root;
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = 0; i < 200; ++i) record_event(root.path, container_event("start", "k" + std::to_string(k)));
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(EventReader::open(root.path, true).poll().size(), 800u);
}

TEST(EventLog, SkipsTornAndHostileLines) {
  TempRoot root;
  record_event(root.path, container_event("create", "one"));
  // A writer killed mid-line, then the next writer's whole line after it.
  std::string whole = event_to_line(container_event("start", "two", 5)) + "\n";
  append_raw(root.log(), whole.substr(0, 30));
  record_event(root.path, container_event("start", "three"));
  append_raw(root.log(), "not json\n{}\n[1,2]\n{\"Type\":\"container\",\"Action\":\"x\",\"Actor\":7}\n\n");
  append_raw(root.log(), std::string(200000, 'z') + "\n");  // over the line limit
  record_event(root.path, container_event("die", "four"));
  append_raw(root.log(), whole.substr(0, 40));  // torn at the very end: left alone
  std::vector<Event> got = EventReader::open(root.path, true).poll();
  std::vector<std::string> names;
  for (const Event& e : got) names.push_back(e.attributes.at("name"));
  EXPECT_EQ(names, (std::vector<std::string>{"one", "three", "four"}));
}

TEST(EventLog, FollowerStartsAtTheEndAndSeesWhatComes) {
  TempRoot root;
  record_event(root.path, container_event("create", "old"));
  EventReader reader = EventReader::open(root.path, false);
  EXPECT_TRUE(reader.poll().empty());
  record_event(root.path, container_event("start", "new"));
  std::vector<Event> got = reader.poll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attributes.at("name"), "new");
}

TEST(EventFilters, SameKeyOrsDifferentKeysAnd) {
  Event die = container_event("die", "web");
  Event start = container_event("start", "db");
  Event pull{"image", "pull", "busybox:latest", {{"name", "busybox"}}, 1};
  Filters f = filters({"event=die", "event=start"});
  EXPECT_TRUE(event_matches(f, die));
  EXPECT_TRUE(event_matches(f, start));
  EXPECT_FALSE(event_matches(f, pull));
  Filters both = filters({"event=die", "container=web"});
  EXPECT_TRUE(event_matches(both, die));
  EXPECT_FALSE(event_matches(both, start));
  EXPECT_TRUE(event_matches(filters({"type=image"}), pull));
  EXPECT_FALSE(event_matches(filters({"type=image"}), die));
  EXPECT_TRUE(event_matches(filters({"image=busybox"}), pull));
  EXPECT_TRUE(event_matches(filters({"image=busybox:latest"}), die));
  EXPECT_FALSE(event_matches(filters({"image=alpine"}), die));
  EXPECT_TRUE(event_matches(filters({"container=aaaa"}), die));  // an ID prefix
  EXPECT_FALSE(event_matches(filters({"container=web"}), pull));
}

TEST(EventFilters, LabelsAndVerbs) {
  Event e = container_event("health_status: healthy", "web");
  e.attributes["tier"] = "front";
  EXPECT_TRUE(event_matches(filters({"event=health_status"}), e));
  EXPECT_TRUE(event_matches(filters({"label=tier=front"}), e));
  EXPECT_TRUE(event_matches(filters({"label=tier"}), e));
  EXPECT_FALSE(event_matches(filters({"label=tier=back"}), e));
  Event net{"network", "connect", "n1id", {{"name", "backend"}, {"container", "c1"}}, 1};
  EXPECT_TRUE(event_matches(filters({"network=backend"}), net));
  EXPECT_FALSE(event_matches(filters({"volume=backend"}), net));
}

TEST(EventTime, AcceptsDockersForms) {
  const int64_t s = 1000000000, now = 1767366245 * s;
  EXPECT_EQ(*parse_event_time("--since", "1767366000", now), 1767366000 * s);
  EXPECT_EQ(*parse_event_time("--since", "1767366000.5", now), 1767366000 * s + 500000000);
  EXPECT_EQ(*parse_event_time("--since", "2026-01-02T15:04:05Z", now), 1767366245 * s);
  EXPECT_EQ(*parse_event_time("--since", "2026-01-02T15:04:05.25Z", now), 1767366245 * s + 250000000);
  EXPECT_EQ(*parse_event_time("--since", "2026-01-02T17:04:05+02:00", now), 1767366245 * s);
  EXPECT_EQ(*parse_event_time("--since", "10m", now), now - 600 * s);
  EXPECT_EQ(*parse_event_time("--since", "1h30m", now), now - 5400 * s);
  EXPECT_EQ(*parse_event_time("--since", "90s", now), now - 90 * s);
  for (const char* bad : {"", "yesterday", "10x", "2026-13-01", "2026-01-02T15:04:05Q", "1h-3m"}) {
    auto r = parse_event_time("--since", bad, now);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message().find("--since"), std::string::npos);
  }
}

TEST(EventText, DockersDefaultLine) {
  Event e = container_event("create", "web", 1767366245123456789);
  e.id = "abc";
  EXPECT_EQ(event_text(e), "2026-01-02T15:04:05.123456789Z container create abc (image=busybox, name=web)");
}
