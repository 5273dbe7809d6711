#include "net/netlink.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace isola {

namespace {

// A request under construction in a fixed buffer: a header, a fixed part
// (ifinfomsg, ifaddrmsg, rtmsg) and attributes, nests included.
class Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    hdr()->nlmsg_len = NLMSG_LENGTH(0);
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }
  template <class T>
  T* fixed() {
    T* t = reinterpret_cast<T*>(append(sizeof(T)));
    return t;
  }
  void attr(uint16_t type, const void* data, size_t len) {
    rtattr* a = reinterpret_cast<rtattr*>(append(RTA_SPACE(len)));
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    if (len) std::memcpy(RTA_DATA(a), data, len);
  }
  void attr(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  size_t begin_nest(uint16_t type) {
    size_t at = hdr()->nlmsg_len;
    attr(type, nullptr, 0);
    return at;
  }
  void end_nest(size_t at) {
    reinterpret_cast<rtattr*>(buf_ + at)->rta_len = static_cast<uint16_t>(hdr()->nlmsg_len - at);
  }
  size_t size() { return hdr()->nlmsg_len; }
  bool overflowed() const { return overflow_; }

 private:
  // Zeroed room for `len` bytes at the aligned end.
  char* append(size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    size_t aligned = NLMSG_ALIGN(len);
    if (at + aligned > sizeof buf_) {
      overflow_ = true;
      return scratch_;
    }
    std::memset(buf_ + at, 0, aligned);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + aligned);
    return buf_ + at;
  }
  alignas(nlmsghdr) char buf_[1024] = {};
  alignas(nlmsghdr) char scratch_[1024] = {};
  bool overflow_ = false;
};

}  // namespace

bool mac_bytes(const std::string& text, unsigned char out[6]) {
  unsigned v[6];
  char extra;
  if (text.size() != 17 ||
      std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6)
    return false;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<unsigned char>(v[i]);
  return true;
}

std::string mac_text(const unsigned char bytes[6]) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4],
                bytes[5]);
  return text;
}

Result<Rtnl> Rtnl::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return fail(sys_error("open a netlink socket", "NETLINK_ROUTE"));
  UniqueFd sock(fd);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return fail(sys_error("bind a netlink socket", "NETLINK_ROUTE"));
  return Rtnl(std::move(sock));
}

// Sends one request and reads until its acknowledgement (an NLMSG_ERROR
// with our sequence number); the answers before it go to `on_reply`.
Result<void> Rtnl::request(void* msg, size_t len, const std::string& what, const ReplyFn& on_reply) {
  auto* h = static_cast<nlmsghdr*>(msg);
  h->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), msg, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    return fail(sys_error("send a netlink request", what));
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(sys_error("read a netlink answer", what));
    int left = static_cast<int>(n);
    for (auto* r = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_seq != seq_) continue;
      // A dump ends with DONE (its payload: an error number), not an ack.
      if (r->nlmsg_type == NLMSG_DONE) {
        int err = r->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ? -*static_cast<int*>(NLMSG_DATA(r)) : 0;
        if (err != 0) return fail(sys_error(err, "netlink", what));
        return {};
      }
      if (r->nlmsg_type != NLMSG_ERROR) {
        if (on_reply) on_reply(r);
        continue;
      }
      if (r->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
        return fail(make_error("read a netlink answer", what, "truncated acknowledgement"));
      int err = -static_cast<nlmsgerr*>(NLMSG_DATA(r))->error;
      if (err != 0) return fail(sys_error(err, "netlink", what));
      return {};
    }
  }
}

Result<ifinfomsg> Rtnl::get_link(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return fail(make_error("find link", name, "not a link name"));
  Message m(RTM_GETLINK, 0);
  m.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
  m.attr(IFLA_IFNAME, name);
  ifinfomsg info{};
  auto r = request(m.hdr(), m.size(), "find link " + name, [&](const nlmsghdr* reply) {
    if (reply->nlmsg_type == RTM_NEWLINK && reply->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg)))
      info = *static_cast<const ifinfomsg*>(NLMSG_DATA(reply));
  });
  if (!r && r.error().err == ENODEV) return ifinfomsg{};
  if (!r) return fail(r.error());
  return info;
}

Result<int> Rtnl::link_index(const std::string& name) { return TRY(get_link(name)).ifi_index; }

Result<bool> Rtnl::link_up(const std::string& name) {
  ifinfomsg info = TRY(get_link(name));
  return info.ifi_index != 0 && (info.ifi_flags & IFF_UP) != 0;
}

