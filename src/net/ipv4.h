// IPv4 addresses and subnets as isola's networks use them: parsing with
// errors that name the text, and the arithmetic the address allocator needs.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace isola {

struct Ipv4 {
  uint32_t value = 0;  // host byte order

  static Result<Ipv4> parse(const std::string& text);
  std::string str() const;
  bool operator==(const Ipv4&) const = default;
};

struct Ipv4Net {
  Ipv4 base;         // the network address (host bits zero)
  unsigned prefix = 0;

  // "10.88.0.0/16"; the host bits must be zero.
  static Result<Ipv4Net> parse(const std::string& text);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool contains(Ipv4 a) const { return (a.value & mask()) == base.value; }
  bool overlaps(const Ipv4Net& o) const;
  // Host addresses: base+1 .. broadcast-1.
  Ipv4 host(uint32_t n) const { return Ipv4{base.value + n}; }
  uint32_t size() const { return prefix == 0 ? 0xffffffffu : uint32_t{1} << (32 - prefix); }
  bool operator==(const Ipv4Net&) const = default;
};

}  // namespace isola
