#include "net/network.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "common/fs.h"
#include "net/netlink.h"
#include "net/nft.h"

namespace isola {

namespace {

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  if (!std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// The IPv4 routes of the current network namespace, as subnets.
std::vector<Ipv4Net> routed_subnets() {
  std::vector<Ipv4Net> out;
  auto text = read_file("/proc/net/route", 1u << 20);
  if (!text) return out;
  std::istringstream lines(*text);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    char iface[64];
    unsigned dest, gw, flags, refcnt, use, metric, mask;
    if (std::sscanf(line.c_str(), "%63s %x %x %x %u %u %u %x", iface, &dest, &gw, &flags, &refcnt, &use, &metric,
                    &mask) != 8)
      continue;
    if (mask == 0) continue;  // the default route overlaps everything
    uint32_t m = __builtin_bswap32(mask);  // /proc/net/route is in network order, printed as a host int
    Ipv4Net n;
    n.base.value = __builtin_bswap32(dest) & m;
    n.prefix = static_cast<unsigned>(__builtin_popcount(m));
    out.push_back(n);
  }
  return out;
}

}  // namespace

std::string NetworkConfig::nft_table() const { return "ip isola-n-" + id.substr(0, 12); }

Json NetworkConfig::to_json() const {
  return {{"name", name},          {"id", id},           {"bridge", bridge}, {"subnet", subnet.str()},
          {"gateway", gateway.str()}, {"created_ns", created_ns}, {"labels", labels}};
}

Result<NetworkConfig> NetworkConfig::from_json(const Json& j) {
  const std::string what = "network.json";
  NetworkConfig n;
  n.name = TRY(json_string(j, "name", what));
  n.id = TRY(json_string(j, "id", what));
  n.bridge = TRY(json_string(j, "bridge", what));
  n.subnet = TRY(Ipv4Net::parse(TRY(json_string(j, "subnet", what))));
  n.gateway = TRY(Ipv4::parse(TRY(json_string(j, "gateway", what))));
  n.created_ns = json_int_or(j, "created_ns", 0);
  if (auto it = j.find("labels"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) n.labels[k] = v.get<std::string>();
  if (n.id.size() != 64 || !n.subnet.contains(n.gateway))
    return fail(make_error("read", what, "the network's id or gateway is invalid"));
  return n;
}

Result<NetworkStore> NetworkStore::open(const std::string& root) {
  std::string dir = path_join(root, "networks");
  TRYV(mkdir_p(dir, 0700));
  return NetworkStore(dir);
}

std::string NetworkStore::net_dir(const NetworkConfig& n) const { return path_join(dir_, n.id); }

Result<std::vector<NetworkConfig>> NetworkStore::list() {
  std::vector<NetworkConfig> out;
  for (const std::string& entry : TRY(list_dir(dir_))) {
    if (entry.size() != 64) continue;
    auto text = read_file(path_join(path_join(dir_, entry), "network.json"), 1u << 20);
    if (!text) continue;  // being made or removed
    auto j = parse_json(*text, "network.json");
    if (!j) continue;
    auto n = NetworkConfig::from_json(*j);
    if (n) out.push_back(std::move(*n));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_ns < b.created_ns; });
  return out;
}

Result<Ipv4Net> NetworkStore::free_subnet() {
  std::vector<Ipv4Net> taken = routed_subnets();
  for (const NetworkConfig& n : TRY(list())) taken.push_back(n.subnet);
  // 10.87.0.0/16 down to 10.64.0.0/16, then 172.31 down to 172.16.
  std::vector<Ipv4Net> candidates;
  for (unsigned b = 87; b >= 64; --b) candidates.push_back({Ipv4{(10u << 24) | (b << 16)}, 16});
  for (unsigned b = 31; b >= 16; --b) candidates.push_back({Ipv4{(172u << 24) | (b << 16)}, 16});
  for (const Ipv4Net& c : candidates)
    if (std::none_of(taken.begin(), taken.end(), [&](const Ipv4Net& t) { return t.overlaps(c); })) return c;
  return fail(make_error("choose a subnet", "", "every candidate clashes with a route; give --subnet"));
}

Result<NetworkConfig> NetworkStore::make(const std::string& name, const std::string& subnet,
                                         const std::string& bridge, const std::map<std::string, std::string>& labels) {
  FileLock lock = TRY(FileLock::acquire(path_join(dir_, ".lock"), FileLock::Mode::exclusive));
  for (const NetworkConfig& n : TRY(list()))
    if (n.name == name) return fail(make_error("create network", name, "a network with that name exists"));
  NetworkConfig n;
  n.name = name;
  n.id = random_hex(64);
  n.subnet = subnet.empty() ? TRY(free_subnet()) : TRY(Ipv4Net::parse(subnet));
  if (n.subnet.prefix > 30) return fail(make_error("create network", subnet, "the subnet must be /30 or larger"));
  for (const NetworkConfig& o : TRY(list()))
    if (o.subnet.overlaps(n.subnet))
      return fail(make_error("create network", n.subnet.str(), "overlaps network " + o.name + " (" + o.subnet.str() + ")"));
  n.gateway = n.subnet.host(1);
  n.bridge = bridge.empty() ? "isola-" + n.id.substr(0, 8) : bridge;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  n.created_ns = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  n.labels = labels;
  std::string d = net_dir(n);
  TRYV(mkdir_p(path_join(d, "leases"), 0700));
  TRYV(write_file_atomic(path_join(d, "network.json"), n.to_json().dump(2) + "\n", 0600));
  return n;
}

Result<NetworkConfig> NetworkStore::create(const std::string& name, const std::string& subnet,
                                           const std::map<std::string, std::string>& labels) {
  if (!valid_name(name) || name == "none" || name == "host" || name == kDefaultNetwork || name.starts_with("container"))
    return fail(make_error("create network", name,
                           "network names use letters, digits, '-', '_' and '.', and cannot be none, host, bridge "
                           "or container"));
  return make(name, subnet, "", labels);
}

Result<NetworkConfig> NetworkStore::get(const std::string& name_or_id) {
  std::vector<NetworkConfig> all = TRY(list());
  for (const NetworkConfig& n : all)
    if (n.name == name_or_id) return n;
  std::vector<const NetworkConfig*> by_id;
  if (name_or_id.size() >= 3)
    for (const NetworkConfig& n : all)
      if (n.id.starts_with(name_or_id)) by_id.push_back(&n);
  if (by_id.size() == 1) return *by_id[0];
  if (by_id.size() > 1) return fail(make_error("find network", name_or_id, "the id prefix matches several networks"));
  if (name_or_id == kDefaultNetwork) {
    auto made = make(kDefaultNetwork, "", "isola0", {});
    if (made) return made;
    // Someone else made it meanwhile.
    for (const NetworkConfig& n : TRY(list()))
      if (n.name == name_or_id) return n;
    return fail(made.error());
  }
  return fail(make_error("find network", name_or_id, "no such network; see isola network ls"));
}

Result<void> NetworkStore::remove(const NetworkConfig& net) {
  auto held = TRY(leases(net));
  if (!held.empty())
    return fail(make_error("remove network", net.name,
                           std::to_string(held.size()) + " container(s) use it; remove them or disconnect them first"));
  TRYV(tear_down_network(net));
  return remove_tree(net_dir(net));
}

Result<Ipv4> NetworkStore::lease(const NetworkConfig& net, const std::string& container_id) {
  std::string dir = path_join(net_dir(net), "leases");
  TRYV(mkdir_p(dir, 0700));
  std::map<std::string, std::string> held = TRY(leases(net));
  for (const auto& [addr, id] : held)
    if (id == container_id) return Ipv4::parse(addr);
  uint32_t last = net.subnet.size() - 2;  // below the broadcast address
  for (uint32_t i = 2; i <= last; ++i) {
    Ipv4 a = net.subnet.host(i);
    std::string name = a.str();
    if (held.contains(name)) continue;
    std::string path = path_join(dir, name);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) return fail(sys_error("lease an address", path));
    UniqueFd f(fd);
    if (::write(fd, container_id.data(), container_id.size()) != static_cast<ssize_t>(container_id.size()))
      return fail(sys_error("lease an address", path));
    return a;
  }
  return fail(make_error("lease an address", net.name, "every address of " + net.subnet.str() + " is taken"));
}