Result<int> Rtnl::require_index(const std::string& name) {
  int index = TRY(link_index(name));
  if (index == 0) return fail(sys_error(ENODEV, "find link", name));
  return index;
}

Result<void> Rtnl::add_bridge(const std::string& name) {
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  m.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
  m.attr(IFLA_IFNAME, name);
  size_t info = m.begin_nest(IFLA_LINKINFO);
  m.attr(IFLA_INFO_KIND, "bridge", 6);
  m.end_nest(info);
  return request(m.hdr(), m.size(), "add bridge " + name);
}

Result<void> Rtnl::add_veth(const std::string& name, const std::string& peer, int peer_netns_fd) {
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  m.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
  m.attr(IFLA_IFNAME, name);
  size_t info = m.begin_nest(IFLA_LINKINFO);
  m.attr(IFLA_INFO_KIND, "veth", 4);
  size_t data = m.begin_nest(IFLA_INFO_DATA);
  size_t peer_info = m.begin_nest(VETH_INFO_PEER);
  m.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
  m.attr(IFLA_IFNAME, peer);
  m.attr_u32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.end_nest(peer_info);
  m.end_nest(data);
  m.end_nest(info);
  if (m.overflowed()) return fail(make_error("add veth", name, "request too large"));
  return request(m.hdr(), m.size(), "add veth " + name);
}

