// The event log: what happened to containers, images, volumes and networks,
// for `isola events`. isola has no daemon, so every process that acts (the
// CLI, each container's monitor) appends to one file in the store:
//
//   <root>/events.log     JSON lines in docker's event shape, newest last
//   <root>/events.log.1   the previous generation
//   <root>/events.lock    shared while appending, exclusive while rotating
//
// An event is one write() on an O_APPEND descriptor, so writers never
// interleave. Past ~1 MiB the log is renamed to events.log.1 (replacing the
// older one), which bounds the two files to ~2 MiB. Readers skip torn and
// unparsable lines, so a writer killed mid-write or a full disk costs at
// most that event.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/unique_fd.h"

namespace isola {

struct ContainerRecord;
struct ContainerState;

struct Event {
  std::string type;    // container, image, volume, network
  std::string action;  // create, start, die, pull, ...
  std::string id;      // the actor: a container or network ID, an image reference, a volume name
  std::map<std::string, std::string> attributes;
  int64_t time_ns = 0;
};

inline constexpr size_t kEventLogRotateBytes = 1u << 20;
// Longer lines are not written, and skipped when read.
inline constexpr size_t kEventMaxLine = 64u << 10;

// Appends `e` to the store's log, best effort: an event that cannot be
// written is dropped, never an error for the caller. Fills time_ns when 0.
void record_event(const std::string& store_root, Event e);

// A container event with docker's attributes: image, name and the labels,
// plus `extra`.
void record_container_event(const std::string& store_root, const ContainerRecord& rec, const std::string& action,
                            std::map<std::string, std::string> extra = {});
// An image, volume or network event: the actor `id`, with its name.
void record_named_event(const std::string& store_root, const std::string& type, const std::string& action,
                        const std::string& id, const std::string& name,
                        std::map<std::string, std::string> extra = {});
// What a monitor records when the container's process has exited: die
// (exitCode, oomKilled when so), then destroy for a --rm container, which
// the monitor removes next.
void record_container_exit(const std::string& store_root, const ContainerRecord& rec, const ContainerState& state);

// The log line (without its newline) and back. A line that is not an
// event gives nullopt.
std::string event_to_line(const Event& e);
std::optional<Event> event_from_line(std::string_view line);
// Docker's JSON shape, as the log stores it and --format json prints it.
Json event_json(const Event& e);

// Reads the log from a position on, across rotations: each poll returns the
// complete events appended since the last one, in log order.
class EventReader {
 public:
  // From the start of the older generation (for --since), or from the end
  // of the log (only what comes next).
  static EventReader open(const std::string& store_root, bool from_start);
  std::vector<Event> poll();

 private:
  explicit EventReader(std::string path) : path_(std::move(path)) {}
  void drain(std::vector<Event>& out);
  // Reads `path` from its start from now on (after a rotation).
  void switch_to(const std::string& path, std::vector<Event>& out);
  void take_lines(std::vector<Event>& out);
  std::string path_;
  UniqueFd fd_;         // the generation being read; kept open across its rename
  ino_t ino_ = 0;
  dev_t dev_ = 0;
  std::string pending_;   // a line not yet complete
  bool skipping_ = false; // inside an over-long line, until its newline
};

}  // namespace isola
