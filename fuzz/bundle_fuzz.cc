// isola-runtime's reading of a bundle (src/ociruntime/bundle.cc
// load_bundle, parse_hooks, resolve_cgroups_path): the config.json that
// podman or containerd writes, with its hooks, annotations and the fields
// isola refuses. The input is config.json; the bundle directory with an
// empty rootfs is made once.
//
// Checked: accepted hooks have absolute paths and bounded timeouts; an
// accepted bundle has a command, an absolute root and a cgroups path, with
// and without systemd's slice:prefix:name form.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "ociruntime/bundle.h"

namespace {

using namespace isola;

void check_hooks(const oci::Hooks& h) {
  for (const auto* list : {&h.prestart, &h.create_runtime, &h.create_container, &h.start_container, &h.poststart,
                           &h.poststop})
    for (const oci::Hook& hook : *list) {
      FUZZ_CHECK(!hook.path.empty() && hook.path[0] == '/');
      FUZZ_CHECK(hook.timeout >= 0 && hook.timeout <= 86400);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string bundle = [] {
    std::string dir = fuzz::workdir("bundle");
    fuzz::make_dir(dir + "/rootfs");
    return dir;
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto j = parse_json(text, "config.json")) {
    if (auto hooks = oci::parse_hooks(*j)) check_hooks(*hooks);
  }

  fuzz::write_all(bundle + "/config.json", text);
  for (bool systemd : {false, true}) {
    auto b = oci::load_bundle(bundle, {"fuzz", systemd, false});
    if (!b) continue;
    FUZZ_CHECK(!b->spec.process.args.empty());
    FUZZ_CHECK(!b->spec.root_path.empty() && b->spec.root_path[0] == '/');
    check_hooks(b->hooks);
    FUZZ_CHECK(!b->spec.linux.cgroups_path.empty());
  }
  return 0;
}
