#include "net/endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "common/fs.h"
#include "common/ns_switch.h"
#include "net/netlink.h"
#include "net/nft.h"

namespace isola {

namespace {

Result<uint16_t> parse_port(const std::string& text, const std::string& whole, bool zero_ok) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v > 65535 || (v == 0 && !zero_ok))
    return fail(make_error("parse -p", whole, "ports are numbers from 1 to 65535; use [hostip:][hostport:]port[/tcp|udp]"));
  return static_cast<uint16_t>(v);
}

std::string nft_table_of(const std::string& id) { return "ip isola-c-" + id.substr(0, 12); }


// Configures eth<n> inside the namespace: MAC, address, up, and for the
// first endpoint the default route.
Result<void> configure_inside(Rtnl& inside, const Endpoint& ep, bool default_route) {
  std::string eth = "eth" + std::to_string(ep.slot);
  TRYV(inside.set_mac(eth, ep.mac));
  TRYV(inside.add_address(eth, ep.address, ep.prefix));
  TRYV(inside.set_up(eth));
  if (default_route) TRYV(inside.add_default_route(ep.gateway));
  return {};
}

Result<void> plug_veth(Rtnl& host, int netns_fd, const std::string& id, const Endpoint& ep) {
  std::string name = host_veth_name(id, ep.slot);
  (void)host.delete_link(name);  // from a start that died half-way
  TRYV(host.add_veth(name, "eth" + std::to_string(ep.slot), netns_fd));
  auto attached = [&]() -> Result<void> {
    TRYV(host.set_master(name, ep.bridge));
    return host.set_up(name);
  }();
  if (!attached) (void)host.delete_link(name);
  return attached;
}

}  // namespace

Result<PortMapping> PortMapping::parse(const std::string& text) {
  PortMapping m;
  std::string spec = text;
  if (auto slash = spec.rfind('/'); slash != std::string::npos) {
    m.proto = spec.substr(slash + 1);
    spec.resize(slash);
    if (m.proto != "tcp" && m.proto != "udp")
      return fail(make_error("parse -p", text, "the protocol must be tcp or udp"));
  }
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() > 3) return fail(make_error("parse -p", text, "use [hostip:][hostport:]port[/tcp|udp]"));
  m.container_port = TRY(parse_port(parts.back(), text, false));
  if (parts.size() >= 2 && !parts[parts.size() - 2].empty())
    m.host_port = TRY(parse_port(parts[parts.size() - 2], text, true));
  if (parts.size() == 3) {
    m.host_ip = parts[0];
    if (!m.host_ip.empty()) {
      auto ip = Ipv4::parse(m.host_ip);
      if (!ip) return fail(make_error("parse -p", text, "the host address must be IPv4, like 127.0.0.1"));
      if (ip->value == 0) m.host_ip.clear();
    }
  }
  return m;
}

std::string PortMapping::str() const {
  return std::to_string(container_port) + "/" + proto + " -> " + (host_ip.empty() ? "0.0.0.0" : host_ip) + ":" +
         std::to_string(host_port);
}

Json PortMapping::to_json() const {
  return {{"host_ip", host_ip}, {"host_port", host_port}, {"container_port", container_port}, {"proto", proto}};
}

Result<PortMapping> PortMapping::from_json(const Json& j) {
  PortMapping m;
  m.host_ip = json_string_or(j, "host_ip");
  int64_t hp = json_int_or(j, "host_port", -1), cp = json_int_or(j, "container_port", -1);
  m.proto = json_string_or(j, "proto", "tcp");
  if (hp < 0 || hp > 65535 || cp < 1 || cp > 65535 || (m.proto != "tcp" && m.proto != "udp"))
    return fail(make_error("read", "network.json", "a published port is invalid"));
  m.host_port = static_cast<uint16_t>(hp);
  m.container_port = static_cast<uint16_t>(cp);
  return m;
}

Json Endpoint::to_json() const {
  return {{"slot", slot},         {"network", network}, {"network_id", network_id}, {"bridge", bridge},
          {"address", address.str()}, {"prefix", prefix},   {"gateway", gateway.str()},  {"mac", mac}};
}

Result<Endpoint> Endpoint::from_json(const Json& j) {
  const std::string what = "network.json";
  Endpoint e;
  int64_t slot = json_int_or(j, "slot", -1);
  if (slot < 0 || slot > 9) return fail(make_error("read", what, "an endpoint's slot is invalid"));
  e.slot = static_cast<unsigned>(slot);
  e.network = TRY(json_string(j, "network", what));
  e.network_id = TRY(json_string(j, "network_id", what));
  e.bridge = TRY(json_string(j, "bridge", what));
  e.address = TRY(Ipv4::parse(TRY(json_string(j, "address", what))));
  int64_t prefix = json_int_or(j, "prefix", -1);
  if (prefix < 0 || prefix > 32) return fail(make_error("read", what, "an endpoint's prefix is invalid"));
  e.prefix = static_cast<unsigned>(prefix);
  e.gateway = TRY(Ipv4::parse(TRY(json_string(j, "gateway", what))));
  e.mac = TRY(json_string(j, "mac", what));
  unsigned char bytes[6];
  if (!mac_bytes(e.mac, bytes) || e.bridge.empty() || e.bridge.size() >= IFNAMSIZ)
    return fail(make_error("read", what, "an endpoint's MAC or bridge is invalid"));
  return e;
}

