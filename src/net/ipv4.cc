#include "net/ipv4.h"

#include <arpa/inet.h>

#include <charconv>

namespace isola {

Result<Ipv4> Ipv4::parse(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1)
    return fail(make_error("parse address", text, "not an IPv4 address like 10.88.0.2"));
  return Ipv4{ntohl(a.s_addr)};
}

std::string Ipv4::str() const {
  in_addr a{htonl(value)};
  char buf[INET_ADDRSTRLEN];
  return ::inet_ntop(AF_INET, &a, buf, sizeof buf);
}

Result<Ipv4Net> Ipv4Net::parse(const std::string& text) {
  auto slash = text.find('/');
  auto bad = [&](const char* why) { return fail(make_error("parse subnet", text, why)); };
  if (slash == std::string::npos) return bad("not a subnet like 10.88.0.0/16");
  Ipv4Net n;
  n.base = TRY(Ipv4::parse(text.substr(0, slash)));
  std::string len = text.substr(slash + 1);
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n.prefix);
  if (ec != std::errc() || end != len.data() + len.size() || len.empty() || n.prefix > 32)
    return bad("the prefix length must be 0 to 32");
  if ((n.base.value & ~n.mask()) != 0) return bad("the address has host bits set; give the network address");
  return n;
}

std::string Ipv4Net::str() const { return base.str() + "/" + std::to_string(prefix); }

bool Ipv4Net::overlaps(const Ipv4Net& o) const {
  unsigned p = prefix < o.prefix ? prefix : o.prefix;
  uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (base.value & m) == (o.base.value & m);
}

}  // namespace isola
