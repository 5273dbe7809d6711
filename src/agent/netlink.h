// A small rtnetlink client for the guest agent, which is static and has no
// libnl: just what configuring a VM's NIC takes (list links, rename one,
// give it an IPv4 address, bring it up, add a default route). Messages are
// built in a fixed buffer with the kernel's NLMSG_*/RTA_* macros; every
// request asks for an acknowledgement and checks it; replies are read into
// a bounded buffer with a deadline, so a kernel that never answers cannot
// hang PID 1. Building and parsing are separate from the socket, for tests.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "vm/vm_network.h"

namespace isola::agent {

// One request under construction. Nothing is written past its buffer: an
// attribute that does not fit marks the message invalid, and Netlink
// refuses to send it.
class NlMessage {
 public:
  static constexpr size_t kCapacity = 512;

  NlMessage(uint16_t type, uint16_t flags, uint32_t seq);

  // The family header that follows nlmsghdr (ifinfomsg, ifaddrmsg, rtmsg):
  // zeroed and counted in the length. Call once, before any attribute.
  template <class T>
  T* family_header() {
    return static_cast<T*>(reserve(sizeof(T)));
  }
  void add_attr(uint16_t type, const void* data, size_t len);
  void add_u32(uint16_t type, uint32_t value) { add_attr(type, &value, sizeof value); }
  void add_string(uint16_t type, std::string_view s);  // with its NUL

  const nlmsghdr* header() const { return reinterpret_cast<const nlmsghdr*>(buf_); }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(buf_), header()->nlmsg_len}; }
  bool valid() const { return valid_; }
  void invalidate() { valid_ = false; }

 private:
  void* reserve(size_t len);
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }

  alignas(NLMSG_ALIGNTO) unsigned char buf_[kCapacity] = {};
  bool valid_ = true;
};

// The requests the agent sends; `seq` numbers them.
NlMessage link_dump_request(uint32_t seq);
NlMessage rename_link_request(uint32_t seq, int index, std::string_view name);
NlMessage set_mac_request(uint32_t seq, int index, const MacAddress& mac);
NlMessage link_up_request(uint32_t seq, int index);
NlMessage add_address_request(uint32_t seq, int index, const Ipv4Prefix& address);
NlMessage default_route_request(uint32_t seq, int index, const Ipv4Bytes& gateway);

struct LinkInfo {
  int index = 0;
  std::string name;
  std::optional<MacAddress> mac;  // IFLA_ADDRESS, when it is six bytes
  unsigned flags = 0;             // IFF_*
};

// What one datagram of replies said.
struct NlReply {
  bool done = false;  // NLMSG_DONE, or the ACK of a request
  std::vector<LinkInfo> links;
};

// Parses one datagram of the kernel's replies to request `seq`: RTM_NEWLINK
// entries of a dump, NLMSG_DONE, or NLMSG_ERROR (an ACK when its error is
// 0; otherwise that errno, as an error naming `what`). Messages for other
// sequence numbers are skipped; a truncated or malformed message is an
// error, never read past.
Result<NlReply> parse_reply(std::string_view data, uint32_t seq, const std::string& what);

class Netlink {
 public:
  static Result<Netlink> open(std::chrono::milliseconds reply_wait = std::chrono::milliseconds(2000));

  Result<std::vector<LinkInfo>> links();
  Result<void> rename_link(int index, std::string_view name);
  Result<void> set_mac(int index, const MacAddress& mac);
  Result<void> set_up(int index);
  Result<void> add_address(int index, const Ipv4Prefix& address);
  Result<void> add_default_route(int index, const Ipv4Bytes& gateway);

 private:
  explicit Netlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // Sends `m` and reads replies until it is done (its ACK, or NLMSG_DONE).
  Result<std::vector<LinkInfo>> transact(const NlMessage& m, const std::string& what);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

// The guest's side of a container network: waits up to `wait` for the NIC
// with `nic.mac` (in a clone of a VM template the one NIC still has the
// template's MAC: it gets the container's), names it eth0, gives it the address, brings it up and
// routes everything else through the gateway. An address or route that
// already exists (a create the host retried) is not an error.
Result<void> configure_nic(const NicConfig& nic, std::chrono::milliseconds wait);

}  // namespace isola::agent
