// The guest agent outside a VM: its payload parsing, its ps rows, and its
// event loop driven over a socketpair as the host would drive it over the
// virtio-serial port. The tests that create a container need root (they
// run it with process isolation on this kernel); without root they skip.
#include "agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "agent/ps.h"
#include "agent/requests.h"
#include "common/fs.h"
#include "common/json.h"

using namespace isola;
using namespace isola::agent;

namespace {

// ---------------------------------------------------------------------------
// Payloads

Json minimal_spec() {
  return Json{{"ociVersion", "1.0.2"},
              {"process", {{"args", {"sh"}}, {"cwd", "/"}, {"terminal", true}}},
              {"root", {{"path", "/run/isola/rootfs"}}},
              {"linux", {{"cgroupsPath", "isola/abc123"}}}};
}

TEST(AgentRequests, CreateReadsSpecSharesAndTerminal) {
  Json j = {{"spec", minimal_spec()},
            {"shares",
             {{{"tag", "rootfs"}, {"path", "/run/isola/rootfs"}}, {{"tag", "v0"}, {"path", "/run/isola/v0"}}}},
            {"interactive", true},
            {"rows", 40},
            {"cols", 120},
            {"realtime_ns", 1700000000000000000}};
  auto req = parse_create_request(j.dump());
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_EQ(req->id, "abc123");  // from cgroupsPath when "id" is absent
  ASSERT_EQ(req->shares.size(), 2u);
  EXPECT_EQ(req->shares[1].tag, "v0");
  EXPECT_EQ(req->shares[1].path, "/run/isola/v0");
  EXPECT_TRUE(req->tty);  // absent "tty" follows process.terminal
  EXPECT_TRUE(req->interactive);
  EXPECT_EQ(req->size.rows, 40);
  EXPECT_EQ(req->size.cols, 120);
  ASSERT_TRUE(req->realtime_ns);
  EXPECT_EQ(*req->realtime_ns, 1700000000000000000);

  j["tty"] = false;
  j.erase("rows");
  req = parse_create_request(j.dump());
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_FALSE(req->tty);
  EXPECT_FALSE(req->spec.process.terminal);  // the payload decides
  EXPECT_EQ(req->size.rows, 24);
}

TEST(AgentRequests, CreateRefusesBadPayloads) {
  EXPECT_FALSE(parse_create_request("not json"));
  EXPECT_FALSE(parse_create_request("[]"));
  EXPECT_FALSE(parse_create_request(R"({"shares":[]})"));  // no spec
  Json no_process = minimal_spec();
  no_process.erase("process");
  EXPECT_FALSE(parse_create_request(Json{{"spec", no_process}}.dump()));
  for (Json shares : {Json{{{"tag", "x"}, {"path", "/proc"}}},                // outside /run/isola
                      Json{{{"tag", "x"}, {"path", "/run/isola/../../etc"}}},  // leaves it
                      Json{{{"tag", "x"}, {"path", "/run/isola/"}}},
                      Json{{{"tag", "a,b"}, {"path", "/run/isola/a"}}},        // would split mount options
                      Json{{{"tag", ""}, {"path", "/run/isola/a"}}},
                      Json{{{"tag", "a"}, {"path", "/run/isola/a"}}, {{"tag", "a"}, {"path", "/run/isola/b"}}},
                      Json{{{"tag", 7}, {"path", "/run/isola/a"}}}, Json("x")}) {
    auto req = parse_create_request(Json{{"spec", minimal_spec()}, {"shares", shares}}.dump());
    EXPECT_FALSE(req) << shares.dump();
  }
  EXPECT_FALSE(parse_create_request(Json{{"spec", minimal_spec()}, {"rows", -1}}.dump()));
  EXPECT_FALSE(parse_create_request(Json{{"spec", minimal_spec()}, {"tty", "yes"}}.dump()));
  EXPECT_FALSE(parse_create_request(Json{{"spec", minimal_spec()}, {"realtime_ns", "now"}}.dump()));
}

TEST(AgentRequests, CreateWithANetworkSharesTheGuestsNamespace) {
  Json spec = minimal_spec();
  spec["linux"]["namespaces"] = {{{"type", "pid"}}, {{"type", "network"}}, {{"type", "mount"}}};
  Json net = {{"mac", "02:AB:cd:00:00:01"}, {"address", "10.88.0.5/16"}, {"gateway", "10.88.0.1"}};
  auto req = parse_create_request(Json{{"spec", spec}, {"network", net}}.dump());
  ASSERT_TRUE(req) << req.error().message();
  ASSERT_TRUE(req->network);
  EXPECT_EQ(req->network->mac, (MacAddress{0x02, 0xab, 0xcd, 0, 0, 1}));
  EXPECT_EQ(req->network->address.address, (Ipv4Bytes{10, 88, 0, 5}));
  EXPECT_EQ(req->network->address.length, 16u);
  EXPECT_EQ(req->network->gateway, (Ipv4Bytes{10, 88, 0, 1}));
  // eth0 is the guest's: the container must not get a namespace without it.
  ASSERT_EQ(req->spec.linux.namespaces.size(), 2u);
  for (const NamespaceSpec& ns : req->spec.linux.namespaces) EXPECT_NE(ns.type, "network");

  // Without a network (or with null) the spec keeps its namespace.
  req = parse_create_request(Json{{"spec", spec}, {"network", nullptr}}.dump());
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_FALSE(req->network);
  EXPECT_EQ(req->spec.linux.namespaces.size(), 3u);
}

TEST(AgentRequests, CreateRefusesBadNetworks) {
  Json good = {{"mac", "02:00:00:00:00:01"}, {"address", "10.88.0.5/16"}, {"gateway", "10.88.0.1"}};
  auto with = [&](const char* key, Json value) {
    Json net = good;
    if (value.is_null()) net.erase(key);
    else net[key] = value;
    return parse_create_request(Json{{"spec", minimal_spec()}, {"network", net}}.dump());
  };
  ASSERT_TRUE(with("mac", good["mac"]));
  for (Json net : {Json("10.88.0.5/16"), Json::array(), Json(7)})
    EXPECT_FALSE(parse_create_request(Json{{"spec", minimal_spec()}, {"network", net}}.dump())) << net.dump();
  for (const char* key : {"mac", "address", "gateway"}) {
    EXPECT_FALSE(with(key, nullptr)) << "without " << key;
    EXPECT_FALSE(with(key, 5)) << key << " as a number";
  }
  for (const char* mac : {"", "02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01", "0g:00:00:00:00:01",
                          "01:00:5e:00:00:01" /* multicast */, "00:00:00:00:00:00",
                          "02:00:00:00:00:01,id=x" /* would extend QEMU's -device */})
    EXPECT_FALSE(with("mac", mac)) << mac;
  for (const char* address : {"10.88.0.5", "10.88.0.5/", "10.88.0.5/33", "10.88.0.5/0", "10.88.0.5/31",
                              "10.88.0.0/16" /* network */, "10.88.255.255/16" /* broadcast */, "127.0.0.2/8",
                              "224.0.0.5/8", "10.88.0.5/16/1", "10.88.0.5/ 16", "010.88.0.5/16", "10.88.0/16",
                              "::1/64", "10.88.0.5/16x"})
    EXPECT_FALSE(with("address", address)) << address;
  for (const char* gateway : {"10.89.0.1" /* outside the subnet */, "10.88.0.5" /* its own */,
                              "10.88.255.255", "10.88.0.1/16", "gateway", ""})
    EXPECT_FALSE(with("gateway", gateway)) << gateway;
}

TEST(AgentRequests, ExecReadsTheProcess) {
  auto req = parse_exec_request(
      R"({"process":{"args":["ps","-ef"],"env":["A=1"],"cwd":"/tmp","terminal":true,"user":{"uid":1000,"gid":100}},)"
      R"("rows":10,"cols":20,"interactive":true})");
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_EQ(req->process.args, (std::vector<std::string>{"ps", "-ef"}));
  EXPECT_EQ(req->process.cwd, "/tmp");
  EXPECT_EQ(req->process.uid, 1000u);
  EXPECT_EQ(req->process.gid, 100u);
  EXPECT_TRUE(req->process.terminal);
  EXPECT_TRUE(req->interactive);
  EXPECT_EQ(req->size.cols, 20);
  EXPECT_FALSE(parse_exec_request(R"({"process":{"args":[]}})"));
  EXPECT_FALSE(parse_exec_request(R"({"process":"ls"})"));
  EXPECT_FALSE(parse_exec_request(R"({})"));
  auto plain = parse_exec_request(R"({"process":{"args":["true"]}})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->interactive);  // no stdin unless asked
}

TEST(AgentRequests, APodMemberJoinsOnlyThePodsNamespaces) {
  RuntimeSpec spec;
  spec.linux.namespaces = {{"network", "pod"}, {"ipc", "pod"}, {"uts", "pod"}, {"pid", ""}, {"mount", ""}};
  ASSERT_TRUE(join_pod_namespaces(spec, 42));
  EXPECT_EQ(spec.linux.namespaces[0].path, "/proc/42/ns/net");
  EXPECT_EQ(spec.linux.namespaces[1].path, "/proc/42/ns/ipc");
  EXPECT_EQ(spec.linux.namespaces[2].path, "/proc/42/ns/uts");
  EXPECT_EQ(spec.linux.namespaces[3].path, "");
  for (NamespaceSpec bad : {NamespaceSpec{"network", "/var/run/netns/x"}, NamespaceSpec{"mount", "pod"}}) {
    RuntimeSpec s;
    s.linux.namespaces = {bad};
    auto r = join_pod_namespaces(s, 42);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("pod's network, IPC, UTS and PID"), std::string::npos) << r.error().message();
  }
}

TEST(AgentRequests, ExecNamesItsContainerByStream) {
  auto req = parse_exec_request(R"({"process":{"args":["true"],"cwd":"/"},"container":5})");
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_EQ(req->container, 5u);
  EXPECT_EQ(parse_exec_request(R"({"process":{"args":["true"],"cwd":"/"}})")->container, 0u);
  EXPECT_FALSE(parse_exec_request(R"({"process":{"args":["true"],"cwd":"/"},"container":-1})"));
  EXPECT_FALSE(parse_exec_request(R"({"process":{"args":["true"],"cwd":"/"},"container":"2"})"));
}

TEST(AgentRequests, ResizeAndSignal) {
  auto size = parse_resize(R"({"rows":50,"cols":150})");
  ASSERT_TRUE(size);
  EXPECT_EQ(size->rows, 50);
  EXPECT_EQ(size->cols, 150);
  EXPECT_FALSE(parse_resize(R"({"rows":0,"cols":10})"));
  EXPECT_FALSE(parse_resize(R"({"rows":70000,"cols":10})"));
  EXPECT_FALSE(parse_resize(R"({"rows":10})"));
  EXPECT_EQ(parse_signal(R"({"signal":15})").value_or(0), 15);
  EXPECT_FALSE(parse_signal(R"({"signal":0})"));
  EXPECT_FALSE(parse_signal(R"({"signal":65})"));
  EXPECT_FALSE(parse_signal(R"({"signal":"TERM"})"));
}

TEST(AgentRequests, FramesTheHostMaySend) {
  auto ok = [](AgentMsg t, uint32_t stream) { return bool(check_host_frame(AgentFrame{t, stream, {}})); };
  EXPECT_TRUE(ok(AgentMsg::create, 1));
  EXPECT_FALSE(ok(AgentMsg::create, 0));
  EXPECT_TRUE(ok(AgentMsg::create, 2));  // a pod's further container
  EXPECT_TRUE(ok(AgentMsg::exec, 2));
  EXPECT_FALSE(ok(AgentMsg::exec, 1));
  EXPECT_FALSE(ok(AgentMsg::exec, 0));
  EXPECT_TRUE(ok(AgentMsg::stdin_data, 1));
  EXPECT_FALSE(ok(AgentMsg::signal, 0));
  EXPECT_TRUE(ok(AgentMsg::ps, 0));
  EXPECT_FALSE(ok(AgentMsg::ps, 3));
  EXPECT_TRUE(ok(AgentMsg::shutdown, 0));
  for (AgentMsg t : {AgentMsg::hello, AgentMsg::started, AgentMsg::stdout_data, AgentMsg::exit, AgentMsg::ps_reply})
    EXPECT_FALSE(ok(t, 1)) << frame_type_name(t);
}

TEST(AgentRequests, WakeReadsEntropyClockAndBootId) {
  const std::string entropy(64, 'a');
  Json ok = {{"entropy", entropy + "0f"}, {"realtime_ns", 1700000000000000000}, {"boot_id", "0123abcd-4567-89ab-cdef-0123456789ab"}};
  auto req = parse_wake_request(ok.dump());
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_EQ(req->entropy.size(), 33u);
  EXPECT_EQ(req->entropy.back(), '\x0f');
  EXPECT_EQ(req->realtime_ns, 1700000000000000000);
  EXPECT_EQ(req->boot_id, "0123abcd-4567-89ab-cdef-0123456789ab");
  auto with = [&](const char* key, Json value) {
    Json j = ok;
    j[key] = std::move(value);
    return bool(parse_wake_request(j.dump()));
  };
  EXPECT_FALSE(with("entropy", "abcd"));                 // too little
  EXPECT_FALSE(with("entropy", entropy + "0"));          // half a byte
  EXPECT_FALSE(with("entropy", std::string(64, 'A')));   // not lowercase hex
  EXPECT_FALSE(with("entropy", std::string(1026, 'a'))); // too much
  EXPECT_FALSE(with("realtime_ns", 0));
  EXPECT_FALSE(with("realtime_ns", "now"));
  EXPECT_FALSE(with("boot_id", "0123abcd-4567-89ab-cdef-0123456789a"));
  EXPECT_FALSE(with("boot_id", "0123abcd-4567-89ab-cdef/0123456789ab"));
  EXPECT_FALSE(parse_wake_request("[]"));
  EXPECT_TRUE(check_host_frame(AgentFrame{AgentMsg::wake, 0, {}}));
  EXPECT_FALSE(check_host_frame(AgentFrame{AgentMsg::wake, 1, {}}));
}

TEST(AgentRequests, UpdateTakesLimitsOnly) {
  auto req = parse_update_request(
      R"({"resources":{"memory":{"limit":50331648,"swap":50331648},"cpu":{"quota":50000,"period":100000},"pids":{"limit":10}}})");
  ASSERT_TRUE(req) << req.error().message();
  EXPECT_EQ(req->memory_limit.value_or(0), 50331648);
  EXPECT_EQ(req->cpu_quota.value_or(0), 50000);
  EXPECT_EQ(req->pids_limit.value_or(0), 10);
  EXPECT_FALSE(parse_update_request(R"({"resources":{"cpu":{"cpus":"0"}}})"));  // the guest's CPUs are the VM's
  EXPECT_FALSE(parse_update_request(R"({"resources":{"devices":[{"allow":true,"access":"rwm"}]}})"));
  EXPECT_FALSE(parse_update_request(R"({"resources":{"memory":{"limit":"lots"}}})"));
  EXPECT_FALSE(parse_update_request(R"({})"));
  EXPECT_TRUE(check_host_frame(AgentFrame{AgentMsg::update, 0, {}}));
  EXPECT_FALSE(check_host_frame(AgentFrame{AgentMsg::update, 1, {}}));
  EXPECT_FALSE(check_host_frame(AgentFrame{AgentMsg::update_reply, 0, {}}));  // only the agent sends it
  EXPECT_EQ(update_reply_payload({}), R"({"ok":true})");
  Json refused = Json::parse(update_reply_payload(fail(sys_error(EINVAL, "write", "/sys/fs/cgroup/isola/x/cpu.max"))));
  EXPECT_EQ(refused["ok"], false);
  EXPECT_EQ(refused["errno"], EINVAL);
  EXPECT_NE(refused["message"].get<std::string>().find("cpu.max"), std::string::npos);
}

TEST(AgentRequests, CreateTakesAFilterTheHostCompiled) {
  Json spec = minimal_spec();
  spec["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"}};
  std::string one_insn(16, '0');  // one sock_filter: 8 bytes
  auto req = parse_create_request(Json{{"spec", spec}, {"seccomp_bpf", one_insn + one_insn}}.dump());
  ASSERT_TRUE(req) << req.error().message();
  ASSERT_TRUE(req->seccomp_program);
  EXPECT_EQ(req->seccomp_program->insns.size(), 2u);
  EXPECT_FALSE(parse_create_request(Json{{"spec", spec}, {"seccomp_bpf", "00ff00"}}.dump()));  // not whole insns
  EXPECT_FALSE(parse_create_request(Json{{"spec", spec}, {"seccomp_bpf", "xyz"}}.dump()));
  EXPECT_FALSE(parse_create_request(Json{{"spec", spec}, {"seccomp_bpf", ""}}.dump()));
  // A program for a spec without a filter is a host's mistake.
  EXPECT_FALSE(parse_create_request(Json{{"spec", minimal_spec()}, {"seccomp_bpf", one_insn}}.dump()));
}

