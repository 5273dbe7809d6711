#include <gtest/gtest.h>

#include "vm/agent_protocol.h"
#include "vm/qemu.h"
#include "vm/vm_spec.h"

using namespace isola;

TEST(AgentFrames, RoundTripInPieces) {
  std::string wire = encode_agent_frame(AgentMsg::stdout_data, 7, "hello") +
                     encode_agent_frame(AgentMsg::exit, 1, R"({"exit_code":3})");
  AgentFrameReader r;
  AgentFrame f;
  // One byte at a time: frames come out whole and in order.
  std::vector<AgentFrame> got;
  for (char c : wire) {
    r.feed(&c, 1);
    auto next = r.next(f);
    ASSERT_TRUE(next);
    if (*next) got.push_back(f);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, AgentMsg::stdout_data);
  EXPECT_EQ(got[0].stream, 7u);
  EXPECT_EQ(got[0].payload, "hello");
  EXPECT_EQ(got[1].type, AgentMsg::exit);
  EXPECT_EQ(got[1].payload, R"({"exit_code":3})");
}

TEST(AgentFrames, RefusesUnknownTypesAndStaysFailed) {
  AgentFrameReader r;
  std::string bad = encode_agent_frame(AgentMsg::hello, 0, "{}");
  bad[0] = 99;
  r.feed(bad.data(), bad.size());
  AgentFrame f;
  EXPECT_FALSE(r.next(f));
  std::string good = encode_agent_frame(AgentMsg::hello, 0, "{}");
  r.feed(good.data(), good.size());
  EXPECT_FALSE(r.next(f));  // out of step: never trusted again
}

TEST(AgentFrames, RefusesOversizedFramesBeforeBufferingThem) {
  AgentFrameReader r;
  std::string header = encode_agent_frame(AgentMsg::stdout_data, 1, "");
  uint32_t huge = kMaxAgentPayload + 1;
  for (int i = 0; i < 4; ++i) header[5 + i] = static_cast<char>((huge >> (8 * i)) & 0xff);
  r.feed(header.data(), header.size());
  AgentFrame f;
  EXPECT_FALSE(r.next(f));
}

TEST(QemuCommand, NamesTheWorkerAndSharesWhatItIsGiven) {
  VmConfig c;
  c.id = std::string(64, 'a');
  c.assets = {"/k/vmlinux", "/k/initramfs.cpio", "6.1"};
  c.accel = "tcg";
  c.memory_mb = 320;
  c.cpus = 2;
  c.shares = {{"rootfs", "/r", "/run/isola/rootfs", false}, {"v0", "/data", "/run/isola/v0", true}};
  c.agent_socket = "/run/isola/x/agent.sock";
  c.console_log = "/tmp/console.log";
  std::vector<std::string> a = qemu_command(c);
  std::string all;
  for (const auto& s : a) all += s + " ";
  EXPECT_NE(all.find("process=isola-vm-aaaaaa "), std::string::npos) << all;
  EXPECT_NE(all.find("-accel tcg"), std::string::npos);
  EXPECT_NE(all.find("-m 320M -smp 2"), std::string::npos);
  EXPECT_NE(all.find("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
            std::string::npos);
  EXPECT_NE(all.find("path=/data,security_model=passthrough,readonly=on"), std::string::npos);
  EXPECT_NE(all.find("mount_tag=v0"), std::string::npos);
  EXPECT_NE(all.find("name=isola.agent"), std::string::npos);
  EXPECT_EQ(vm_process_name(c.id).size(), 15u);  // the kernel keeps 15 characters
}

TEST(QemuCommand, ANetworkIsAVirtioNicOnTheInheritedTap) {
  VmConfig c;
  c.id = "bbbbbbbbbbbbbbbb";
  c.accel = "tcg";
  std::string all;
  for (const auto& s : qemu_command(c)) all += s + " ";
  EXPECT_EQ(all.find("-netdev"), std::string::npos) << "a VM without a network got a NIC: " << all;

  c.network = VmNetwork{"isola-tap0", "02:bb:bb:bb:bb:bb", "10.88.0.5/16", "10.88.0.1"};
  c.tap_fd = 3;
  all.clear();
  for (const auto& s : qemu_command(c)) all += s + " ";
  EXPECT_NE(all.find("-netdev tap,id=net0,fd=3,vhost=off "), std::string::npos) << all;
  EXPECT_NE(all.find("-device virtio-net-device,netdev=net0,mac=02:bb:bb:bb:bb:bb "), std::string::npos) << all;
  EXPECT_EQ(all.find("isola-tap0"), std::string::npos) << "QEMU gets the descriptor, not the name";
}

TEST(VmNetwork, MacForAContainerIsLocalUnicastAndStable) {
  std::string mac = mac_for_container("8575c303fac1971f699ab242d71a4576fda50d51ada21ea3ebf45d5d1f17dd89");
  EXPECT_EQ(mac, "02:85:75:c3:03:fa");
  EXPECT_TRUE(parse_mac(mac));
  EXPECT_EQ(mac_for_container(std::string(64, 'f')), "02:ff:ff:ff:ff:ff");
  EXPECT_TRUE(parse_mac(mac_for_container("0")));  // even from a short ID: still a valid unicast MAC
}

TEST(QemuCommand, MemoryIsTheLimitPlusAReserve) {
  EXPECT_EQ(vm_memory_mb(0), 256u);
  EXPECT_EQ(vm_memory_mb(96ll << 20), 96u + 64u);
}
