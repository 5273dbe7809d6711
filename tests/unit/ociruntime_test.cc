// isola-runtime's parsing: Go-style flags, systemd cgroups paths,
// container IDs, hooks.
#include <gtest/gtest.h>

#include "ociruntime/args.h"
#include "ociruntime/bundle.h"
#include "ociruntime/pod_member.h"
#include "ociruntime/state.h"

namespace isola::oci {
namespace {

const std::vector<FlagSpec> kFlags = {
    {{"bundle", "b"}, true}, {{"detach", "d"}, false}, {{"env", "e"}, true, true}};

ParsedArgs parse(std::vector<std::string> args, bool stop = false) {
  args.insert(args.begin(), "cmd");
  auto p = parse_flags(args, 1, kFlags, stop);
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? *p : ParsedArgs{};
}

TEST(OciArgs, AcceptsEveryGoFlagSpelling) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"--bundle", "/b", "id"}, {"--bundle=/b", "id"}, {"-bundle", "/b", "id"}, {"-b", "/b", "id"},
           {"id", "--bundle", "/b"}}) {
    ParsedArgs p = parse(args);
    EXPECT_EQ(p.get("bundle"), "/b");
    EXPECT_EQ(p.positional, std::vector<std::string>{"id"});
  }
}

TEST(OciArgs, BooleansAndRepeats) {
  ParsedArgs p = parse({"-d", "--env", "A=1", "-e=B=2", "id"});
  EXPECT_TRUE(p.has("detach"));
  EXPECT_EQ(p.all("env"), (std::vector<std::string>{"A=1", "B=2"}));
  EXPECT_FALSE(parse({"--detach=false", "id"}).has("detach"));
}

TEST(OciArgs, ExecCommandLineIsNotParsed) {
  ParsedArgs p = parse({"-d", "id", "ls", "-l", "--bundle"}, true);
  EXPECT_EQ(p.positional, (std::vector<std::string>{"id", "ls", "-l", "--bundle"}));
}

TEST(OciArgs, MistakesAreNamed) {
  std::vector<std::string> unknown = {"cmd", "--nope", "id"};
  auto r = parse_flags(unknown, 1, kFlags, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--nope"), std::string::npos);
  std::vector<std::string> missing = {"cmd", "--bundle"};
  EXPECT_FALSE(parse_flags(missing, 1, kFlags, false));
  std::vector<std::string> bad_bool = {"cmd", "--detach=yes"};
  EXPECT_FALSE(parse_flags(bad_bool, 1, kFlags, false));
}

TEST(OciCgroupsPath, SystemdFormBecomesTheCgroupfsPath) {
  EXPECT_EQ(*resolve_cgroups_path("machine.slice:libpod:abc", true, "x"), "machine.slice/libpod-abc.scope");
  EXPECT_EQ(*resolve_cgroups_path("kubepods-besteffort-pod1.slice:cri-containerd:abc", true, "x"),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope");
  EXPECT_EQ(*resolve_cgroups_path(":ctr:abc", true, "x"), "system.slice/ctr-abc.scope");
  EXPECT_EQ(*resolve_cgroups_path("-.slice:p:n", true, "x"), "p-n.scope");
  EXPECT_FALSE(resolve_cgroups_path("machine:libpod:abc", true, "x"));
  EXPECT_FALSE(resolve_cgroups_path("a:b", true, "x"));
}

TEST(OciCgroupsPath, PlainPathsAndTheDefault) {
  EXPECT_EQ(*resolve_cgroups_path("/default/t1", false, "t1"), "/default/t1");
  EXPECT_EQ(*resolve_cgroups_path("/default/t1", true, "t1"), "/default/t1");
  EXPECT_EQ(*resolve_cgroups_path("", false, "t1"), "isola-runtime/t1");
}

TEST(OciIds, OnlyPlainFileNames) {
  for (std::string ok : {std::string("a"), std::string("t1"), std::string("abc_DEF-1.2+3"), std::string(64, 'f')})
    EXPECT_TRUE(check_id(ok)) << ok;
  for (const char* bad : {"", ".", "..", ".hidden", "a/b", "a b", "a\nb", "../x"}) EXPECT_FALSE(check_id(bad)) << bad;
  EXPECT_FALSE(check_id(std::string(1025, 'a')));
}

TEST(OciHooks, ParsedByKindAndChecked) {
  Json config = Json::parse(R"({"hooks":{"prestart":[{"path":"/bin/true","args":["true","x"],"env":["A=1"],
      "timeout":5}],"poststop":[{"path":"/bin/false"}]}})");
  auto hooks = parse_hooks(config);
  ASSERT_TRUE(hooks) << hooks.error().message();
  ASSERT_EQ(hooks->prestart.size(), 1u);
  EXPECT_EQ(hooks->prestart[0].args, (std::vector<std::string>{"true", "x"}));
  EXPECT_EQ(hooks->prestart[0].timeout, 5);
  EXPECT_EQ(hooks->poststop.size(), 1u);
  EXPECT_TRUE(parse_hooks(Json::parse("{}")));
  EXPECT_FALSE(parse_hooks(Json::parse(R"({"hooks":{"prestart":[{"path":"relative"}]}})")));
  EXPECT_FALSE(parse_hooks(Json::parse(R"({"hooks":{"prestart":[{"path":"/x","timeout":0}]}})")));
  EXPECT_FALSE(parse_hooks(Json::parse(R"({"hooks":{"prestart":{}}})")));
}

