// The agent's rtnetlink helper: the requests it builds (read back with the
// kernel's macros), the replies it accepts and refuses, and, as root, the
// whole NIC set-up against this kernel in a network namespace of the
// test's own, on a veth standing in for the VM's virtio-net.
#include "agent/netlink.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>

using namespace isola;
using namespace isola::agent;

namespace {

// Attributes of a built request, by type.
std::map<uint16_t, std::string> attributes(const NlMessage& m, size_t family_len) {
  std::map<uint16_t, std::string> out;
  const nlmsghdr* h = m.header();
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(family_len));
  auto* a = reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(family_len));
  for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
    out[a->rta_type] = std::string(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a));
  EXPECT_EQ(len, 0) << "attributes do not fill the message exactly";
  return out;
}

std::string bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

// A reply the kernel could send, appended to `out`.
void append(std::string& out, const NlMessage& m) {
  out.append(m.bytes());
  out.resize(NLMSG_ALIGN(out.size()), '\0');
}

NlMessage link_entry(uint32_t seq, int index, const char* name, std::optional<MacAddress> mac) {
  NlMessage m(RTM_NEWLINK, NLM_F_MULTI, seq);
  auto* ifi = m.family_header<ifinfomsg>();
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_BROADCAST;
  m.add_u32(IFLA_MTU, 1500);
  m.add_string(IFLA_IFNAME, name);
  if (mac) m.add_attr(IFLA_ADDRESS, mac->data(), mac->size());
  return m;
}

NlMessage error_entry(uint32_t seq, int error) {
  NlMessage m(NLMSG_ERROR, 0, seq);
  m.family_header<nlmsgerr>()->error = error;
  return m;
}

const MacAddress kMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

}  // namespace

TEST(Netlink, BuildsRequestsTheKernelReads) {
  NlMessage dump = link_dump_request(7);
  EXPECT_TRUE(dump.valid());
  EXPECT_EQ(dump.header()->nlmsg_type, RTM_GETLINK);
  EXPECT_EQ(dump.header()->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
  EXPECT_EQ(dump.header()->nlmsg_seq, 7u);
  EXPECT_EQ(dump.header()->nlmsg_len, NLMSG_LENGTH(sizeof(ifinfomsg)));

  NlMessage rename = rename_link_request(8, 3, "eth0");
  ASSERT_TRUE(rename.valid());
  EXPECT_EQ(rename.header()->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);  // every change is acknowledged
  EXPECT_EQ(static_cast<const ifinfomsg*>(NLMSG_DATA(rename.header()))->ifi_index, 3);
  EXPECT_EQ(attributes(rename, sizeof(ifinfomsg))[IFLA_IFNAME], std::string("eth0", 5));  // with its NUL

  NlMessage up = link_up_request(9, 3);
  auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(up.header()));
  EXPECT_EQ(ifi->ifi_flags, static_cast<unsigned>(IFF_UP));
  EXPECT_EQ(ifi->ifi_change, static_cast<unsigned>(IFF_UP));  // no other flag is touched

  Ipv4Prefix addr = *parse_ipv4_prefix("10.88.0.5/16");
  NlMessage add = add_address_request(10, 3, addr);
  auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(add.header()));
  EXPECT_EQ(ifa->ifa_family, AF_INET);
  EXPECT_EQ(ifa->ifa_prefixlen, 16);
  EXPECT_EQ(ifa->ifa_index, 3u);
  EXPECT_EQ(add.header()->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  auto a = attributes(add, sizeof(ifaddrmsg));
  EXPECT_EQ(a[IFA_LOCAL], bytes({10, 88, 0, 5}));
  EXPECT_EQ(a[IFA_ADDRESS], bytes({10, 88, 0, 5}));
  EXPECT_EQ(a[IFA_BROADCAST], bytes({10, 88, 255, 255}));

  NlMessage route = default_route_request(11, 3, *parse_ipv4("10.88.0.1"));
  auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(route.header()));
  EXPECT_EQ(rt->rtm_family, AF_INET);
  EXPECT_EQ(rt->rtm_dst_len, 0);
  EXPECT_EQ(rt->rtm_table, RT_TABLE_MAIN);
  EXPECT_EQ(rt->rtm_type, RTN_UNICAST);
  auto r = attributes(route, sizeof(rtmsg));
  EXPECT_EQ(r[RTA_GATEWAY], bytes({10, 88, 0, 1}));
  uint32_t oif = 3;
  EXPECT_EQ(r[RTA_OIF], std::string(reinterpret_cast<const char*>(&oif), 4));
}