TEST(AgentRequests, Payloads) {
  Error e = sys_error(ENOENT, "exec", "nosuch");
  e.exit_code = 127;
  Json j = Json::parse(error_payload(e));
  EXPECT_EQ(j["errno"], ENOENT);
  EXPECT_EQ(j["op"], "exec");
  EXPECT_EQ(j["exit_code"], 127);
  EXPECT_NE(j["message"].get<std::string>().find("nosuch"), std::string::npos);
  // Invalid UTF-8 in a message must not make the payload unwritable.
  EXPECT_NO_THROW(Json::parse(error_payload(make_error("open", "\xff\xfe"))));
  EXPECT_EQ(Json::parse(exit_payload(137, true)), (Json{{"exit_code", 137}, {"oom_killed", true}}));
  Json hello = Json::parse(hello_payload("6.1.0-56-amd64", 10, 20));
  EXPECT_EQ(hello["version"], 1);
  EXPECT_EQ(hello["kernel"], "6.1.0-56-amd64");
  EXPECT_EQ(exit_code_from_status(3 << 8), 3);
  EXPECT_EQ(exit_code_from_status(SIGKILL), 137);
}

// ---------------------------------------------------------------------------
// ps

TEST(AgentPs, ParsesStatWithAwkwardNames) {
  auto st = parse_proc_stat(
      "42 (a) b (c)) S 7 42 42 34816 42 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1234 1000 100 18446744073709551615\n");
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->pid, 42);
  EXPECT_EQ(st->comm, "a) b (c)");
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 7);
  EXPECT_EQ(st->tty_nr, 34816);
  EXPECT_EQ(st->utime, 250u);
  EXPECT_EQ(st->stime, 50u);
  EXPECT_EQ(st->starttime, 1234u);
  EXPECT_FALSE(parse_proc_stat("garbage"));
  EXPECT_FALSE(parse_proc_stat("1 (x) S 0"));
}