Result<void> NetworkStore::release(const NetworkConfig& net, const std::string& container_id) {
  for (const auto& [addr, id] : TRY(leases(net))) {
    std::string path = path_join(path_join(net_dir(net), "leases"), addr);
    // A lease being written has no id yet: it is not ours.
    if (id == container_id && ::unlink(path.c_str()) != 0 && errno != ENOENT)
      return fail(sys_error("release the address", path));
  }
  return {};
}

void NetworkStore::sweep_leases(const std::function<bool(const std::string& id)>& exists) {
  auto all = list();
  if (!all) return;
  for (const NetworkConfig& net : *all) {
    auto held = leases(net);
    if (!held) continue;
    for (const auto& [addr, id] : *held) {
      std::string path = path_join(path_join(net_dir(net), "leases"), addr);
      // An empty lease is one being written, or one whose writer died
      // between creating and writing it: that one goes after a minute.
      struct stat st;
      bool abandoned = id.empty() && ::stat(path.c_str(), &st) == 0 && ::time(nullptr) - st.st_mtime > 60;
      if ((id.size() == 64 && !exists(id)) || abandoned) (void)::unlink(path.c_str());
    }
  }
}

Result<std::map<std::string, std::string>> NetworkStore::leases(const NetworkConfig& net) {
  std::map<std::string, std::string> out;
  std::string dir = path_join(net_dir(net), "leases");
  if (!is_directory(dir)) return out;
  for (const std::string& entry : TRY(list_dir(dir))) {
    auto id = read_file(path_join(dir, entry), 256);
    out[entry] = id ? *id : "";
  }
  return out;
}

