// Outer image archives (src/image/unpack.cc extract_archive): the tar that
// 'isola load -i FILE' unpacks before reading the layout inside. See
// tar_harness.h for what is checked.
#include "tar_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static isola::fuzz::TarHarness harness(isola::fuzz::TarKind::image_archive);
  harness.run(data, size);
  return 0;
}