TEST(AgentPs, Formats) {
  EXPECT_EQ(format_cpu_time(0), "00:00:00");
  EXPECT_EQ(format_cpu_time(3661), "01:01:01");
  EXPECT_EQ(format_cpu_time(90061), "1-01:01:01");
  EXPECT_EQ(format_start_time(0), "00:00");
  EXPECT_EQ(format_start_time(13 * 3600 + 7 * 60 + 59), "13:07");
  EXPECT_EQ(tty_name(0), "?");
  EXPECT_EQ(tty_name((136 << 8) | 3), "pts/3");
  EXPECT_EQ(tty_name((137 << 8) | 1), "pts/257");
  EXPECT_EQ(tty_name((4 << 8) | 64), "ttyS0");
  EXPECT_EQ(tty_name((5 << 8) | 1), "console");
  const char* passwd = "root:x:0:0:root:/root:/bin/sh\n#x\nbroken\nnobody:x:65534:65534::/:/bin/false";
  EXPECT_EQ(user_name(0, passwd), "root");
  EXPECT_EQ(user_name(65534, passwd), "nobody");
  EXPECT_EQ(user_name(1000, passwd), "1000");
  EXPECT_EQ(user_name(0, ""), "0");
  EXPECT_EQ(format_command(std::string("sleep\0" "100\0", 10), "sleep"), "sleep 100");
  EXPECT_EQ(format_command("", "kworker"), "[kworker]");
}

