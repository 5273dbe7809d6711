// isola events (and system events): the store's event log, past and live,
// as docker events prints it. There is no daemon to stream from: the log is
// a file that the CLI and the monitors append to, and this command reads it
// and polls it for more (src/engine/events.h).
#include <signal.h>
#include <time.h>

#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/events_query.h"
#include "cli/gotemplate.h"
#include "engine/container_store.h"
#include "engine/events.h"

namespace isola::cli {

namespace {

volatile sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

// Without SA_RESTART, so the poll's sleep ends at once.
void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) ::sigaction(sig, &sa, nullptr);
}

struct EventsArgs {
  std::string since, until, format;
  std::vector<std::string> filters;
};

// The event under the Go field names docker's templates use.
Json template_data(const Event& e) {
  Json attrs = Json::object();
  for (const auto& [k, v] : e.attributes) attrs[k] = v;
  auto image = e.attributes.find("image");
  return {{"Status", e.action},
          {"ID", e.id},
          {"From", e.type == "container" && image != e.attributes.end() ? image->second : ""},
          {"Type", e.type},
          {"Action", e.action},
          {"Actor", {{"ID", e.id}, {"Attributes", attrs}}},
          {"Scope", "local"},
          {"Time", e.time_ns / 1000000000},
          {"TimeNano", e.time_ns}};
}

class Printer {
 public:
  static Result<Printer> make(const std::string& format) {
    Printer p;
    p.format_ = format;
    if (format.empty() || format == "json") return p;
    std::string text = format;
    for (size_t at; (at = text.find("\\t")) != std::string::npos;) text.replace(at, 2, "\t");
    auto t = GoTemplate::parse(text);
    if (!t) return fail(make_error("--format", format, t.error().message() + "; fix the template (Go text/template syntax)"));
    p.template_ = std::move(*t);
    return p;
  }

  Result<std::string> line(const Event& e) const {
    if (format_.empty()) return event_text(e);
    if (format_ == "json") return event_json(e).dump(-1, ' ', false, Json::error_handler_t::replace);
    auto out = template_->execute(template_data(e));
    if (!out) return fail(make_error("--format", format_, out.error().message()));
    return out;
  }

 private:
  std::string format_;
  std::optional<GoTemplate> template_;
};

struct Window {
  std::optional<int64_t> since, until;
};

Result<Window> parse_window(const EventsArgs& a) {
  Window w;
  int64_t now = now_ns();
  if (!a.since.empty()) w.since = TRY(parse_event_time("--since", a.since, now));
  if (!a.until.empty()) w.until = TRY(parse_event_time("--until", a.until, now));
  return w;
}

int cmd_events(const Globals& g, const EventsArgs& a) {
  auto filters = Filters::parse(a.filters, kEventFilters);
  if (!filters) return report(filters.error());
  auto window = parse_window(a);
  if (!window) return report(window.error());
  auto printer = Printer::make(a.format);
  if (!printer) return report(printer.error());
  // Past events only with --since; otherwise what happens from now on.
  EventReader reader = EventReader::open(g.root, window->since.has_value());
  catch_interrupts();
  for (;;) {
    for (const Event& e : reader.poll()) {
      if ((window->since && e.time_ns < *window->since) || (window->until && e.time_ns > *window->until) ||
          !event_matches(*filters, e))
        continue;
      auto text = printer->line(e);
      if (!text) return report(text.error());
      std::cout << *text << "\n" << std::flush;
      if (!std::cout) return 0;  // the reader went away
    }
    if (g_interrupted || (window->until && now_ns() >= *window->until)) return 0;
    struct timespec pause {0, 150 * 1000000};
    ::nanosleep(&pause, nullptr);
  }
}

CLI::App* add_events(CLI::App& parent, Globals& g) {
  auto a = std::make_shared<EventsArgs>();
  auto* cmd = parent.add_subcommand("events", "Print what happens to containers, images, volumes and networks");
  cmd->add_option("--since", a->since, "Past events from this time on (RFC 3339, Unix time, or a duration ago: 10m)");
  cmd->add_option("--until", a->until, "Stop at this time (same forms as --since)");
  cmd->add_option("-f,--filter", a->filters,
                  "Filter KEY=VALUE (container, event, image, label, network, type, volume)")
      ->allow_extra_args(false);
  cmd->add_option("--format", a->format, "json, or a Go template over the event ({{.Action}} {{.Actor.ID}})");
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_events(g, *a); }; });
  return cmd;
}

}  // namespace

void add_events_command(CLI::App& app, Globals& g) {
  add_events(app, g);
  if (CLI::App* system = app.get_subcommand("system")) add_events(*system, g);
}

}  // namespace isola::cli
