// Layer tars (src/image/unpack.cc unpack_layer): plain, gzip or zstd, as
// found in any image. See tar_harness.h for what is checked.
#include "tar_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static isola::fuzz::TarHarness harness(isola::fuzz::TarKind::layer);
  harness.run(data, size);
  return 0;
}
