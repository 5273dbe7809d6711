#include "vm/vm_network.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace isola {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint32_t to_host(const Ipv4Bytes& ip) {
  return static_cast<uint32_t>(ip[0]) << 24 | static_cast<uint32_t>(ip[1]) << 16 |
         static_cast<uint32_t>(ip[2]) << 8 | ip[3];
}

uint32_t prefix_mask(unsigned length) { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }

Error network_error(std::string_view what, std::string detail) {
  return make_error("check network", std::string(what), std::move(detail));
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac{};
  bool ok = text.size() == 17;
  for (size_t i = 0; ok && i < 6; ++i) {
    int hi = hex_value(text[i * 3]), lo = hex_value(text[i * 3 + 1]);
    ok = hi >= 0 && lo >= 0 && (i == 5 || text[i * 3 + 2] == ':');
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok) return fail(network_error(text, "a MAC address is six hex pairs separated by ':'"));
  if (mac[0] & 1) return fail(network_error(text, "the MAC address is a multicast address"));
  if (mac == MacAddress{}) return fail(network_error(text, "the MAC address is all zeros"));
  return mac;
}

Result<Ipv4Bytes> parse_ipv4(std::string_view text) {
  // inet_pton needs a terminated string; anything longer is not an address.
  char buf[INET_ADDRSTRLEN];
  Ipv4Bytes ip{};
  if (text.size() >= sizeof buf) return fail(network_error(text.substr(0, 32), "not an IPv4 address"));
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (::inet_pton(AF_INET, buf, ip.data()) != 1) return fail(network_error(text, "not an IPv4 address"));
  return ip;
}

Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos)
    return fail(network_error(text, "give the address with its prefix length, as in 10.88.0.5/16"));
  Ipv4Prefix p;
  p.address = TRY(parse_ipv4(text.substr(0, slash)));
  std::string_view len = text.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string_view::npos)
    return fail(network_error(text, "the prefix length is not a number"));
  p.length = 0;
  for (char c : len) p.length = p.length * 10 + static_cast<unsigned>(c - '0');
  if (p.length < 1 || p.length > 30) return fail(network_error(text, "the prefix length must be 1-30"));
  uint32_t a = to_host(p.address), mask = prefix_mask(p.length);
  if (p.address[0] == 0 || p.address[0] == 127 || p.address[0] >= 224)
    return fail(network_error(text, "not a unicast host address"));
  if ((a & ~mask) == 0 || (a & ~mask) == ~mask)
    return fail(network_error(text, "that is the subnet's network or broadcast address"));
  return p;
}

Result<NicConfig> parse_nic_config(std::string_view mac, std::string_view address, std::string_view gateway) {
  NicConfig nic;
  nic.mac = TRY(parse_mac(mac));
  nic.address = TRY(parse_ipv4_prefix(address));
  nic.gateway = TRY(parse_ipv4(gateway));
  uint32_t mask = prefix_mask(nic.address.length);
  uint32_t a = to_host(nic.address.address), g = to_host(nic.gateway);
  if ((a & mask) != (g & mask))
    return fail(network_error(gateway, "the gateway is outside the subnet of " + std::string(address)));
  if (g == a) return fail(network_error(gateway, "the gateway is the guest's own address"));
  if ((g & ~mask) == 0 || (g & ~mask) == ~mask)
    return fail(network_error(gateway, "the gateway is the subnet's network or broadcast address"));
  return nic;
}

Result<void> check_interface_name(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..")
    return fail(network_error(name.substr(0, 32), "an interface name is 1-15 characters"));
  for (char c : name)
    if (c == '/' || c == ':' || c == ',' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return fail(network_error(name, "an interface name has no '/', ':', ',' or whitespace"));
  return {};
}

Result<void> check_vm_network(const VmNetwork& net) {
  TRYV(check_interface_name(net.tap));
  TRYV(parse_nic_config(net.mac, net.address, net.gateway));
  return {};
}

std::string mac_for_container(std::string_view id) {
  MacAddress mac{0x02, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < 5 && i * 2 + 1 < id.size(); ++i) {
    int hi = hex_value(id[i * 2]), lo = hex_value(id[i * 2 + 1]);
    mac[i + 1] = static_cast<uint8_t>((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
  }
  return format_mac(mac);
}

std::string format_mac(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return buf;
}

std::string format_ipv4(const Ipv4Bytes& ip) {
  char buf[INET_ADDRSTRLEN];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
  return buf;
}

}  // namespace isola
