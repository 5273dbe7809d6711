// Route netlink (rtnetlink) requests for the links, addresses and routes of
// container networks: bridges, veth pairs, moving a link into a network
// namespace. One socket works in the network namespace it was opened in.
// Every request waits for the kernel's acknowledgement.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "net/ipv4.h"

namespace isola {

struct LinkEntry {
  int index = 0;
  std::string name;
  std::string mac;   // "xx:xx:…", "" without a hardware address
  bool loopback = false;
  int master = 0;    // the bridge it is attached to (0: none)
  std::string alias;
};

struct AddressEntry {
  int index = 0;  // the link's
  Ipv4 address;
  unsigned prefix = 0;
};

class Rtnl {
 public:
  // A socket in the caller's current network namespace.
  static Result<Rtnl> open();

  // The index of link `name`, or 0 if there is none.
  Result<int> link_index(const std::string& name);
  // Whether link `name` exists and is up.
  Result<bool> link_up(const std::string& name);
  Result<void> add_bridge(const std::string& name);
  // A veth pair: `name` here, `peer` in the network namespace `peer_netns_fd`.
  Result<void> add_veth(const std::string& name, const std::string& peer, int peer_netns_fd);
  Result<void> set_up(const std::string& name);
  Result<void> set_master(const std::string& name, const std::string& master);
  Result<void> set_mac(const std::string& name, const std::string& mac);
  Result<void> set_alias(const std::string& name, const std::string& alias);
  // Whether the bridge learns the source addresses of frames entering at port `name`.
  Result<void> set_port_learning(const std::string& name, bool learning);
  // Deletes a link; a link that does not exist is not an error.
  Result<void> delete_link(const std::string& name);
  // `address` on `name`, with the subnet's prefix length.
  Result<void> add_address(const std::string& name, Ipv4 address, unsigned prefix);
  Result<void> add_default_route(Ipv4 gateway);
  Result<void> delete_address(const std::string& name, Ipv4 address, unsigned prefix);

  // Every link, every IPv4 address, and the gateway of the main table's
  // IPv4 default route (none: nullopt).
  Result<std::vector<LinkEntry>> links();
  Result<std::vector<AddressEntry>> ipv4_addresses();
  Result<std::optional<Ipv4>> default_gateway();

 private:
  explicit Rtnl(UniqueFd fd) : fd_(std::move(fd)) {}
  using ReplyFn = std::function<void(const nlmsghdr*)>;
  Result<void> request(void* msg, size_t len, const std::string& what, const ReplyFn& on_reply = nullptr);
  Result<int> require_index(const std::string& name);
  // The link's header (index 0: no such link).
  Result<struct ifinfomsg> get_link(const std::string& name);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

// "02:42:0a:58:00:02" → 6 bytes; false when malformed.
bool mac_bytes(const std::string& text, unsigned char out[6]);
std::string mac_text(const unsigned char bytes[6]);

}  // namespace isola
