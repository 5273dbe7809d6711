#include "agent/netlink.h"

#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>
#include <thread>

namespace isola::agent {

namespace {

// A dump's datagrams are at most a page or two per link in practice; 32 KiB
// holds many. A longer one is reported as truncated, not read in part.
constexpr size_t kReplyBuffer = 32 * 1024;
// A request is answered in one or a few datagrams, a guest's link dump in a
// handful: more than this means something is wrong.
constexpr int kMaxReplies = 64;

Error malformed(const std::string& what, const char* why) {
  return make_error("read netlink reply", what, why);
}

}  // namespace

NlMessage::NlMessage(uint16_t type, uint16_t flags, uint32_t seq) {
  nlmsghdr* h = hdr();
  h->nlmsg_len = NLMSG_LENGTH(0);
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  h->nlmsg_seq = seq;
  h->nlmsg_pid = 0;  // to the kernel
}

void* NlMessage::reserve(size_t len) {
  size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
  if (at != NLMSG_LENGTH(0) || at + NLMSG_ALIGN(len) > kCapacity) {
    // Only a programming error gets here; hand out scratch space and make
    // sure the message is never sent.
    valid_ = false;
    static thread_local unsigned char scratch[kCapacity];
    std::memset(scratch, 0, sizeof scratch);
    return scratch;
  }
  hdr()->nlmsg_len = static_cast<uint32_t>(at + NLMSG_ALIGN(len));
  return buf_ + at;
}

void NlMessage::add_attr(uint16_t type, const void* data, size_t len) {
  size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
  if (len > 0xffff - RTA_LENGTH(0) || at + RTA_SPACE(len) > kCapacity) {
    valid_ = false;
    return;
  }
  auto* rta = reinterpret_cast<rtattr*>(buf_ + at);
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  if (len > 0) std::memcpy(RTA_DATA(rta), data, len);
  hdr()->nlmsg_len = static_cast<uint32_t>(at + RTA_SPACE(len));
}

void NlMessage::add_string(uint16_t type, std::string_view s) {
  char tmp[kCapacity];
  if (s.size() >= sizeof tmp) {
    valid_ = false;
    return;
  }
  std::memcpy(tmp, s.data(), s.size());
  tmp[s.size()] = '\0';
  add_attr(type, tmp, s.size() + 1);
}

NlMessage link_dump_request(uint32_t seq) {
  NlMessage m(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
  m.family_header<ifinfomsg>()->ifi_family = AF_UNSPEC;
  return m;
}

NlMessage rename_link_request(uint32_t seq, int index, std::string_view name) {
  NlMessage m(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  auto* ifi = m.family_header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  if (name.empty() || name.size() >= IFNAMSIZ) {
    m.invalidate();  // the kernel would refuse it too
    return m;
  }
  m.add_string(IFLA_IFNAME, name);
  return m;
}

NlMessage set_mac_request(uint32_t seq, int index, const MacAddress& mac) {
  NlMessage m(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  auto* ifi = m.family_header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  m.add_attr(IFLA_ADDRESS, mac.data(), mac.size());
  return m;
}

NlMessage link_up_request(uint32_t seq, int index) {
  NlMessage m(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  auto* ifi = m.family_header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;  // only this flag changes
  return m;
}

NlMessage add_address_request(uint32_t seq, int index, const Ipv4Prefix& address) {
  NlMessage m(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  auto* ifa = m.family_header<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(address.length);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(index);
  Ipv4Bytes broadcast = address.address;
  for (unsigned bit = address.length; bit < 32; ++bit)
    broadcast[bit / 8] = static_cast<uint8_t>(broadcast[bit / 8] | (0x80u >> (bit % 8)));
  m.add_attr(IFA_LOCAL, address.address.data(), address.address.size());
  m.add_attr(IFA_ADDRESS, address.address.data(), address.address.size());
  m.add_attr(IFA_BROADCAST, broadcast.data(), broadcast.size());
  return m;
}

NlMessage default_route_request(uint32_t seq, int index, const Ipv4Bytes& gateway) {
  NlMessage m(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  auto* rt = m.family_header<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_dst_len = 0;  // default
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  m.add_attr(RTA_GATEWAY, gateway.data(), gateway.size());
  m.add_u32(RTA_OIF, static_cast<uint32_t>(index));
  return m;
}

Result<NlReply> parse_reply(std::string_view data, uint32_t seq, const std::string& what) {
  // The macros walk aligned headers: work on an aligned copy.
  std::unique_ptr<nlmsghdr[]> copy(new nlmsghdr[data.size() / sizeof(nlmsghdr) + 1]);
  std::memcpy(copy.get(), data.data(), data.size());
  NlReply reply;
  int len = static_cast<int>(std::min(data.size(), kReplyBuffer * 4));
  const nlmsghdr* h = copy.get();
  for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_seq != seq) continue;
    if (h->nlmsg_type == NLMSG_DONE) {
      reply.done = true;
      return reply;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return fail(malformed(what, "a short error message"));
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error == 0) {
        reply.done = true;  // the ACK
        return reply;
      }
      if (e->error > 0 || e->error < -4095) return fail(malformed(what, "an error number out of range"));
      return fail(sys_error(-e->error, what, ""));
    }
    if (h->nlmsg_type != RTM_NEWLINK) continue;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return fail(malformed(what, "a short link message"));
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    LinkInfo link;
    link.index = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)));
    for (const rtattr* a = IFLA_RTA(ifi); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
      size_t payload = RTA_PAYLOAD(a);
      const char* p = static_cast<const char*>(RTA_DATA(a));
      if (a->rta_type == IFLA_IFNAME) {
        link.name.assign(p, strnlen(p, std::min<size_t>(payload, IFNAMSIZ)));
      } else if (a->rta_type == IFLA_ADDRESS && payload == 6) {
        MacAddress mac;
        std::memcpy(mac.data(), p, mac.size());
        link.mac = mac;
      }
    }
    reply.links.push_back(std::move(link));
  }
  if (len != 0) return fail(malformed(what, "a truncated message"));
  return reply;
}

Result<Netlink> Netlink::open(std::chrono::milliseconds reply_wait) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return fail(sys_error("open rtnetlink socket"));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return fail(sys_error("bind rtnetlink socket"));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(reply_wait.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(reply_wait.count() % 1000 * 1000);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return fail(sys_error("set rtnetlink timeout"));
  return Netlink(std::move(fd));
}

Result<std::vector<LinkInfo>> Netlink::transact(const NlMessage& m, const std::string& what) {
  if (!m.valid()) return fail(make_error(what, "", "the netlink request does not fit its buffer"));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::string_view out = m.bytes();
  ssize_t sent;
  do {
    sent = ::sendto(fd_.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent != static_cast<ssize_t>(out.size())) return fail(sys_error("send netlink request", what));

  std::vector<LinkInfo> links;
  std::unique_ptr<char[]> buf(new char[kReplyBuffer]);
  for (int i = 0; i < kMaxReplies; ++i) {
    sockaddr_nl from{};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd_.get(), buf.get(), kReplyBuffer, MSG_TRUNC, reinterpret_cast<sockaddr*>(&from),
                           &from_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return fail(make_error("wait for netlink reply", what, "the kernel did not answer in time"));
    if (n < 0) return fail(sys_error("read netlink reply", what));
    if (static_cast<size_t>(n) > kReplyBuffer) return fail(malformed(what, "a reply larger than its buffer"));
    if (from.nl_pid != 0) continue;  // not from the kernel
    NlReply reply = TRY(parse_reply({buf.get(), static_cast<size_t>(n)}, m.header()->nlmsg_seq, what));
    std::move(reply.links.begin(), reply.links.end(), std::back_inserter(links));
    if (reply.done) return links;
  }
  return fail(malformed(what, "too many replies"));
}

Result<std::vector<LinkInfo>> Netlink::links() { return transact(link_dump_request(++seq_), "list links"); }

Result<void> Netlink::rename_link(int index, std::string_view name) {
  TRYV(transact(rename_link_request(++seq_, index, name), "rename link to " + std::string(name)));
  return {};
}

Result<void> Netlink::set_mac(int index, const MacAddress& mac) {
  TRYV(transact(set_mac_request(++seq_, index, mac), "set the MAC of link " + std::to_string(index)));
  return {};
}

Result<void> Netlink::set_up(int index) {
  TRYV(transact(link_up_request(++seq_, index), "bring up link " + std::to_string(index)));
  return {};
}

Result<void> Netlink::add_address(int index, const Ipv4Prefix& address) {
  TRYV(transact(add_address_request(++seq_, index, address),
                "add address " + format_ipv4(address.address) + "/" + std::to_string(address.length)));
  return {};
}

Result<void> Netlink::add_default_route(int index, const Ipv4Bytes& gateway) {
  TRYV(transact(default_route_request(++seq_, index, gateway), "add default route via " + format_ipv4(gateway)));
  return {};
}

Result<void> configure_nic(const NicConfig& nic, std::chrono::milliseconds wait) {
  auto work = [&]() -> Result<void> {
    Netlink nl = TRY(Netlink::open());
    auto deadline = std::chrono::steady_clock::now() + wait;
    std::optional<LinkInfo> found;
    for (;;) {
      std::vector<LinkInfo> nics;
      for (LinkInfo& l : TRY(nl.links())) {
        if (l.flags & IFF_LOOPBACK || !l.mac) continue;
        if (l.mac == nic.mac) found = l;
        nics.push_back(std::move(l));
      }
      // A VM has one NIC: in a clone it carries the template's MAC (QEMU
      // migrates it), and becomes the container's here, while it is down.
      if (!found && nics.size() == 1) {
        TRYV(nl.set_mac(nics[0].index, nic.mac));
        found = std::move(nics[0]);
      }
      if (found || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!found)
      return fail(make_error("find the NIC", format_mac(nic.mac),
                             "no interface has this MAC (is virtio_net loaded, and the device given to QEMU?)"));
    // A link is renamed while it is down, which a fresh NIC is.
    if (found->name != "eth0") TRYV(nl.rename_link(found->index, "eth0"));
    // EEXIST: a create the host retries finds its own address and route.
    auto existing_ok = [](Result<void> r) -> Result<void> {
      if (!r && r.error().err == EEXIST) return {};
      return r;
    };
    TRYV(existing_ok(nl.add_address(found->index, nic.address)));
    TRYV(nl.set_up(found->index));
    TRYV(existing_ok(nl.add_default_route(found->index, nic.gateway)));
    return {};
  };
  auto r = work();
  if (!r) return fail(r.error().context("configure the guest's network"));
  return {};
}

}  // namespace isola::agent
