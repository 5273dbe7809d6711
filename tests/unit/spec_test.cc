#include "spec/spec.h"

#include <gtest/gtest.h>

using isola::Json;
using isola::RuntimeSpec;

namespace {

// A config.json as docker/runc write it, with one of every field isola reads.
const char* kFullConfig = R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true,
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 18},
    "args": ["/bin/sh", "-c", "echo hi"],
    "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
    "cwd": "/work",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_KILL"],
      "effective": ["CAP_CHOWN"],
      "inheritable": [],
      "permitted": ["CAP_CHOWN", "CAP_KILL"],
      "ambient": ["CAP_KILL"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 18446744073709551615, "soft": 1024}],
    "noNewPrivileges": true,
    "apparmorProfile": "docker-default"
  },
  "root": {"path": "/var/lib/isola/c/rootfs", "readonly": true},
  "hostname": "box",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "mount"}],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "resources": {
      "memory": {"limit": 536870912, "swap": -1},
      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
      "pids": {"limit": 100},
      "devices": [{"allow": false, "access": "rwm"}]
    },
    "cgroupsPath": "isola/abc",
    "maskedPaths": ["/proc/kcore"],
    "readonlyPaths": ["/proc/sys"],
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 131072, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
      ]
    },
    "sysctl": {"net.ipv4.ip_forward": "1"},
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 5, "gid": 6}],
    "rootfsPropagation": "rslave"
  },
  "annotations": {"org.example": "yes"}
})";

Json parse(const std::string& text) { return Json::parse(text); }

// The message of the error from_json gives for `config`.
std::string error_for(const Json& config) {
  auto r = RuntimeSpec::from_json(config);
  if (r) return "(parsed)";
  return r.error().message();
}

Json minimal() { return parse(R"({"process": {"args": ["sh"]}, "root": {"path": "/r"}})"); }

}  // namespace

