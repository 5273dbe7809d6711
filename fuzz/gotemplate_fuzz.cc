// Go templates typed with --format (src/cli/gotemplate*.cc): the parser and
// the executor over an inspect-like document, and the --filter parser
// (src/cli/filters.cc). A template from the command line must end in output
// or a positioned error, never a crash, a hang or a huge allocation.
#include <cstdint>
#include <string>

#include "cli/filters.h"
#include "cli/gotemplate.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace isola;
  static const Json doc = Json::parse(R"({
    "Id": "0123456789ab", "Name": "/web", "Args": ["a", "b"], "Size": 4096, "Ratio": 0.25, "VM": null,
    "State": {"Pid": 42, "Running": true, "Status": "running", "ExitCode": 0},
    "Config": {"Image": "busybox", "Labels": {"app": "shop"}, "Env": ["A=1", "B=2"], "Cmd": ["sh", "-c", "x"]}
  })");
  std::string text(reinterpret_cast<const char*>(data), size);

  auto parsed = cli::GoTemplate::parse(text);
  if (!parsed) {
    FUZZ_CHECK(parsed.error().message().starts_with("template: :"));
  } else {
    auto out = parsed->execute(doc);
    if (!out) FUZZ_CHECK(out.error().message().starts_with("template: :"));
    // The same template gives the same output again (no state kept between runs).
    auto again = parsed->execute(doc);
    FUZZ_CHECK(out.has_value() == again.has_value());
    if (out) FUZZ_CHECK(*out == *again);
  }

  std::vector<std::string> args;
  for (size_t b = 0; b <= text.size();) {
    size_t e = std::min(text.find('\n', b), text.size());
    args.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  if (auto f = cli::Filters::parse(args, {"name", "label", "status"})) {
    (void)f->labels_match({{"app", "shop"}});
    (void)f->any("name", [](const std::string& v) { return cli::glob_match(v, "web"); });
  }
  return 0;
}
