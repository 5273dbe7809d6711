#include "engine/events.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "engine/container_store.h"

namespace isola {

namespace {

// Every line starts with this (keys are written sorted), so a torn line
// that the next event was appended to can be told from that event.
constexpr std::string_view kLineStart = "{\"Action\":";

// A lock held while appending (shared) or rotating (exclusive). Tried for a
// moment only: a stuck holder costs events their ordering guarantee, never
// the caller its progress.
UniqueFd lock_events(const std::string& root, int how) {
  UniqueFd fd(::open(path_join(root, "events.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fd;
  for (int i = 0; i < 50; ++i) {
    if (::flock(fd.get(), how | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    struct timespec ms {0, 1000000};
    ::nanosleep(&ms, nullptr);
  }
  return UniqueFd();
}

// Renames the log to events.log.1 once it has passed the bound, unless
// another writer already did.
void rotate_if_full(const std::string& root, int log_fd) {
  struct stat st {};
  if (::fstat(log_fd, &st) != 0 || static_cast<size_t>(st.st_size) < kEventLogRotateBytes) return;
  UniqueFd lock = lock_events(root, LOCK_EX);
  if (!lock) return;
  std::string path = path_join(root, "events.log");
  struct stat now {};
  if (::lstat(path.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) return;
  (void)::rename(path.c_str(), (path + ".1").c_str());
}

std::string json_line(const Event& e) {
  return event_json(e).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

Json event_json(const Event& e) {
  Json attrs = Json::object();
  for (const auto& [k, v] : e.attributes) attrs[k] = v;
  Json j = {{"Type", e.type},
            {"Action", e.action},
            {"Actor", {{"ID", e.id}, {"Attributes", attrs}}},
            {"scope", "local"},
            {"time", e.time_ns / 1000000000},
            {"timeNano", e.time_ns}};
  // docker's older fields, which it fills for containers and images.
  if (e.type == "container" || e.type == "image") {
    j["status"] = e.action;
    j["id"] = e.id;
    if (auto image = e.attributes.find("image"); e.type == "container" && image != e.attributes.end())
      j["from"] = image->second;
  }
  return j;
}

std::string event_to_line(const Event& e) {
  std::string line = json_line(e);
  if (line.size() < kEventMaxLine) return line;
  // Huge labels: keep the attributes that fit, so the event still says
  // what happened.
  Event small = e;
  std::erase_if(small.attributes, [](const auto& kv) { return kv.first.size() + kv.second.size() > 1024; });
  line = json_line(small);
  if (line.size() < kEventMaxLine) return line;
  small.attributes.clear();
  return json_line(small);
}

namespace {

std::optional<Event> parse_event(std::string_view text) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto actor = j.find("Actor");
  if (actor == j.end() || !actor->is_object()) return std::nullopt;
  Event e;
  e.type = json_string_or(j, "Type");
  e.action = json_string_or(j, "Action");
  e.id = json_string_or(*actor, "ID");
  e.time_ns = json_int_or(j, "timeNano", 0);
  if (e.type.empty() || e.action.empty() || e.time_ns <= 0) return std::nullopt;
  if (auto attrs = actor->find("Attributes"); attrs != actor->end() && attrs->is_object())
    for (const auto& [k, v] : attrs->items())
      if (v.is_string()) e.attributes[k] = v.get<std::string>();
  return e;
}

}  // namespace

std::optional<Event> event_from_line(std::string_view line) {
  if (line.size() > kEventMaxLine) return std::nullopt;
  if (auto e = parse_event(line)) return e;
  // A torn line followed by a whole one on the same line: the whole one.
  size_t start = line.rfind(kLineStart);
  if (start == 0 || start == std::string_view::npos) return std::nullopt;
  return parse_event(line.substr(start));
}

void record_event(const std::string& store_root, Event e) {
  try {
    if (e.time_ns == 0) {
      struct timespec ts {};
      ::clock_gettime(CLOCK_REALTIME, &ts);
      e.time_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    }
    std::string line = event_to_line(e) + "\n";
    if (line.size() > kEventMaxLine) return;
    // Shared: a rotation waits for appends to the old file to finish, so a
    // follower that sees the new file has seen all of the old one.
    UniqueFd lock = lock_events(store_root, LOCK_SH);
    std::string path = path_join(store_root, "events.log");
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return;
    ssize_t ignored = ::write(fd.get(), line.data(), line.size());
    (void)ignored;
    lock.reset();
    rotate_if_full(store_root, fd.get());
  } catch (...) {
    // Best effort: an event is never worth failing the caller.
  }
}

void record_container_event(const std::string& store_root, const ContainerRecord& rec, const std::string& action,
                            std::map<std::string, std::string> extra) {
  Event e{"container", action, rec.id, rec.labels, 0};
  e.attributes["image"] = rec.image;
  e.attributes["name"] = rec.name;
  for (auto& [k, v] : extra) e.attributes[k] = std::move(v);
  record_event(store_root, std::move(e));
}

void record_named_event(const std::string& store_root, const std::string& type, const std::string& action,
                        const std::string& id, const std::string& name, std::map<std::string, std::string> extra) {
  extra["name"] = name;
  record_event(store_root, Event{type, action, id, std::move(extra), 0});
}

void record_container_exit(const std::string& store_root, const ContainerRecord& rec, const ContainerState& state) {
  std::map<std::string, std::string> extra{{"exitCode", std::to_string(state.exit_code)}};
  if (state.oom_killed) extra["oomKilled"] = "true";
  record_container_event(store_root, rec, "die", std::move(extra));
  if (rec.auto_remove) record_container_event(store_root, rec, "destroy");
}

EventReader EventReader::open(const std::string& store_root, bool from_start) {
  EventReader r(path_join(store_root, "events.log"));
  r.fd_ = UniqueFd(::open((from_start ? r.path_ + ".1" : r.path_).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!r.fd_ && from_start) r.fd_ = UniqueFd(::open(r.path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (r.fd_ && ::fstat(r.fd_.get(), &st) == 0) {
    r.ino_ = st.st_ino;
    r.dev_ = st.st_dev;
    if (!from_start) ::lseek(r.fd_.get(), 0, SEEK_END);
  } else {
    r.fd_.reset();
  }
  return r;
}

std::vector<Event> EventReader::poll() {
  std::vector<Event> out;
  // Looked at before draining: if the log has been renamed, every append
  // to the old file finished before (see record_event), so draining it now
  // gets all of it.
  struct stat st {};
  bool have = ::lstat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  drain(out);
  if (!have || (fd_ && st.st_ino == ino_ && st.st_dev == dev_)) return out;
  // Rotated: what was read is now the old generation, unless the log
  // rotated twice since the last look; then the old generation is one not
  // read yet, and comes first.
  struct stat older {};
  if (fd_ && ::lstat((path_ + ".1").c_str(), &older) == 0 && (older.st_ino != ino_ || older.st_dev != dev_))
    switch_to(path_ + ".1", out);
  switch_to(path_, out);
  return out;
}

void EventReader::switch_to(const std::string& path, std::vector<Event>& out) {
  UniqueFd next(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat opened {};
  if (!next || ::fstat(next.get(), &opened) != 0) return;
  fd_ = std::move(next);
  ino_ = opened.st_ino;
  dev_ = opened.st_dev;
  pending_.clear();  // a torn last line of the old file
  skipping_ = false;
  drain(out);
}

void EventReader::drain(std::vector<Event>& out) {
  if (!fd_) return;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    pending_.append(buf, static_cast<size_t>(n));
    take_lines(out);
  }
}

void EventReader::take_lines(std::vector<Event>& out) {
  size_t begin = 0;
  for (size_t nl; (nl = pending_.find('\n', begin)) != std::string::npos; begin = nl + 1) {
    if (skipping_) {
      skipping_ = false;
      continue;
    }
    if (auto e = event_from_line(std::string_view(pending_).substr(begin, nl - begin))) out.push_back(std::move(*e));
  }
  pending_.erase(0, begin);
  if (pending_.size() > kEventMaxLine) {
    pending_.clear();
    skipping_ = true;
  }
}

}  // namespace isola