// In an order that makes the bridge being up mean everything is done, so
// that the common case, a network already up, costs one netlink request.
Result<void> bring_up_network(const NetworkConfig& net) {
  Rtnl rt = TRY(Rtnl::open());
  if (TRY(rt.link_up(net.bridge))) return {};
  const std::string s = net.subnet.str(), br = "\"" + net.bridge + "\"", t = net.nft_table();
  TRYV(nft_run("add table " + t + "\ndelete table " + t + "\ntable " + t +
                   " {\n"
                   " chain postrouting {\n"
                   "  type nat hook postrouting priority srcnat; policy accept;\n"
                   "  ip saddr " + s + " ip daddr != " + s + " masquerade\n"
                   "  oifname " + br + " ip saddr 127.0.0.0/8 masquerade\n"
                   "  oifname " + br + " ip saddr " + s + " ct status dnat masquerade\n"
                   " }\n"
                   // route_localnet lets packets to 127.0.0.0/8 in through the
                   // bridge: only the replies of connections the host made to
                   // published ports may come (CVE-2020-8558).
                   " chain input {\n"
                   "  type filter hook input priority filter; policy accept;\n"
                   "  iifname " + br + " ip daddr 127.0.0.0/8 ct state != { established, related } drop\n"
                   " }\n"
                   " chain forward {\n"
                   "  type filter hook forward priority filter; policy accept;\n"
                   "  iifname " + br + " accept\n"
                   "  oifname " + br + " ct state established,related accept\n"
                   " }\n"
                   "}\n",
               "network " + net.name));
  // Routing between the bridge and the host's other links.
  TRYV(write_file_in_place("/proc/sys/net/ipv4/ip_forward", "1"));
  if (TRY(rt.link_index(net.bridge)) == 0) {
    auto added = rt.add_bridge(net.bridge);
    if (!added && added.error().err != EEXIST) return fail(added.error().context("bring up network " + net.name));
  }
  // DNAT of connections to 127.0.0.1 onto the bridge (published ports).
  TRYV(write_file_in_place("/proc/sys/net/ipv4/conf/" + net.bridge + "/route_localnet", "1"));
  if (auto r = rt.add_address(net.bridge, net.gateway, net.subnet.prefix); !r && r.error().err != EEXIST)
    return fail(r.error().context("bring up network " + net.name));
  return rt.set_up(net.bridge);
}

Result<void> tear_down_network(const NetworkConfig& net) {
  TRYV(nft_delete_table(net.nft_table()));
  Rtnl rt = TRY(Rtnl::open());
  return rt.delete_link(net.bridge);
}

}  // namespace isola
