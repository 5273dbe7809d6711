// The exit and error reports (src/monitor/reports.cc): JSON that a guest
// agent, a monitor or a start pipe wrote. A VM's agent is in the guest, so a
// container that took over its VM writes these bytes to the host's monitor.
//
// Checked: reading never throws or crashes, exit codes stay in 0-255, an
// error always has a message and a docker exit code.
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "monitor/reports.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  isola::ExitReport exit = isola::read_exit_report(bytes);
  FUZZ_CHECK(exit.exit_code >= 0 && exit.exit_code <= 255);
  isola::Error error = isola::read_error_report(bytes);
  FUZZ_CHECK(!error.message().empty());
  FUZZ_CHECK(error.exit_code >= 1 && error.exit_code <= 255);
  return 0;
}