class TempDir {
 public:
  TempDir() {
    auto dir = make_temp_dir("/tmp", "isola-agent-test-");
    if (dir) path_ = *dir;
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    if (!path_.empty()) (void)remove_tree(path_);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_join(path_, rel); }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
  ASSERT_TRUE(mkdir_p(path.substr(0, path.rfind('/'))));
  auto w = write_file_atomic(path, text, mode);
  ASSERT_TRUE(w) << w.error().message();
}

TEST(AgentPs, RowsFromAProcTree) {
  TempDir proc;
  long hz = ::sysconf(_SC_CLK_TCK);
  write_text(proc / "uptime", "1000.00 900.00\n");
  write_text(proc / "stat", "cpu 1 2 3\nbtime 1700000000\nprocesses 5\n");
  // The agent (excluded), a kernel thread, and a container process that
  // started 400 s after boot and used 200 s of CPU since.
  write_text(proc / "1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n");
  write_text(proc / "1/status", "Name:\tinit\nUid:\t0\t0\t0\t0\n");
  write_text(proc / "2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n");
  write_text(proc / "2/status", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n");
  write_text(proc / "77/stat", "77 (sleep) S 1 77 77 34816 77 4194560 0 0 0 0 " + std::to_string(150 * hz) + " " +
                                   std::to_string(50 * hz) + " 0 0 20 0 1 0 " + std::to_string(400 * hz) + " 0 0\n");
  write_text(proc / "77/status", "Name:\tsleep\nUmask:\t0022\nUid:\t1000\t65534\t65534\t65534\n");
  write_text(proc / "77/cmdline", std::string("sleep\0infinity\0", 15));
  write_text(proc / "self/stat", "not a process");
  PsOptions opts;
  opts.proc = proc.path();
  opts.exclude = 1;
  opts.passwd = "nobody:x:65534:65534::/:/bin/false\n";
  auto table = list_processes(opts);
  ASSERT_TRUE(table) << table.error().message();
  EXPECT_EQ(table->titles, (std::vector<std::string>{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}));
  ASSERT_EQ(table->rows.size(), 1u);
  // 1700000000 + 400 s is 22:20:00 UTC; 200 s of CPU in 600 s is 33%.
  EXPECT_EQ(table->rows[0], (std::vector<std::string>{"nobody", "77", "1", "33", "22:20", "pts/0", "00:03:20",
                                                      "sleep infinity"}));
  Json reply = Json::parse(ps_reply_payload(*table));
  EXPECT_EQ(reply["processes"][0][7], "sleep infinity");
}

TEST(AgentPs, ListsTheRealProcessTable) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::usleep(100 * 1000);
  PsOptions opts;
  opts.exclude = ::getpid();
  auto table = list_processes(opts);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(table) << table.error().message();
  bool found_child = false, found_self = false;
  for (const auto& row : table->rows) {
    ASSERT_EQ(row.size(), 8u);
    found_child = found_child || (row[1] == std::to_string(child) && row[7] == "sleep 30");
    found_self = found_self || row[1] == std::to_string(::getpid());
    EXPECT_NE(row[7], "[kthreadd]");
  }
  EXPECT_TRUE(found_child);
  EXPECT_FALSE(found_self);
}

