// A VM-isolated container's network interface: the host tap device that
// carries it and what the guest makes of it (MAC, IPv4 address, gateway).
// The engine, the monitor and the guest agent all check these values with
// the same functions, so what reaches QEMU's command line or the guest's
// rtnetlink has been validated on each side of the agent channel.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

// As vm.json stores it. The host side creates the tap, attaches it to its
// bridge and brings it up before the monitor starts; the monitor only opens
// it (docs/vm-isolation.md).
struct VmNetwork {
  std::string tap;      // host interface name, e.g. "isola-1a2b3c"
  std::string mac;      // the guest NIC's, "02:xx:xx:xx:xx:xx"
  std::string address;  // the guest's IPv4 address with its prefix, "10.88.0.5/16"
  std::string gateway;  // IPv4, inside that subnet, "10.88.0.1"
};

using MacAddress = std::array<uint8_t, 6>;
using Ipv4Bytes = std::array<uint8_t, 4>;  // network byte order

struct Ipv4Prefix {
  Ipv4Bytes address{};
  unsigned length = 0;  // 1..30
};

// The guest side of a VmNetwork, parsed and checked.
struct NicConfig {
  MacAddress mac{};
  Ipv4Prefix address;
  Ipv4Bytes gateway{};
};

// "xx:xx:xx:xx:xx:xx" (hex, either case), a unicast address other than
// all zeros.
Result<MacAddress> parse_mac(std::string_view text);
// Dotted quad, as inet_pton(AF_INET) reads it.
Result<Ipv4Bytes> parse_ipv4(std::string_view text);
// "a.b.c.d/N" with N in 1..30, not the subnet's network or broadcast address.
Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);
// All three, and the gateway must be another host of the address's subnet
// (the guest's default route goes through it without an on-link route).
Result<NicConfig> parse_nic_config(std::string_view mac, std::string_view address, std::string_view gateway);

// A Linux interface name: 1-15 characters, none of '/', ':', whitespace,
// and not "." or "..".
Result<void> check_interface_name(std::string_view name);
// Everything a VmNetwork holds.
Result<void> check_vm_network(const VmNetwork& net);

// A locally administered unicast MAC derived from a container ID (hex):
// "02:" and the ID's first 10 hex digits.
std::string mac_for_container(std::string_view id);

std::string format_mac(const MacAddress& mac);
std::string format_ipv4(const Ipv4Bytes& ip);

}  // namespace isola