TEST(Netlink, NeverWritesPastItsBuffer) {
  NlMessage m(RTM_NEWLINK, NLM_F_REQUEST, 1);
  m.family_header<ifinfomsg>();
  std::string big(NlMessage::kCapacity, 'x');
  m.add_attr(IFLA_IFALIAS, big.data(), big.size());
  EXPECT_FALSE(m.valid());
  EXPECT_EQ(m.header()->nlmsg_len, NLMSG_LENGTH(sizeof(ifinfomsg)));  // nothing was appended

  NlMessage late(RTM_NEWLINK, NLM_F_REQUEST, 1);
  late.add_u32(IFLA_MTU, 1);
  late.family_header<ifinfomsg>();  // the family header must come first
  EXPECT_FALSE(late.valid());

  EXPECT_FALSE(rename_link_request(1, 3, "").valid());
  EXPECT_FALSE(rename_link_request(1, 3, "a-name-that-is-too-long").valid());
}

TEST(Netlink, ParsesALinkDumpAndItsEnd) {
  std::string data;
  append(data, link_entry(5, 1, "lo", MacAddress{}));
  append(data, link_entry(4, 9, "stale", kMac));  // another request's: skipped
  append(data, link_entry(5, 2, "eth7", kMac));
  append(data, link_entry(5, 3, "sit0", std::nullopt));
  auto reply = parse_reply(data, 5, "list links");
  ASSERT_TRUE(reply) << reply.error().message();
  EXPECT_FALSE(reply->done);  // more datagrams follow
  ASSERT_EQ(reply->links.size(), 3u);
  EXPECT_EQ(reply->links[1].index, 2);
  EXPECT_EQ(reply->links[1].name, "eth7");
  EXPECT_EQ(reply->links[1].mac, kMac);
  EXPECT_FALSE(reply->links[2].mac);

  std::string done;
  append(done, NlMessage(NLMSG_DONE, NLM_F_MULTI, 5));
  reply = parse_reply(done, 5, "list links");
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->done);
}

TEST(Netlink, ChecksEveryAcknowledgement) {
  std::string ack;
  append(ack, error_entry(6, 0));
  auto reply = parse_reply(ack, 6, "add address");
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->done);

  std::string refused;
  append(refused, error_entry(6, -EEXIST));
  reply = parse_reply(refused, 6, "add address 10.0.0.2/24");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().err, EEXIST);
  EXPECT_NE(reply.error().message().find("add address 10.0.0.2/24"), std::string::npos);

  std::string other;
  append(other, error_entry(99, -EPERM));  // not ours
  reply = parse_reply(other, 6, "add address");
  ASSERT_TRUE(reply);
  EXPECT_FALSE(reply->done);

  std::string odd;
  append(odd, error_entry(6, 5));  // positive: not an errno the kernel sends
  EXPECT_FALSE(parse_reply(odd, 6, "x"));
}