// ---------------------------------------------------------------------------
// The loop, with the test as the host.

class Host {
 public:
  explicit Host(AgentOptions opts = {}) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    host_.reset(sv[0]);
    opts.pid1 = false;
    opts.ack_wait = std::chrono::milliseconds(200);
    if (!opts.mount_share) opts.mount_share = [](const Share&) -> Result<void> { return {}; };
    auto a = Agent::create(UniqueFd(sv[1]), std::move(opts));
    if (a) agent_ = std::move(*a);
  }
  bool ok() const { return agent_ != nullptr && host_.valid(); }
  Agent& agent() { return *agent_; }

  void send(AgentMsg type, uint32_t stream, std::string_view payload = {}) {
    std::string f = encode_agent_frame(type, stream, payload);
    ASSERT_EQ(::write(host_.get(), f.data(), f.size()), static_cast<ssize_t>(f.size()));
  }
  void send_raw(std::string_view bytes) {
    ASSERT_EQ(::write(host_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  // Steps the agent until a frame arrives; nullopt after `timeout`.
  std::optional<AgentFrame> next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      AgentFrame f;
      auto got = reader_.next(f);
      if (got && *got) return f;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return std::nullopt;
      agent_->step(static_cast<int>(std::min<int64_t>(left.count(), 20)));
      char buf[65536];
      ssize_t n = ::recv(host_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) reader_.feed(buf, static_cast<size_t>(n));
      else if (agent_->done()) return std::nullopt;  // and nothing more will come
    }
  }
  // The next frame of `type` on `stream`; stdout and stderr on the way are kept.
  std::optional<AgentFrame> expect(AgentMsg type, uint32_t stream) {
    while (auto f = next()) {
      if (f->type == type && f->stream == stream) return f;
      if (f->type == AgentMsg::stdout_data) out[f->stream] += f->payload;
      else if (f->type == AgentMsg::stderr_data) err[f->stream] += f->payload;
      else ADD_FAILURE() << "unexpected " << frame_type_name(f->type) << " on stream " << f->stream << ": "
                         << f->payload;
    }
    return std::nullopt;
  }

  std::map<uint32_t, std::string> out, err;

 private:
  UniqueFd host_;
  std::unique_ptr<Agent> agent_;
  AgentFrameReader reader_;
};

Json error_of(const std::optional<AgentFrame>& f) {
  return f ? Json::parse(f->payload) : Json();
}

