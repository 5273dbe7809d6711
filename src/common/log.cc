#include "common/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace isola {

static int debug_state = -1;

void set_debug(bool on) { debug_state = on ? 1 : 0; }

bool debug_enabled() {
  if (debug_state < 0) {
    const char* env = std::getenv("ISOLA_DEBUG");
    debug_state = (env && *env && std::string(env) != "0") ? 1 : 0;
  }
  return debug_state == 1;
}

void log_line(std::string_view level, std::string_view text) {
  std::string line = "isola: ";
  line += level;
  line += ": ";
  line += text;
  line += '\n';
  // One write so lines from concurrent processes do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void trace(std::string_view phase) {
  const char* path = std::getenv("ISOLA_TRACE");
  if (!path || !*path) return;
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  std::string line = std::to_string(static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) + " " +
                     std::to_string(::getpid()) + " " + std::string(phase) + "\n";
  int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
  ::close(fd);
}

}  // namespace isola