TEST(Netlink, RefusesTruncatedAndMalformedReplies) {
  std::string data;
  append(data, link_entry(5, 2, "eth7", kMac));
  for (size_t cut = 1; cut < data.size(); ++cut)
    EXPECT_FALSE(parse_reply(data.substr(0, cut), 5, "list links")) << "cut at " << cut;

  // A header that claims more than the datagram holds.
  std::string lying = data;
  reinterpret_cast<nlmsghdr*>(lying.data())->nlmsg_len = 4096;
  EXPECT_FALSE(parse_reply(lying, 5, "list links"));

  // A link message too short for its family header.
  NlMessage stub(RTM_NEWLINK, 0, 5);
  std::string s;
  append(s, stub);
  EXPECT_FALSE(parse_reply(s, 5, "list links"));

  // An attribute running past its message is not read.
  std::string bad_attr = data;
  auto* h = reinterpret_cast<nlmsghdr*>(bad_attr.data());
  auto* a = reinterpret_cast<rtattr*>(bad_attr.data() + NLMSG_LENGTH(sizeof(ifinfomsg)));
  a->rta_len = static_cast<unsigned short>(h->nlmsg_len);
  auto reply = parse_reply(bad_attr, 5, "list links");
  ASSERT_TRUE(reply);  // the link is there, the broken attribute ignored
  ASSERT_EQ(reply->links.size(), 1u);
  EXPECT_TRUE(reply->links[0].name.empty());
}

// configure_nic against this kernel: a veth in a fresh network namespace
// (on one thread: namespaces are per thread) plays the VM's NIC.
TEST(Netlink, ConfiguresANicInAPrivateNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::thread([] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    if (std::system("ip link add isola-nt0 type veth peer name isola-nt1 2>/dev/null") != 0)
      GTEST_SKIP() << "no veth here";
    // (/sys shows the namespace it was mounted in, not this one.)
    auto before = Netlink::open();
    ASSERT_TRUE(before);
    auto veth = before->links();
    ASSERT_TRUE(veth) << veth.error().message();
    std::string mac_text;
    for (const LinkInfo& l : *veth)
      if (l.name == "isola-nt0" && l.mac) mac_text = format_mac(*l.mac);
    ASSERT_FALSE(mac_text.empty()) << "the link dump has no isola-nt0";
    auto nic = parse_nic_config(mac_text, "10.77.0.5/24", "10.77.0.1");
    ASSERT_TRUE(nic) << nic.error().message();

    auto r = configure_nic(*nic, std::chrono::milliseconds(500));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(::if_nametoindex("isola-nt0"), 0u);
    unsigned index = ::if_nametoindex("eth0");
    ASSERT_NE(index, 0u) << "no eth0";
    auto nl = Netlink::open();
    ASSERT_TRUE(nl);
    auto links = nl->links();
    ASSERT_TRUE(links);
    bool up = false;
    for (const LinkInfo& l : *links)
      if (l.name == "eth0") up = (l.flags & IFF_UP) && l.mac == nic->mac;
    EXPECT_TRUE(up) << "eth0 is not up with its MAC";

    std::string address;
    ifaddrs* ifs = nullptr;
    ASSERT_EQ(::getifaddrs(&ifs), 0);
    for (ifaddrs* i = ifs; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && std::string(i->ifa_name) == "eth0")
        address = ::inet_ntoa(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr);
    ::freeifaddrs(ifs);
    EXPECT_EQ(address, "10.77.0.5");

    // The route table: "eth0 00000000 01004D0A ..." is the default route via 10.77.0.1.
    std::ifstream routes("/proc/thread-self/net/route");  // /proc/net is the process's
    std::string line, found;
    while (std::getline(routes, line))
      if (line.rfind("eth0\t00000000\t", 0) == 0) found = line;
    EXPECT_NE(found.find("\t01004D0A\t"), std::string::npos) << "no default route via 10.77.0.1: " << found;

    // A second create with the same network finds it configured.
    r = configure_nic(*nic, std::chrono::milliseconds(500));
    EXPECT_TRUE(r) << r.error().message();

    // A MAC nothing has is an error that names it, after the wait.
    MacAddress other = nic->mac;
    other[5] ^= 0xff;
    NicConfig missing = *nic;
    missing.mac = other;
    r = configure_nic(missing, std::chrono::milliseconds(50));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find(format_mac(other)), std::string::npos) << r.error().message();
  }).join();
}