TEST(AgentLoop, AnswersControlRequestsAndRefusesWhatItCannotServe) {
  Host host;
  ASSERT_TRUE(host.ok());
  host.send(AgentMsg::ps, 0, "{}");
  auto reply = host.expect(AgentMsg::ps_reply, 0);
  ASSERT_TRUE(reply);
  EXPECT_EQ(Json::parse(reply->payload)["titles"].size(), 8u);

  host.send(AgentMsg::exec, 2, R"({"process":{"args":["true"]}})");
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 2))["errno"], ESRCH);  // no container yet
  host.send(AgentMsg::stdin_data, 5, "x");
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 5))["errno"], ENOENT);
  host.send(AgentMsg::signal, 3, R"({"signal":9})");
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 3))["errno"], ENOENT);
  host.send(AgentMsg::stdout_data, 1, "only the agent sends this");
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 1))["errno"], EINVAL);
  host.send(AgentMsg::create, 1, "{not json");
  EXPECT_TRUE(host.expect(AgentMsg::error, 1));
  host.send(AgentMsg::create, 1, Json{{"spec", minimal_spec()}, {"shares", {{{"tag", "x"}, {"path", "/etc"}}}}}.dump());
  EXPECT_TRUE(host.expect(AgentMsg::error, 1));

  host.send(AgentMsg::shutdown, 0);
  for (int i = 0; i < 100 && host.agent().step(20);) ++i;
  EXPECT_TRUE(host.agent().done());
}

TEST(AgentLoop, ANetworkThatCannotBeConfiguredFailsTheCreate) {
  std::vector<NicConfig> asked;
  AgentOptions opts;
  opts.configure_network = [&](const NicConfig& nic) -> Result<void> {
    asked.push_back(nic);
    return fail(make_error("find the NIC", format_mac(nic.mac), "no interface has this MAC"));
  };
  Host host(std::move(opts));
  ASSERT_TRUE(host.ok());
  Json net = {{"mac", "02:00:00:00:00:07"}, {"address", "10.88.0.5/16"}, {"gateway", "10.88.0.1"}};
  host.send(AgentMsg::create, 1, Json{{"spec", minimal_spec()}, {"network", net}}.dump());
  auto f = host.expect(AgentMsg::error, 1);
  ASSERT_TRUE(f);
  EXPECT_NE(error_of(f)["message"].get<std::string>().find("02:00:00:00:00:07"), std::string::npos) << f->payload;
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].gateway, (Ipv4Bytes{10, 88, 0, 1}));
  // Nothing was started: an exec has no container to join.
  host.send(AgentMsg::exec, 2, Json{{"process", {{"args", {"true"}}, {"cwd", "/"}}}}.dump());
  f = host.expect(AgentMsg::error, 2);
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(f)["errno"], ESRCH);
}

TEST(AgentLoop, AMalformedFrameStopsTheReaderButNotTheAgent) {
  Host host;
  ASSERT_TRUE(host.ok());
  std::string bad = encode_agent_frame(AgentMsg::ps, 0, "");
  bad[0] = 99;
  host.send_raw(bad);
  auto e = host.expect(AgentMsg::error, 0);
  ASSERT_TRUE(e);
  EXPECT_NE(error_of(e)["message"].get<std::string>().find("unknown frame type 99"), std::string::npos);
  host.send(AgentMsg::ps, 0);  // no longer read
  EXPECT_FALSE(host.next(std::chrono::milliseconds(300)));
  EXPECT_FALSE(host.agent().done());
}

TEST(AgentLoop, AnOversizedFrameIsRefused) {
  Host host;
  ASSERT_TRUE(host.ok());
  std::string header = encode_agent_frame(AgentMsg::stdin_data, 1, "");
  uint32_t huge = kMaxAgentPayload + 1;
  for (int i = 0; i < 4; ++i) header[5 + i] = static_cast<char>((huge >> (8 * i)) & 0xff);
  host.send_raw(header);
  EXPECT_TRUE(host.expect(AgentMsg::error, 0));
}

TEST(AgentLoop, SurvivesGarbagePayloads) {
  Host host;
  ASSERT_TRUE(host.ok());
  // Every frame type the host may send, on streams with and without a
  // process, with payloads from plausible to random: each gets at most an
  // error back, and the agent stays up to answer a ps.
  const AgentMsg types[] = {AgentMsg::create, AgentMsg::exec, AgentMsg::stdin_data, AgentMsg::stdin_eof,
                            AgentMsg::resize, AgentMsg::signal, AgentMsg::ps, AgentMsg::error};
  const std::string payloads[] = {"", "{}", "null", "[]", "{\"spec\":1}", "{\"spec\":{}}", "{\"process\":{}}",
                                  "{\"signal\":-1}", "{\"rows\":1e9,\"cols\":-3}", "{\"process\":{\"args\":[1]}}",
                                  std::string("\0\xff{\"", 4), std::string(70000, '{')};
  uint32_t seed = 12345;
  auto rnd = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  for (int i = 0; i < 300; ++i) {
    AgentMsg t = types[rnd() % std::size(types)];
    uint32_t stream = rnd() % 4;
    std::string payload = payloads[rnd() % std::size(payloads)];
    if (rnd() % 4 == 0)
      for (char& c : payload) c = static_cast<char>(rnd());
    host.send(t, stream, payload);
    while (host.next(std::chrono::milliseconds(3))) {
    }
  }
  host.send(AgentMsg::ps, 0);
  while (auto f = host.next()) {
    if (f->type == AgentMsg::ps_reply) return;
  }
  ADD_FAILURE() << "no ps_reply after the garbage";
}

// --- With a container (root only)

void make_rootfs(const std::string& root) {
  for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "root"}) ASSERT_TRUE(mkdir_p(path_join(root, d)));
  auto busybox = read_file("/bin/busybox");
  ASSERT_TRUE(busybox) << busybox.error().message();
  write_text(path_join(root, "bin/busybox"), *busybox, 0755);
  for (const char* applet : {"sh", "cat", "echo", "sleep", "tty", "stty", "true"})
    ASSERT_EQ(::symlink("busybox", path_join(root, std::string("bin/") + applet).c_str()), 0);
  write_text(path_join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
}