TEST(Spec, ReadsEveryField) {
  auto r = RuntimeSpec::from_json(parse(kFullConfig));
  ASSERT_TRUE(r) << r.error().message();
  const RuntimeSpec& s = *r;
  EXPECT_EQ(s.oci_version, "1.0.2-dev");
  EXPECT_TRUE(s.process.terminal);
  EXPECT_EQ(s.process.uid, 1000u);
  EXPECT_EQ(s.process.additional_gids, (std::vector<gid_t>{10, 20}));
  EXPECT_EQ(s.process.args, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(s.process.env.size(), 2u);
  EXPECT_EQ(s.process.cwd, "/work");
  ASSERT_TRUE(s.process.capabilities);
  EXPECT_EQ(s.process.capabilities->bounding, (std::vector<std::string>{"CAP_CHOWN", "CAP_KILL"}));
  EXPECT_EQ(s.process.capabilities->ambient, (std::vector<std::string>{"CAP_KILL"}));
  ASSERT_EQ(s.process.rlimits.size(), 1u);
  EXPECT_EQ(s.process.rlimits[0].hard, UINT64_MAX);
  EXPECT_EQ(s.process.rlimits[0].soft, 1024u);
  EXPECT_TRUE(s.process.no_new_privileges);
  EXPECT_EQ(s.root_path, "/var/lib/isola/c/rootfs");
  EXPECT_TRUE(s.root_readonly);
  EXPECT_EQ(s.hostname, "box");
  ASSERT_EQ(s.mounts.size(), 2u);
  EXPECT_EQ(s.mounts[1].destination, "/data");
  EXPECT_EQ(s.mounts[1].options, (std::vector<std::string>{"rbind", "ro"}));
  ASSERT_EQ(s.linux.namespaces.size(), 3u);
  EXPECT_EQ(s.linux.namespaces[1].path, "/proc/1/ns/net");
  ASSERT_EQ(s.linux.uid_mappings.size(), 1u);
  EXPECT_EQ(s.linux.uid_mappings[0].host_id, 100000u);
  EXPECT_EQ(s.linux.resources.memory_limit, 536870912);
  EXPECT_EQ(s.linux.resources.memory_swap, -1);
  EXPECT_EQ(s.linux.resources.cpu_shares, 512u);
  EXPECT_EQ(s.linux.resources.cpu_quota, 50000);
  EXPECT_EQ(s.linux.resources.cpu_period, 100000u);
  EXPECT_EQ(s.linux.resources.pids_limit, 100);
  EXPECT_EQ(s.linux.cgroups_path, "isola/abc");
  EXPECT_EQ(s.linux.masked_paths, (std::vector<std::string>{"/proc/kcore"}));
  ASSERT_TRUE(s.linux.seccomp);
  EXPECT_EQ(s.linux.seccomp->default_errno_ret, 1u);
  ASSERT_EQ(s.linux.seccomp->syscalls.size(), 3u);
  ASSERT_EQ(s.linux.seccomp->syscalls[1].args.size(), 1u);
  EXPECT_EQ(s.linux.seccomp->syscalls[1].args[0].value, 131072u);
  EXPECT_EQ(s.linux.seccomp->syscalls[1].args[0].op, "SCMP_CMP_EQ");
  EXPECT_EQ(s.linux.seccomp->syscalls[2].errno_ret, 13u);
  EXPECT_EQ(s.linux.sysctl.at("net.ipv4.ip_forward"), "1");
  EXPECT_EQ(s.linux.resources.cpuset_cpus, "0-1");
  EXPECT_EQ(s.linux.resources.cpuset_mems, "0");
  ASSERT_EQ(s.linux.devices.size(), 1u);
  EXPECT_EQ(s.linux.devices[0].path, "/dev/fuse");
  EXPECT_EQ(s.linux.devices[0].type, 'c');
  EXPECT_EQ(s.linux.devices[0].minor, 229);
  EXPECT_EQ(s.linux.devices[0].file_mode, 0600u);
  EXPECT_EQ(s.linux.devices[0].gid, 6u);
  EXPECT_EQ(s.linux.rootfs_propagation, "rslave");
  EXPECT_EQ(s.annotations.at("org.example"), "yes");
}

TEST(Spec, DeviceNodesNameTheWrongField) {
  Json j = minimal();
  j["linux"]["devices"] = parse(R"([{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}])");
  EXPECT_NE(error_for(j).find("linux.devices[0].type"), std::string::npos) << error_for(j);
  j["linux"]["devices"] = parse(R"([{"path": "dev/x", "type": "c", "major": 1, "minor": 1}])");
  EXPECT_NE(error_for(j).find("linux.devices[0].path"), std::string::npos) << error_for(j);
  j["linux"]["devices"] = parse(R"([{"path": "/dev/x", "type": "c", "major": 1, "minor": 1, "fileMode": 65535}])");
  EXPECT_NE(error_for(j).find("linux.devices[0].fileMode"), std::string::npos) << error_for(j);
}

TEST(Spec, WritesWhatItReads) {
  auto first = RuntimeSpec::from_json(parse(kFullConfig));
  ASSERT_TRUE(first);
  Json out = first->to_json();
  // Field names are the OCI ones, so runc or crun could read the bundle too.
  EXPECT_EQ(out["process"]["user"]["additionalGids"], parse("[10, 20]"));
  EXPECT_EQ(out["linux"]["uidMappings"][0]["containerID"], 0);
  EXPECT_EQ(out["linux"]["seccomp"]["syscalls"][1]["args"][0]["valueTwo"], 0);
  EXPECT_EQ(out["root"]["readonly"], true);

  auto second = RuntimeSpec::from_json(out);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->to_json(), out);
  EXPECT_EQ(second->process.rlimits[0].hard, UINT64_MAX);
  EXPECT_EQ(second->linux.resources.memory_swap, -1);
  EXPECT_EQ(second->linux.seccomp->syscalls[2].errno_ret, 13u);
}