Json ContainerNetwork::to_json() const {
  Json eps = Json::array(), ps = Json::array();
  for (const Endpoint& e : endpoints) eps.push_back(e.to_json());
  for (const PortMapping& p : ports) ps.push_back(p.to_json());
  return {{"mode", mode}, {"container", container}, {"endpoints", eps}, {"ports", ps}};
}

Result<ContainerNetwork> ContainerNetwork::from_json(const Json& j) {
  ContainerNetwork n;
  n.mode = json_string_or(j, "mode", "none");
  n.container = json_string_or(j, "container");
  if (auto it = j.find("endpoints"); it != j.end() && it->is_array())
    for (const Json& e : *it) n.endpoints.push_back(TRY(Endpoint::from_json(e)));
  if (auto it = j.find("ports"); it != j.end() && it->is_array())
    for (const Json& p : *it) n.ports.push_back(TRY(PortMapping::from_json(p)));
  return n;
}

std::string mac_for(Ipv4 address) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:42:%02x:%02x:%02x:%02x", (address.value >> 24) & 0xff,
                (address.value >> 16) & 0xff, (address.value >> 8) & 0xff, address.value & 0xff);
  return buf;
}

std::string host_veth_name(const std::string& id, unsigned slot) {
  return "iv" + id.substr(0, 10) + std::to_string(slot);
}
std::string tap_name(const std::string& id, unsigned slot) { return "it" + id.substr(0, 10) + std::to_string(slot); }

Result<void> plug_endpoints(int netns_fd, const std::string& id, const ContainerNetwork& net) {
  {
    NsSwitch visit = TRY(NsSwitch::enter(netns_fd, CLONE_NEWNET, "the container's network namespace"));
    Rtnl inside = TRY(Rtnl::open());
    TRYV(inside.set_up("lo"));
  }
  for (size_t n = 0; n < net.endpoints.size(); ++n) TRYV(add_endpoint(netns_fd, id, net.endpoints[n], n == 0));
  return {};
}

Result<void> add_endpoint(int netns_fd, const std::string& id, const Endpoint& ep, bool default_route) {
  Rtnl host = TRY(Rtnl::open());
  TRYV(plug_veth(host, netns_fd, id, ep));
  auto done = [&]() -> Result<void> {
    NsSwitch visit = TRY(NsSwitch::enter(netns_fd, CLONE_NEWNET, "the container's network namespace"));
    Rtnl inside = TRY(Rtnl::open());
    return configure_inside(inside, ep, default_route);
  }();
  if (!done) (void)host.delete_link(host_veth_name(id, ep.slot));
  return done;
}

Result<void> remove_endpoint(const std::string& id, const Endpoint& ep) {
  Rtnl host = TRY(Rtnl::open());
  return host.delete_link(host_veth_name(id, ep.slot));
}

void unplug_endpoints(const std::string& id, const ContainerNetwork& net) {
  if (net.endpoints.empty()) return;
  auto host = Rtnl::open();
  if (!host) return;
  for (const Endpoint& ep : net.endpoints) {
    (void)host->delete_link(host_veth_name(id, ep.slot));
    (void)host->delete_link(tap_name(id, ep.slot));
  }
}

Result<UniqueFd> open_tap(const std::string& name) {
  UniqueFd fd = TRY(open_path("/dev/net/tun", O_RDWR | O_CLOEXEC));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return fail(sys_error("make the tap", name));
  return fd;
}

Result<UniqueFd> make_tap(const std::string& id, const Endpoint& ep) {
  std::string name = tap_name(id, ep.slot);
  UniqueFd fd = TRY(open_tap(name));
  Rtnl host = TRY(Rtnl::open());
  TRYV(host.set_master(name, ep.bridge));
  TRYV(host.set_up(name));
  return fd;
}

Result<void> publish_ports(const std::string& id, const ContainerNetwork& net) {
  if (net.ports.empty() || net.endpoints.empty()) return unpublish_ports(id);
  const std::string to = net.endpoints[0].address.str();
  std::string rules;
  for (const PortMapping& p : net.ports) {
    std::string daddr = p.host_ip.empty() ? "" : "ip daddr " + p.host_ip + " ";
    rules += "  " + daddr + "fib daddr type local " + p.proto + " dport " + std::to_string(p.host_port) +
             " dnat to " + to + ":" + std::to_string(p.container_port) + "\n";
  }
  const std::string t = nft_table_of(id);
  return nft_run("add table " + t + "\ndelete table " + t + "\ntable " + t +
                     " {\n"
                     " chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n" + rules +
                     " }\n"
                     " chain output {\n  type nat hook output priority -100; policy accept;\n" + rules +
                     " }\n"
                     "}\n",
                 "publish the ports of " + id.substr(0, 12));
}

Result<void> unpublish_ports(const std::string& id) { return nft_delete_table(nft_table_of(id)); }

Result<uint16_t> pick_host_port(const std::string& host_ip, const std::string& proto) {
  UniqueFd s(::socket(AF_INET, (proto == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!s) return fail(sys_error("pick a host port"));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = host_ip.empty() ? INADDR_ANY : htonl(TRY(Ipv4::parse(host_ip)).value);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return fail(sys_error("pick a host port"));
  return ntohs(a.sin_port);
}

bool host_port_in_use(const std::string& host_ip, uint16_t port, const std::string& proto) {
  UniqueFd s(::socket(AF_INET, (proto == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!s) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  auto ip = host_ip.empty() ? Result<Ipv4>(Ipv4{}) : Ipv4::parse(host_ip);
  a.sin_addr.s_addr = htonl(ip ? ip->value : 0);
  return ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == EADDRINUSE;
}

}  // namespace isola