Json container_spec(const std::string& rootfs, std::vector<std::string> args) {
  return Json{{"ociVersion", "1.0.2"},
              {"process", {{"args", args}, {"env", {"PATH=/bin"}}, {"cwd", "/"}}},
              {"root", {{"path", rootfs}}},
              {"hostname", "agent-test"},
              {"mounts",
               {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
                {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"mode=755"}}},
                {{"destination", "/dev/pts"},
                 {"type", "devpts"},
                 {"source", "devpts"},
                 {"options", {"newinstance", "ptmxmode=0666", "mode=0620"}}}}},
              {"linux",
               {{"namespaces",
                 {{{"type", "pid"}},
                  {{"type", "mount"}},
                  {{"type", "uts"}},
                  {{"type", "ipc"}},
                  {{"type", "network"}}}}}}};
}

class AgentContainer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    make_rootfs(dir_.path());
  }
  TempDir dir_;
};

TEST_F(AgentContainer, RunsExecsSignalsAndReportsExit) {
  Host host;
  ASSERT_TRUE(host.ok());
  host.send(AgentMsg::create, 1,
            Json{{"spec", container_spec(dir_.path(), {"sh", "-c", "echo hi; echo oops >&2; exec sleep 100"})},
                 {"shares", Json::array()}}
                .dump());
  auto started = host.expect(AgentMsg::started, 1);
  ASSERT_TRUE(started);
  EXPECT_GT(Json::parse(started->payload)["pid"].get<int>(), 0);
  host.send(AgentMsg::create, 1, Json{{"spec", container_spec(dir_.path(), {"true"})}}.dump());
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 1))["errno"], EEXIST);

  // exec with stdin: what goes in comes out, then the exit code.
  host.send(AgentMsg::exec, 2, R"({"process":{"args":["sh","-c","cat; exit 7"],"cwd":"/"},"interactive":true})");
  ASSERT_TRUE(host.expect(AgentMsg::started, 2));
  host.send(AgentMsg::stdin_data, 2, "to the container\n");
  host.send(AgentMsg::stdin_eof, 2);
  auto exited = host.expect(AgentMsg::exit, 2);
  ASSERT_TRUE(exited);
  EXPECT_EQ(Json::parse(exited->payload)["exit_code"], 7);
  EXPECT_EQ(host.out[2], "to the container\n");

  // exec with a terminal: made inside the container, of the size asked for
  // (set once the process runs: a query at its very first instruction could
  // still see 0x0, as with runc).
  host.send(AgentMsg::exec, 3,
            R"({"process":{"args":["sh","-c","tty; sleep 0.3; stty size"],"cwd":"/","terminal":true},)"
            R"("rows":33,"cols":99})");
  ASSERT_TRUE(host.expect(AgentMsg::started, 3));
  ASSERT_TRUE(host.expect(AgentMsg::exit, 3));
  EXPECT_NE(host.out[3].find("/dev/pts/"), std::string::npos) << host.out[3];
  EXPECT_NE(host.out[3].find("33 99"), std::string::npos) << host.out[3];

  host.send(AgentMsg::exec, 4, R"({"process":{"args":["nosuch"],"env":["PATH=/bin"],"cwd":"/"}})");
  Json e = error_of(host.expect(AgentMsg::error, 4));
  EXPECT_EQ(e["op"], "exec");
  EXPECT_EQ(e["exit_code"], 127);

  host.send(AgentMsg::ps, 0);
  auto ps = host.expect(AgentMsg::ps_reply, 0);
  ASSERT_TRUE(ps);
  EXPECT_NE(ps->payload.find("sleep 100"), std::string::npos);

  host.send(AgentMsg::signal, 1, R"({"signal":9})");
  auto init_exit = host.expect(AgentMsg::exit, 1);
  ASSERT_TRUE(init_exit);
  EXPECT_EQ(Json::parse(init_exit->payload), (Json{{"exit_code", 137}, {"oom_killed", false}}));
  EXPECT_EQ(host.out[1], "hi\n");
  EXPECT_EQ(host.err[1], "oops\n");
  // Without an acknowledgement the agent ends after ack_wait.
  for (int i = 0; i < 100 && host.agent().step(20);) ++i;
  EXPECT_TRUE(host.agent().done());
  EXPECT_EQ(host.agent().init_exit_code(), 137);
}