TEST(Spec, ProcessIsOptionalButNeedsArgs) {
  auto r = RuntimeSpec::from_json(parse(R"({"root": {"path": "/r"}})"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->process.args.empty());
  EXPECT_EQ(r->process.cwd, "/");
  // Written back without a process, it still reads.
  EXPECT_FALSE(r->to_json().contains("process"));
  EXPECT_TRUE(RuntimeSpec::from_json(r->to_json()));

  EXPECT_NE(error_for(parse(R"({"process": {"args": []}, "root": {"path": "/r"}})")).find("process.args"),
            std::string::npos);
  EXPECT_NE(error_for(parse(R"({"process": {"cwd": "/"}, "root": {"path": "/r"}})")).find("process.args"),
            std::string::npos);
}

TEST(Spec, RootPathIsRequired) {
  EXPECT_NE(error_for(parse(R"({"process": {"args": ["sh"]}})")).find("root"), std::string::npos);
  EXPECT_NE(error_for(parse(R"({"process": {"args": ["sh"]}, "root": {}})")).find("root.path"), std::string::npos);
  EXPECT_NE(error_for(parse(R"({"process": {"args": ["sh"]}, "root": {"path": ""}})")).find("root.path"),
            std::string::npos);
  EXPECT_NE(error_for(parse("[1, 2]")), "(parsed)");
}

TEST(Spec, WrongTypesNameTheField) {
  struct Case {
    const char* pointer;  // JSON pointer of the field to spoil
    Json value;
    const char* field;    // what the message must name
  };
  const Case cases[] = {
      {"/process/args", "sh", "process.args"},
      {"/process/args/0", 7, "process.args[0]"},
      {"/process/terminal", "yes", "process.terminal"},
      {"/process/user/uid", "0", "process.user.uid"},
      {"/process/user/uid", -1, "process.user.uid"},
      {"/process/user/uid", 4294967296LL, "process.user.uid"},
      {"/process/user/additionalGids/1", 1.5, "process.user.additionalGids[1]"},
      {"/process/capabilities/effective", "CAP_CHOWN", "process.capabilities.effective"},
      {"/process/rlimits/0/soft", -5, "process.rlimits[0].soft"},
      {"/root", "/rootfs", "root"},
      {"/root/readonly", 1, "root.readonly"},
      {"/hostname", false, "hostname"},
      {"/mounts/1/options/0", Json::object(), "mounts[1].options[0]"},
      {"/mounts/0", "proc", "mounts[0]"},
      {"/mounts/1/destination", Json::array(), "mounts[1].destination"},
      {"/linux/namespaces/0/type", "time", "linux.namespaces[0].type"},
      {"/linux/uidMappings/0/size", "65536", "linux.uidMappings[0].size"},
      {"/linux/resources/memory/limit", 1.5, "linux.resources.memory.limit"},
      {"/linux/resources/cpu/shares", -2, "linux.resources.cpu.shares"},
      {"/linux/resources/pids", 100, "linux.resources.pids"},
      {"/linux/cgroupsPath", 3, "linux.cgroupsPath"},
      {"/linux/seccomp/syscalls/1/args/0/index", "0", "linux.seccomp.syscalls[1].args[0].index"},
      {"/linux/seccomp/defaultErrnoRet", -1, "linux.seccomp.defaultErrnoRet"},
      {"/linux/sysctl/net.ipv4.ip_forward", 1, "linux.sysctl.net.ipv4.ip_forward"},
      {"/annotations", Json::array(), "annotations"},
  };
  for (const Case& c : cases) {
    Json config = parse(kFullConfig);
    config[Json::json_pointer(c.pointer)] = c.value;
    std::string message = error_for(config);
    EXPECT_NE(message.find(c.field), std::string::npos) << c.pointer << " gave: " << message;
  }
}

TEST(Spec, IgnoresUnknownFieldsAndNulls) {
  Json config = minimal();
  config["vm"] = {{"hypervisor", {{"path", "/usr/bin/qemu"}}}};
  config["process"]["consoleSize"] = {{"height", 24}, {"width", 80}};
  config["linux"] = {{"intelRdt", Json::object()}, {"seccomp", nullptr}, {"resources", {{"hugepageLimits", 1}}}};
  config["hostname"] = nullptr;
  auto r = RuntimeSpec::from_json(config);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->linux.seccomp);
  EXPECT_TRUE(r->hostname.empty());
}

TEST(Spec, RefusesRepeatedNamespaces) {
  Json config = minimal();
  config["linux"]["namespaces"] = parse(R"([{"type": "pid"}, {"type": "pid"}])");
  EXPECT_NE(error_for(config).find("listed twice"), std::string::npos);
}
