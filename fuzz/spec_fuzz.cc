// The OCI runtime spec reader (src/spec/spec.cc RuntimeSpec::from_json and
// process_from_json): a bundle's config.json from podman or containerd, and
// the process file of 'isola-runtime exec --process'. The input is the
// JSON document.
//
// Checked: what is accepted survives to_json/from_json unchanged (the spec
// isola writes for its backends must read back the same); its seccomp
// section compiles or fails cleanly (as the runtime compiles it).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "runtime/seccomp.h"
#include "spec/spec.h"

namespace {

using namespace isola;

void check_process(const Json& j) {
  auto p = process_from_json(j);
  if (!p) {
    FUZZ_CHECK(!p.error().message().empty());
    return;
  }
  FUZZ_CHECK(!p->args.empty());
  FUZZ_CHECK(!p->cwd.empty());
  Json once = process_to_json(*p);
  auto again = process_from_json(once);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(process_to_json(*again) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto j = parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
  if (!j) return -1;  // not JSON: nothing of isola's beyond nlohmann's parser

  auto spec = RuntimeSpec::from_json(*j);
  if (spec) {
    FUZZ_CHECK(!spec->root_path.empty());
    Json once = spec->to_json();
    auto again = RuntimeSpec::from_json(once);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->to_json() == once);
    if (spec->linux.seccomp) {
      auto program = compile_seccomp(*spec->linux.seccomp, "");
      if (program) FUZZ_CHECK(!program->insns.empty());
    }
  } else {
    FUZZ_CHECK(!spec.error().message().empty());
  }

  check_process(*j);
  if (j->is_object())
    if (auto p = j->find("process"); p != j->end()) check_process(*p);
  return 0;
}
