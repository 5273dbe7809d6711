#include "net/netns_takeover.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "common/fs.h"
#include "common/log.h"
#include "common/ns_switch.h"
#include "net/endpoint.h"
#include "net/netlink.h"

namespace isola {

namespace {

// The interface's MAC while the guest has its own: locally administered,
// and different from the guest's in the last byte.
std::string moved_mac_of(const std::string& mac) {
  unsigned char b[6];
  if (!mac_bytes(mac, b)) return "02:00:00:00:00:01";
  b[0] = static_cast<unsigned char>((b[0] | 0x02) & 0xfe);
  b[5] ^= 0xff;
  return mac_text(b);
}

Error refused(const std::string& netns, const std::string& why) {
  return make_error("join network namespace", netns, why);
}

Result<void> restore(Rtnl& rtnl, const NetnsTakeover& t);

// The namespace's links, after giving back what a VM that is gone left
// taken: its tap went with QEMU's last descriptor, and the bridge's alias
// holds what the namespace lent. A live VM's tap is still there.
Result<std::vector<LinkEntry>> links_after_reclaim(Rtnl& rtnl, const std::string& netns) {
  std::vector<LinkEntry> links = TRY(rtnl.links());
  auto named = [&](const char* name) {
    return std::find_if(links.begin(), links.end(), [&](const LinkEntry& l) { return l.name == name; });
  };
  if (named(kTakeoverTap) != links.end())
    return fail(refused(netns, "another VM container has its network (one VM per network namespace)"));
  auto bridge = named(kTakeoverBridge);
  if (bridge == links.end()) return links;
  Json lent = TRY(parse_json(bridge->alias, netns + ": the alias of " + kTakeoverBridge));
  NetnsTakeover old = TRY(NetnsTakeover::from_json(lent));
  TRYV(restore(rtnl, old));
  return rtnl.links();
}

// The namespace's one configured interface, read through `rtnl`.
Result<std::optional<NetnsTakeover>> find_interface(Rtnl& rtnl, const std::string& netns) {
  std::vector<LinkEntry> links = TRY(links_after_reclaim(rtnl, netns));
  std::optional<NetnsTakeover> found;
  for (const AddressEntry& a : TRY(rtnl.ipv4_addresses())) {
    auto link = std::find_if(links.begin(), links.end(), [&](const LinkEntry& l) { return l.index == a.index; });
    if (link == links.end() || link->loopback) continue;
    if (found)
      return fail(refused(netns, "it has more than one configured interface (" + found->link + ", " + link->name +
                                     "); a VM takes over exactly one"));
    if (link->mac.empty()) return fail(refused(netns, link->name + " has no MAC address to give the guest"));
    found = NetnsTakeover{netns, link->name, link->mac, moved_mac_of(link->mac), a.address, a.prefix, {}};
  }
  if (found) found->gateway = TRY(rtnl.default_gateway());
  return found;
}

// Lends the interface to the guest: bridge, tap, the address off.
Result<void> lend(Rtnl& rtnl, const NetnsTakeover& t) {
  TRYV(rtnl.add_bridge(kTakeoverBridge));
  Json lent = t.to_json();
  lent.erase("netns");  // the alias lives in the namespace; 255 bytes at most
  TRYV(rtnl.set_alias(kTakeoverBridge, lent.dump()));
  TRYV(rtnl.delete_address(t.link, t.address, t.prefix));
  TRYV(rtnl.set_mac(t.link, t.moved_mac));
  TRYV(rtnl.set_master(t.link, kTakeoverBridge));
  TRYV(rtnl.set_master(kTakeoverTap, kTakeoverBridge));
  // The guest's frames can come back in through the interface (a CNI
  // bridge in hairpin mode floods a broadcast back out of the port it came
  // in by): learning there would move the guest's address away from its
  // tap. The guest's address is only ever learnt at the tap.
  TRYV(rtnl.set_port_learning(t.link, false));
  for (const char* name : {kTakeoverBridge, kTakeoverTap}) TRYV(rtnl.set_up(name));
  return rtnl.set_up(t.link);
}

// In the namespace: gives the interface its configuration back.
Result<void> restore(Rtnl& rtnl, const NetnsTakeover& t) {
  TRYV(rtnl.delete_link(kTakeoverTap));
  TRYV(rtnl.delete_link(kTakeoverBridge));
  if (TRY(rtnl.link_index(t.link)) == 0) return {};  // the pod's veth is gone already
  TRYV(rtnl.set_mac(t.link, t.mac));
  TRYV(rtnl.set_up(t.link));
  if (auto r = rtnl.add_address(t.link, t.address, t.prefix); !r && r.error().err != EEXIST) return r;
  if (t.gateway && !TRY(rtnl.default_gateway()))
    if (auto r = rtnl.add_default_route(*t.gateway); !r && r.error().err != EEXIST) return r;
  return {};
}

}  // namespace

Json NetnsTakeover::to_json() const {
  Json j = {{"netns", netns}, {"link", link},     {"mac", mac},
            {"moved_mac", moved_mac}, {"address", address.str()}, {"prefix", prefix}};
  if (gateway) j["gateway"] = gateway->str();
  return j;
}

Result<NetnsTakeover> NetnsTakeover::from_json(const Json& j) {
  NetnsTakeover t;
  t.netns = json_string_or(j, "netns");
  t.link = TRY(json_string(j, "link", "takeover record"));
  t.mac = TRY(json_string(j, "mac", "takeover record"));
  t.moved_mac = TRY(json_string(j, "moved_mac", "takeover record"));
  t.address = TRY(Ipv4::parse(TRY(json_string(j, "address", "takeover record"))));
  t.prefix = static_cast<unsigned>(TRY(json_int(j, "prefix", "takeover record")));
  if (std::string gw = json_string_or(j, "gateway"); !gw.empty()) t.gateway = TRY(Ipv4::parse(gw));
  return t;
}

Result<std::optional<NetnsTakeover>> take_over_netns(const std::string& netns, UniqueFd& tap) {
  UniqueFd ns = TRY(open_path(netns, O_RDONLY));
  NsSwitch visit = TRY(NsSwitch::enter(ns.get(), CLONE_NEWNET, netns));
  Rtnl rtnl = TRY(Rtnl::open());
  std::optional<NetnsTakeover> t = TRY(find_interface(rtnl, netns));
  if (!t) return t;
  if (!t->gateway)
    return fail(refused(netns, t->link + " has no default route; the guest's network needs a gateway"));
  // Opened here, the tap is made in this namespace.
  tap = TRY(open_tap(kTakeoverTap));
  if (auto lent = lend(rtnl, *t); !lent) {
    tap.reset();
    (void)restore(rtnl, *t);
    return fail(lent.error());
  }
  return t;
}

Result<void> give_back_netns(const NetnsTakeover& t) {
  UniqueFd ns(::open(t.netns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return errno == ENOENT ? Result<void>{} : fail(sys_error("open", t.netns));
  NsSwitch visit = TRY(NsSwitch::enter(ns.get(), CLONE_NEWNET, t.netns));
  Rtnl rtnl = TRY(Rtnl::open());
  return restore(rtnl, t);
}

Result<void> record_takeover(const std::string& path, const NetnsTakeover& t) {
  return write_file_atomic(path, t.to_json().dump() + "\n", 0600);
}

void give_back_recorded(const std::string& path) {
  auto text = read_file(path, 1 << 16);
  if (!text) return;
  auto t = [&]() -> Result<NetnsTakeover> { return NetnsTakeover::from_json(TRY(parse_json(*text, path))); }();
  if (!t) {
    log_debug("network namespace record {}: {}", path, t.error().message());
  } else if (auto r = give_back_netns(*t); !r) {
    log_debug("give back {}: {}", t->netns, r.error().message());
    return;  // kept: a later cleanup may succeed
  }
  ::unlink(path.c_str());
}

}  // namespace isola