// A pod's further container runs beside the first, in the first's UTS,
// IPC and network namespaces; its exit ends neither the first nor the
// agent.
TEST_F(AgentContainer, APodMemberSharesThePodsNamespacesAndEndsAlone) {
  Host host;
  ASSERT_TRUE(host.ok());
  host.send(AgentMsg::create, 1, Json{{"spec", container_spec(dir_.path(), {"sleep", "100"})}}.dump());
  ASSERT_TRUE(host.expect(AgentMsg::started, 1));
  Json member = container_spec(dir_.path(), {"sh", "-c", "cat /proc/sys/kernel/hostname; read line; exit 3"});
  member.erase("hostname");
  for (Json& ns : member["linux"]["namespaces"])
    if (ns["type"] != "pid" && ns["type"] != "mount") ns["path"] = "pod";
  host.send(AgentMsg::create, 2, Json{{"spec", member}, {"interactive", true}}.dump());
  ASSERT_TRUE(host.expect(AgentMsg::started, 2));
  host.send(AgentMsg::create, 2, Json{{"spec", member}}.dump());
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 2))["errno"], EEXIST);

  // An exec names the member by its init's stream, and shares its view.
  host.send(AgentMsg::exec, 3, R"({"process":{"args":["sh","-c","cat /proc/1/cmdline"],"cwd":"/"},"container":2})");
  ASSERT_TRUE(host.expect(AgentMsg::started, 3));
  ASSERT_TRUE(host.expect(AgentMsg::exit, 3));
  const std::string init_cmdline =
      std::string("sh") + '\0' + "-c" + '\0' + "cat /proc/sys/kernel/hostname; read line; exit 3" + '\0';
  EXPECT_EQ(host.out[3], init_cmdline);
  host.send(AgentMsg::exec, 4, R"({"process":{"args":["true"],"cwd":"/"},"container":9})");
  EXPECT_EQ(error_of(host.expect(AgentMsg::error, 4))["errno"], ESRCH);

  host.send(AgentMsg::stdin_data, 2, "go\n");
  auto exited = host.expect(AgentMsg::exit, 2);
  ASSERT_TRUE(exited);
  EXPECT_EQ(Json::parse(exited->payload)["exit_code"], 3);
  EXPECT_EQ(host.out[2], "agent-test\n");
  host.send(AgentMsg::ps, 0);
  auto ps = host.expect(AgentMsg::ps_reply, 0);
  ASSERT_TRUE(ps);
  EXPECT_NE(ps->payload.find("sleep 100"), std::string::npos);
  EXPECT_FALSE(host.agent().done());
  host.send(AgentMsg::signal, 1, R"({"signal":9})");
  ASSERT_TRUE(host.expect(AgentMsg::exit, 1));
}

TEST_F(AgentContainer, AWokenCloneGivesTheContainerItsOwnBootId) {
  TempDir state;
  AgentOptions opts;
  opts.state_dir = state.path();
  Host host(std::move(opts));
  ASSERT_TRUE(host.ok());
  const std::string boot_id = "0123abcd-4567-49ab-8def-0123456789ab";
  host.send(AgentMsg::wake, 0,
            Json{{"entropy", std::string(64, '7')}, {"realtime_ns", 1700000000000000000}, {"boot_id", boot_id}}.dump());
  auto hello = host.expect(AgentMsg::hello, 0);
  ASSERT_TRUE(hello);
  EXPECT_EQ(Json::parse(hello->payload)["version"], 1);
  host.send(AgentMsg::create, 1,
            Json{{"spec", container_spec(dir_.path(), {"cat", "/proc/sys/kernel/random/boot_id"})}}.dump());
  ASSERT_TRUE(host.expect(AgentMsg::started, 1));
  auto exited = host.expect(AgentMsg::exit, 1);
  ASSERT_TRUE(exited);
  EXPECT_EQ(Json::parse(exited->payload)["exit_code"], 0);
  EXPECT_EQ(host.out[1], boot_id + "\n");
  auto host_boot_id = read_file("/proc/sys/kernel/random/boot_id");
  ASSERT_TRUE(host_boot_id);
  EXPECT_NE(*host_boot_id, boot_id + "\n");
}

TEST_F(AgentContainer, InteractiveTerminalInitAndResize) {
  Host host;
  ASSERT_TRUE(host.ok());
  host.send(AgentMsg::create, 1,
            Json{{"spec", container_spec(dir_.path(), {"sh"})}, {"tty", true}, {"interactive", true}, {"rows", 30},
                 {"cols", 100}}
                .dump());
  ASSERT_TRUE(host.expect(AgentMsg::started, 1));
  host.send(AgentMsg::resize, 1, R"({"rows":50,"cols":150})");
  host.send(AgentMsg::stdin_data, 1, "stty size; exit 5\n");
  auto exited = host.expect(AgentMsg::exit, 1);
  ASSERT_TRUE(exited);
  EXPECT_EQ(Json::parse(exited->payload)["exit_code"], 5);
  EXPECT_NE(host.out[1].find("50 150"), std::string::npos) << host.out[1];
  host.send(AgentMsg::shutdown, 0);  // the acknowledgement
  for (int i = 0; i < 100 && host.agent().step(20);) ++i;
  EXPECT_TRUE(host.agent().done());
}

TEST_F(AgentContainer, ShutdownKillsTheContainerAndReportsItsExit) {
  Host host;
  ASSERT_TRUE(host.ok());
  host.send(AgentMsg::create, 1, Json{{"spec", container_spec(dir_.path(), {"sleep", "100"})}}.dump());
  ASSERT_TRUE(host.expect(AgentMsg::started, 1));
  host.send(AgentMsg::exec, 2, R"({"process":{"args":["sleep","100"],"cwd":"/"}})");
  ASSERT_TRUE(host.expect(AgentMsg::started, 2));
  host.send(AgentMsg::shutdown, 0);
  std::map<uint32_t, Json> exits;
  while (auto f = host.next(std::chrono::seconds(5))) {
    ASSERT_EQ(f->type, AgentMsg::exit) << f->payload;
    exits[f->stream] = Json::parse(f->payload);
  }
  EXPECT_EQ(exits[1]["exit_code"], 137);
  EXPECT_EQ(exits[2]["exit_code"], 137);
  EXPECT_TRUE(host.agent().done());
}

}  // namespace
