#include "engine/limit_checks.h"

#include <cmath>
#include <cstdio>

#include "common/fs.h"

namespace isola {

std::set<long> cpu_list(const std::string& text) {
  std::set<long> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = item.find('-');
    std::string lo_text = item.substr(0, dash), hi_text = dash == std::string::npos ? lo_text : item.substr(dash + 1);
    auto number = [](const std::string& s) -> long {
      if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
      return std::stol(s);
    };
    long lo = number(lo_text), hi = number(hi_text);
    if (lo < 0 || hi < lo) return {};
    for (long c = lo; c <= hi; ++c) out.insert(c);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

namespace {

// What the kernel lists in `file` ("0-1"), or `fallback` when it cannot be read.
std::string online_list(const char* file, const char* fallback) {
  auto text = read_file(file, 4096);
  std::string have = text ? *text : fallback;
  while (!have.empty() && (have.back() == '\n' || have.back() == ' ')) have.pop_back();
  return have;
}

Result<void> check_list(const std::string& text, const std::string& field, const std::string& have,
                        const char* what) {
  std::set<long> asked = cpu_list(text);
  if (asked.empty())
    return fail(make_error(field, "", "invalid list \"" + text + "\"; use numbers and ranges like 0-2,4"));
  std::set<long> available = cpu_list(have);
  for (long c : asked)
    if (!available.empty() && !available.contains(c))
      return fail(make_error(field, "", std::string(what) + " " + std::to_string(c) + " is not available (this host has " +
                                            have + "); choose among those"));
  return {};
}

}  // namespace

std::string online_cpus() { return online_list("/sys/devices/system/cpu/online", "0"); }

Result<void> check_cpuset(const std::string& text, const std::string& field) {
  return check_list(text, field, online_cpus(), "CPU");
}

Result<void> check_cpuset_mems(const std::string& text, const std::string& field) {
  return check_list(text, field, online_list("/sys/devices/system/node/online", "0"), "memory node");
}

Result<void> check_memory_limits(int64_t memory, int64_t memory_swap, int64_t reservation, const char* changed) {
  if (memory_swap != 0 && memory == 0)
    return fail(make_error("--memory-swap", "", "limits memory plus swap, so it needs a memory limit; add --memory"));
  if (memory_swap > 0 && memory_swap < memory)
    return fail(make_error("--memory-swap", "", "is below the memory limit (" + mib(memory) +
                                                    "; it counts memory plus swap); give at least the memory limit, "
                                                    "or -1"));
  if (memory != 0 && reservation > memory)
    return fail(make_error(changed, "", "the memory reservation (" + mib(reservation) +
                                            ") would be above the memory limit (" + mib(memory) +
                                            "); give a reservation of at most the limit"));
  return {};
}

std::string mib(int64_t bytes) {
  double m = static_cast<double>(bytes) / (1 << 20);
  char buf[32];
  std::snprintf(buf, sizeof buf, m == std::floor(m) ? "%.0f MiB" : "%.1f MiB", m);
  return buf;
}

}  // namespace isola
