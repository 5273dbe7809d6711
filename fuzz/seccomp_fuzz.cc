// seccomp profiles (src/runtime/seccomp.cc parse_seccomp_profile): the
// file of '--security-opt seccomp=FILE', in docker's format or the OCI
// spec's. The input is the JSON document.
//
// Checked: an accepted profile compiles with libseccomp or fails cleanly;
// its canonical form, written into a spec's linux.seccomp as the engine
// does, reads back the same through the spec reader.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "runtime/seccomp.h"
#include "spec/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace isola;
  auto j = parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "seccomp profile");
  if (!j) return -1;

  auto profile = parse_seccomp_profile(*j);
  if (!profile) {
    FUZZ_CHECK(!profile.error().message().empty());
    return 0;
  }
  FUZZ_CHECK(!profile->default_action.empty());

  Json canonical = seccomp_to_json(*profile);
  Json doc = {{"ociVersion", "1.0.2"}, {"root", {{"path", "rootfs"}}}, {"linux", {{"seccomp", canonical}}}};
  auto spec = RuntimeSpec::from_json(doc);
  FUZZ_CHECK(spec.has_value());
  FUZZ_CHECK(spec->linux.seccomp.has_value());
  FUZZ_CHECK(seccomp_to_json(*spec->linux.seccomp) == canonical);

  auto program = compile_seccomp(*profile, "");
  if (program) FUZZ_CHECK(!program->insns.empty());
  return 0;
}