TEST(OciState, StateDocumentAsTheSpecNamesIt) {
  ContainerInfo info;
  info.id = "c1";
  info.bundle = "/b";
  info.rootfs = "/b/rootfs";
  info.pid = 42;
  info.annotations = {{"k", "v"}};
  Json running = oci_state(info, "running");
  EXPECT_EQ(running["status"], "running");
  EXPECT_EQ(running["pid"], 42);
  EXPECT_EQ(running["annotations"]["k"], "v");
  EXPECT_EQ(oci_state(info, "stopped")["pid"], 0);
  auto back = ContainerInfo::from_json(info.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->annotations, info.annotations);
  EXPECT_EQ(back->rootfs, "/b/rootfs");
}

TEST(OciPods, ContainersAreFoundInTheirPodByTheEnginesAnnotations) {
  RuntimeSpec spec;
  EXPECT_EQ(pod_container_type(spec), "");
  EXPECT_EQ(pod_sandbox_id(spec), "");
  spec.annotations = {{"io.kubernetes.cri.container-type", "container"}, {"io.kubernetes.cri.sandbox-id", "abc"}};
  EXPECT_EQ(pod_sandbox_id(spec), "abc");
  spec.annotations = {{"io.kubernetes.cri-o.ContainerType", "container"}, {"io.kubernetes.cri-o.SandboxID", "def"}};
  EXPECT_EQ(pod_sandbox_id(spec), "def");
  spec.annotations = {{"io.kubernetes.cri.container-type", "sandbox"}, {"io.kubernetes.cri.sandbox-id", "abc"}};
  EXPECT_EQ(pod_container_type(spec), "sandbox");
  EXPECT_EQ(pod_sandbox_id(spec), "");  // a sandbox is its own pod's VM
  EXPECT_EQ(pod_share_dir("/run/isola/vm/abc/monitor.sock"), "/run/isola/vm/abc/pod");
}

TEST(OciPods, APodVmIsSizedByThePodsLimits) {
  RuntimeSpec spec;
  VmPlan plan;
  plan.memory_mb = vm_memory_mb(0);
  plan.cpus = 1;
  size_pod_vm(spec, plan);
  EXPECT_EQ(plan.memory_mb, vm_memory_mb(0));
  spec.annotations = {{"io.kubernetes.cri.sandbox-memory", std::to_string(1024ll << 20)},
                      {"io.kubernetes.cri.sandbox-cpu-quota", "250000"},
                      {"io.kubernetes.cri.sandbox-cpu-period", "100000"}};
  size_pod_vm(spec, plan);
  EXPECT_EQ(plan.memory_mb, vm_memory_mb(1024ll << 20));
  EXPECT_EQ(plan.cpus, 3u);
  spec.annotations = {{"io.kubernetes.cri.sandbox-memory", "lots"}};
  VmPlan small;
  small.memory_mb = 256;
  size_pod_vm(spec, small);
  EXPECT_EQ(small.memory_mb, 256u);
}

}  // namespace
}  // namespace isola::oci
