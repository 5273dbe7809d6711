#include "common/log.h"

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

}  // namespace isola
