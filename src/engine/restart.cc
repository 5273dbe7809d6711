#include "engine/restart.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "common/log.h"
#include "engine/engine.h"

namespace isola {

Result<RestartPolicy> parse_restart_policy(const std::string& text) {
  RestartPolicy p;
  std::string name = text.substr(0, text.find(':'));
  if (name == "no" || name == "always" || name == "unless-stopped" || name == "on-failure") p.name = name;
  else
    return fail(make_error("--restart", text, "unknown restart policy; use no, always, unless-stopped or "
                                              "on-failure[:max-retries]"));
  if (size_t colon = text.find(':'); colon != std::string::npos) {
    std::string count = text.substr(colon + 1);
    if (name != "on-failure")
      return fail(make_error("--restart", text, "only on-failure takes a maximum retry count"));
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), p.max_retries);
    if (count.empty() || ec != std::errc() || end != count.data() + count.size() || p.max_retries < 0)
      return fail(make_error("--restart", text, "the maximum retry count must be a number of 0 or more"));
  }
  return p;
}

Json restart_policy_json(const RestartPolicy& policy) {
  return {{"Name", policy.name}, {"MaximumRetryCount", policy.max_retries}};
}

RestartPolicy restart_policy_of(const ContainerRecord& rec) {
  RestartPolicy p;
  auto it = rec.options.find("RestartPolicy");
  if (it == rec.options.end() || !it->is_object()) return p;
  p.name = json_string_or(*it, "Name", "no");
  p.max_retries = static_cast<int>(json_int_or(*it, "MaximumRetryCount", 0));
  return p;
}

bool should_restart(const RestartPolicy& policy, int exit_code, int restart_count, bool stopped_by_user) {
  if (stopped_by_user) return false;
  if (policy.name == "always" || policy.name == "unless-stopped") return true;
  if (policy.name != "on-failure" || exit_code == 0) return false;
  return policy.max_retries == 0 || restart_count < policy.max_retries;
}

int64_t next_restart_delay_ms(int64_t previous_delay_ms, int64_t ran_ms) {
  constexpr int64_t kFirst = 100, kMax = 60000, kResetAfter = 10000;
  if (previous_delay_ms <= 0 || ran_ms >= kResetAfter) return kFirst;
  return std::min(previous_delay_ms * 2, kMax);
}

namespace {

// Marks the container restarting and returns the back-off, or nullopt when
// it is not to restart.
std::optional<int64_t> begin_restart(ContainerStore& store, const ContainerRecord& rec) {
  auto lock = store.lock(rec.id);
  if (!lock) return std::nullopt;
  ContainerState st = store.recorded_state(rec.id);
  if (st.status != "exited" || st.monitor_pid != ::getpid()) return std::nullopt;
  bool by_user = path_exists(store.manual_stop_path(rec.id));
  if (!should_restart(restart_policy_of(rec), st.exit_code, st.restart_count, by_user)) return std::nullopt;
  int64_t delay = next_restart_delay_ms(st.restart_delay_ms, (st.finished_ns - st.started_ns) / 1000000);
  st.status = "restarting";
  st.restart_delay_ms = delay;
  if (!store.write_state(rec.id, st)) return std::nullopt;
  return delay;
}

void cancel_restart(ContainerStore& store, const std::string& id) {
  auto lock = store.lock(id);
  if (!lock) return;
  ContainerState st = store.recorded_state(id);
  if (st.status != "restarting" || st.monitor_pid != ::getpid()) return;
  st.status = "exited";
  (void)store.write_state(id, st);
}

}  // namespace

void restart_after_exit(const std::string& store_root, const std::string& id) {
  // Every monitor passes here on its way out: the store only, and the whole
  // engine (images, networks) only for a restart.
  auto store = ContainerStore::open(store_root);
  if (!store) return;
  auto rec = store->resolve(id);
  if (!rec || restart_policy_of(*rec).name == "no") return;  // removed (--rm), or nothing to do
  // Blocked from here: a user's stop during the back-off is read below, and
  // one that comes later stays pending until this process exits (the new
  // monitor starts with an empty mask).
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &term, nullptr);
  auto delay = begin_restart(*store, *rec);
  if (!delay) return;
  struct timespec wait{static_cast<time_t>(*delay / 1000), static_cast<long>(*delay % 1000 * 1000000)};
  auto engine = Engine::open(store_root);
  if (!engine || ::sigtimedwait(&term, nullptr, &wait) == SIGTERM) {
    cancel_restart(*store, id);
    return;
  }
  if (auto started = engine->start(*rec, false, Engine::StartedBy::restart_policy); !started)
    log_debug("restart of {}: {}", rec->name, started.error().message());
}

}  // namespace isola