Result<void> Rtnl::set_up(const std::string& name) {
  int index = TRY(require_index(name));
  Message m(RTM_NEWLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return request(m.hdr(), m.size(), "bring up " + name);
}

Result<void> Rtnl::set_master(const std::string& name, const std::string& master) {
  int index = TRY(require_index(name));
  int master_index = TRY(require_index(master));
  Message m(RTM_NEWLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  m.attr_u32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  return request(m.hdr(), m.size(), "attach " + name + " to " + master);
}

Result<void> Rtnl::set_mac(const std::string& name, const std::string& mac) {
  unsigned char bytes[6];
  if (!mac_bytes(mac, bytes)) return fail(make_error("set address", mac, "not a MAC address"));
  int index = TRY(require_index(name));
  Message m(RTM_NEWLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  m.attr(IFLA_ADDRESS, bytes, sizeof bytes);
  return request(m.hdr(), m.size(), "set the MAC address of " + name);
}

Result<void> Rtnl::set_alias(const std::string& name, const std::string& alias) {
  if (alias.size() >= 256) return fail(make_error("set alias", name, "longer than 255 bytes"));
  int index = TRY(require_index(name));
  Message m(RTM_NEWLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  m.attr(IFLA_IFALIAS, alias);
  if (m.overflowed()) return fail(make_error("set alias", name, "request too large"));
  return request(m.hdr(), m.size(), "set the alias of " + name);
}

Result<void> Rtnl::set_port_learning(const std::string& name, bool learning) {
  int index = TRY(require_index(name));
  Message m(RTM_SETLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_BRIDGE;
  ifi->ifi_index = index;
  size_t port = m.begin_nest(IFLA_PROTINFO | NLA_F_NESTED);
  uint8_t on = learning ? 1 : 0;
  m.attr(IFLA_BRPORT_LEARNING, &on, sizeof on);
  m.end_nest(port);
  return request(m.hdr(), m.size(), "set learning on bridge port " + name);
}

Result<void> Rtnl::delete_link(const std::string& name) {
  int index = TRY(link_index(name));
  if (index == 0) return {};
  Message m(RTM_DELLINK, 0);
  auto* ifi = m.fixed<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  auto r = request(m.hdr(), m.size(), "delete link " + name);
  if (!r && r.error().err == ENODEV) return {};
  return r;
}

Result<void> Rtnl::add_address(const std::string& name, Ipv4 address, unsigned prefix) {
  int index = TRY(require_index(name));
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = m.fixed<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa->ifa_index = static_cast<unsigned>(index);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  uint32_t a = htonl(address.value);
  m.attr(IFA_LOCAL, &a, sizeof a);
  m.attr(IFA_ADDRESS, &a, sizeof a);
  if (prefix < 31) {
    uint32_t b = htonl(address.value | (prefix == 0 ? ~0u : ~(~0u << (32 - prefix))));
    m.attr(IFA_BROADCAST, &b, sizeof b);
  }
  return request(m.hdr(), m.size(), "add address " + address.str() + " to " + name);
}

Result<void> Rtnl::add_default_route(Ipv4 gateway) {
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rt = m.fixed<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  uint32_t g = htonl(gateway.value);
  m.attr(RTA_GATEWAY, &g, sizeof g);
  return request(m.hdr(), m.size(), "add the default route via " + gateway.str());
}

Result<void> Rtnl::delete_address(const std::string& name, Ipv4 address, unsigned prefix) {
  int index = TRY(require_index(name));
  Message m(RTM_DELADDR, 0);
  auto* ifa = m.fixed<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa->ifa_index = static_cast<unsigned>(index);
  uint32_t a = htonl(address.value);
  m.attr(IFA_LOCAL, &a, sizeof a);
  return request(m.hdr(), m.size(), "remove address " + address.str() + " from " + name);
}

namespace {

// The attributes of a reply after its fixed part of `fixed` bytes.
template <class Fn>
void each_attribute(const nlmsghdr* reply, size_t fixed, Fn&& fn) {
  if (reply->nlmsg_len < NLMSG_LENGTH(fixed)) return;
  int len = static_cast<int>(reply->nlmsg_len - NLMSG_LENGTH(fixed));
  auto* a = reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(reply)) + NLMSG_ALIGN(fixed));
  for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) fn(a, RTA_PAYLOAD(a));
}

uint32_t attr_u32(const rtattr* a, size_t len) {
  uint32_t v = 0;
  if (len >= sizeof v) std::memcpy(&v, RTA_DATA(a), sizeof v);
  return v;
}

}  // namespace

Result<std::vector<LinkEntry>> Rtnl::links() {
  Message m(RTM_GETLINK, NLM_F_DUMP);
  m.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
  std::vector<LinkEntry> out;
  TRYV(request(m.hdr(), m.size(), "list links", [&](const nlmsghdr* reply) {
    if (reply->nlmsg_type != RTM_NEWLINK || reply->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(reply));
    LinkEntry e;
    e.index = ifi->ifi_index;
    e.loopback = (ifi->ifi_flags & IFF_LOOPBACK) != 0;
    each_attribute(reply, sizeof(ifinfomsg), [&](const rtattr* a, size_t len) {
      const char* data = static_cast<const char*>(RTA_DATA(a));
      if (a->rta_type == IFLA_IFNAME) e.name.assign(data, strnlen(data, len));
      if (a->rta_type == IFLA_ADDRESS && len == 6) e.mac = mac_text(reinterpret_cast<const unsigned char*>(data));
      if (a->rta_type == IFLA_MASTER) e.master = static_cast<int>(attr_u32(a, len));
      if (a->rta_type == IFLA_IFALIAS) e.alias.assign(data, strnlen(data, len));
    });
    out.push_back(std::move(e));
  }));
  return out;
}

Result<std::vector<AddressEntry>> Rtnl::ipv4_addresses() {
  Message m(RTM_GETADDR, NLM_F_DUMP);
  m.fixed<ifaddrmsg>()->ifa_family = AF_INET;
  std::vector<AddressEntry> out;
  TRYV(request(m.hdr(), m.size(), "list addresses", [&](const nlmsghdr* reply) {
    if (reply->nlmsg_type != RTM_NEWADDR || reply->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
    const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(reply));
    if (ifa->ifa_family != AF_INET) return;
    AddressEntry e{static_cast<int>(ifa->ifa_index), {}, ifa->ifa_prefixlen};
    bool local = false;
    each_attribute(reply, sizeof(ifaddrmsg), [&](const rtattr* a, size_t len) {
      if ((a->rta_type == IFA_LOCAL || (a->rta_type == IFA_ADDRESS && !local)) && len == 4) {
        e.address.value = ntohl(attr_u32(a, len));
        local = local || a->rta_type == IFA_LOCAL;
      }
    });
    out.push_back(e);
  }));
  return out;
}

Result<std::optional<Ipv4>> Rtnl::default_gateway() {
  Message m(RTM_GETROUTE, NLM_F_DUMP);
  m.fixed<rtmsg>()->rtm_family = AF_INET;
  std::optional<Ipv4> gateway;
  TRYV(request(m.hdr(), m.size(), "list routes", [&](const nlmsghdr* reply) {
    if (reply->nlmsg_type != RTM_NEWROUTE || reply->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
    const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(reply));
    if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 0 || rt->rtm_table != RT_TABLE_MAIN) return;
    each_attribute(reply, sizeof(rtmsg), [&](const rtattr* a, size_t len) {
      if (a->rta_type == RTA_GATEWAY && len == 4 && !gateway) gateway = Ipv4{ntohl(attr_u32(a, len))};
    });
  }));
  return gateway;
}

}  // namespace isola
