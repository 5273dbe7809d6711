#include "engine/networking.h"

#include <fcntl.h>

#include <algorithm>
#include <sstream>

#include "common/fs.h"
#include "engine/run_extras.h"

namespace isola {

namespace {

std::string network_path(const ContainerStore& containers, const std::string& id) {
  return path_join(containers.dir(id), "network.json");
}

Result<void> save_container_network(const ContainerStore& containers, const std::string& id,
                                    const ContainerNetwork& net) {
  return write_file_atomic(network_path(containers, id), net.to_json().dump(2) + "\n", 0600);
}

bool same_binding(const PortMapping& a, const PortMapping& b) {
  return a.proto == b.proto && a.host_port == b.host_port &&
         (a.host_ip.empty() || b.host_ip.empty() || a.host_ip == b.host_ip);
}

// The ports other containers (not exited) have published.
std::vector<std::pair<std::string, PortMapping>> published_elsewhere(const ContainerStore& containers,
                                                                     const std::string& id) {
  std::vector<std::pair<std::string, PortMapping>> out;
  auto all = containers.list();
  if (!all) return out;
  for (const ContainerRecord& rec : *all) {
    if (rec.id == id || containers.state(rec.id).status == "exited") continue;
    auto net = load_container_network(containers, rec.id);
    if (!net) continue;
    for (const PortMapping& p : net->ports) out.emplace_back(rec.name, p);
  }
  return out;
}

Result<std::vector<PortMapping>> plan_ports(const ContainerStore& containers, const RunOptions& opts,
                                            const std::string& id) {
  std::vector<PortMapping> ports;
  for (const std::string& p : opts.publish) ports.push_back(TRY(PortMapping::parse(p)));
  if (opts.publish_all)
    for (const std::string& e : opts.exposed_ports) {
      PortMapping m = TRY(PortMapping::parse(e));
      bool given = std::any_of(ports.begin(), ports.end(), [&](const PortMapping& p) {
        return p.container_port == m.container_port && p.proto == m.proto;
      });
      if (!given) ports.push_back(m);
    }
  auto taken = published_elsewhere(containers, id);
  for (size_t i = 0; i < ports.size(); ++i) {
    PortMapping& p = ports[i];
    auto clash = [&](const PortMapping& q) -> std::string {
      for (const auto& [name, o] : taken)
        if (same_binding(o, q)) return "container " + name;
      for (size_t k = 0; k < i; ++k)
        if (same_binding(ports[k], q)) return "this container";
      return "";
    };
    if (p.host_port == 0) {
      for (int tries = 0; tries < 64 && p.host_port == 0; ++tries) {
        p.host_port = TRY(pick_host_port(p.host_ip, p.proto));
        if (!clash(p).empty()) p.host_port = 0;
      }
      if (p.host_port == 0) return fail(make_error("publish", p.str(), "found no free host port"));
      continue;
    }
    if (std::string who = clash(p); !who.empty())
      return fail(make_error("publish", p.str(), "the host port is already published by " + who));
    if (host_port_in_use(p.host_ip, p.host_port, p.proto))
      return fail(make_error("publish", p.str(), "a host process uses that port; choose another host port"));
  }
  return ports;
}

}  // namespace

Result<ContainerNetwork> load_container_network(const ContainerStore& containers, const std::string& id) {
  std::string path = network_path(containers, id);
  if (!path_exists(path)) return ContainerNetwork{};
  std::string text = TRY(read_file(path, 1u << 20));
  return ContainerNetwork::from_json(TRY(parse_json(text, path)));
}

Result<ContainerNetwork> plan_network(NetworkStore& networks, const ContainerStore& containers,
                                      const RunOptions& opts, const std::string& id) {
  ContainerNetwork net;
  const std::string& mode = opts.network;
  bool publishing = !opts.publish.empty() || opts.publish_all;
  if (mode == "none" || mode == "host" || mode.starts_with("container:")) {
    if (publishing)
      return fail(make_error("create container", "-p", "publishing ports needs a bridge network (--network bridge)"));
    if (mode.starts_with("container:")) {
      net.mode = "container";
      net.container = TRY(containers.resolve(mode.substr(10))).id;
      if (net.container == id) return fail(make_error("create container", mode, "a container cannot join itself"));
    } else {
      net.mode = mode;
    }
    TRYV(save_container_network(containers, id, net));
    return net;
  }
  NetworkConfig config = TRY(networks.get(mode));
  net.mode = "bridge";
  net.ports = TRY(plan_ports(containers, opts, id));
  Endpoint ep;
  ep.network = config.name;
  ep.network_id = config.id;
  ep.bridge = config.bridge;
  ep.address = TRY(networks.lease(config, id));
  ep.prefix = config.subnet.prefix;
  ep.gateway = config.gateway;
  ep.mac = mac_for(ep.address);
  net.endpoints.push_back(ep);
  auto written = save_container_network(containers, id, net);
  if (!written) {
    release_network(networks, net, id);
    return fail(written.error());
  }
  return net;
}

void release_network(NetworkStore& networks, const ContainerNetwork& net, const std::string& id) {
  for (const Endpoint& ep : net.endpoints)
    if (auto config = networks.get(ep.network_id); config) (void)networks.release(*config, id);
}

void forget_container_network(const ContainerStore& containers, const std::string& id, const ContainerNetwork& net) {
  if (net.endpoints.empty()) return;
  auto networks = NetworkStore::open(containers.root());
  if (!networks) return;
  release_network(*networks, net, id);
  refresh_hosts_files(*networks, containers, net, id);
}

Result<void> write_hosts_file(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                              const std::string& hostname, const ContainerNetwork& net) {
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (net.endpoints.empty()) {
    hosts += "127.0.1.1\t" + hostname + "\n";
  } else {
    hosts += net.endpoints[0].address.str() + "\t" + hostname + (rec.name != hostname ? "\t" + rec.name : "") + "\n";
  }
  for (const Endpoint& ep : net.endpoints) {
    if (ep.network == kDefaultNetwork) continue;  // as docker: names resolve on user-defined networks
    auto config = networks.get(ep.network_id);
    if (!config) continue;
    auto leases = networks.leases(*config);
    if (!leases) continue;
    for (const auto& [addr, peer_id] : *leases) {
      if (peer_id == rec.id || peer_id.size() != 64) continue;
      auto peer = containers.resolve(peer_id);
      if (peer) hosts += addr + "\t" + peer->name + "\t" + peer_id.substr(0, 12) + "\n";
    }
  }
  hosts += extra_host_lines(rec);  // --add-host
  std::string path = path_join(containers.etc_dir(rec.id), "hosts");
  if (path_exists(path)) return write_file_in_place(path, hosts);
  return write_file_atomic(path, hosts, 0644);
}

void refresh_hosts_files(NetworkStore& networks, const ContainerStore& containers, const ContainerNetwork& net,
                         const std::string& skip_id) {
  for (const Endpoint& ep : net.endpoints) {
    if (ep.network == kDefaultNetwork) continue;
    auto config = networks.get(ep.network_id);
    if (!config) continue;
    auto leases = networks.leases(*config);
    if (!leases) continue;
    for (const auto& [addr, peer_id] : *leases) {
      if (peer_id == skip_id || peer_id.size() != 64) continue;
      auto peer = containers.resolve(peer_id);
      auto peer_net = load_container_network(containers, peer_id);
      if (!peer || !peer_net) continue;
      auto hostname = read_file(path_join(containers.etc_dir(peer_id), "hostname"), 4096);
      std::string h = hostname ? *hostname : peer_id.substr(0, 12);
      while (!h.empty() && h.back() == '\n') h.pop_back();
      (void)write_hosts_file(networks, containers, *peer, h, *peer_net);
    }
  }
}

std::string container_resolv_conf(const std::string& host_resolv) {
  std::istringstream in(host_resolv);
  std::string line, out;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    if (key == "nameserver" && (value.starts_with("127.") || value == "::1")) continue;
    out += line + "\n";
  }
  return out;
}

namespace {

// The container's namespace if it is running and connect/disconnect must
// act at once; an empty fd if it is not running.
Result<UniqueFd> running_netns(const ContainerStore& containers, const ContainerRecord& rec, const char* verb) {
  ContainerState st = containers.state(rec.id);
  if (st.status != "running" && st.status != "paused") return UniqueFd();
  if (rec.isolation == Isolation::vm)
    return fail(make_error(verb, rec.name, "a running VM's network devices are fixed; stop the container first"));
  return open_path("/proc/" + std::to_string(st.pid) + "/ns/net", O_RDONLY | O_CLOEXEC);
}

void refresh_own_hosts(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                       const ContainerNetwork& net) {
  auto hostname = read_file(path_join(containers.etc_dir(rec.id), "hostname"), 4096);
  std::string h = hostname ? *hostname : rec.id.substr(0, 12);
  while (!h.empty() && h.back() == '\n') h.pop_back();
  (void)write_hosts_file(networks, containers, rec, h, net);
}

}  // namespace

Result<void> connect_network(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                             const std::string& network) {
  ContainerNetwork net = TRY(load_container_network(containers, rec.id));
  if (net.mode != "bridge")
    return fail(make_error("connect", rec.name, "its --network is " + net.mode + "; only containers on a bridge "
                                                 "network can join more networks"));
  NetworkConfig config = TRY(networks.get(network));
  if (rec.isolation == Isolation::vm && !net.endpoints.empty())
    return fail(make_error("connect", rec.name, "a VM-isolated container has one network interface; disconnect it "
                                                 "from " + net.endpoints[0].network + " first"));
  unsigned slot = 0;
  for (;; ++slot) {
    if (slot > 9) return fail(make_error("connect", rec.name, "a container can be on at most 10 networks"));
    bool used = false;
    for (const Endpoint& e : net.endpoints) {
      if (e.network_id == config.id) return fail(make_error("connect", rec.name, "it is already on " + config.name));
      used = used || e.slot == slot;
    }
    if (!used) break;
  }
  UniqueFd netns = TRY(running_netns(containers, rec, "connect"));
  Endpoint ep;
  ep.slot = slot;
  ep.network = config.name;
  ep.network_id = config.id;
  ep.bridge = config.bridge;
  ep.address = TRY(networks.lease(config, rec.id));
  ep.prefix = config.subnet.prefix;
  ep.gateway = config.gateway;
  ep.mac = mac_for(ep.address);
  auto done = [&]() -> Result<void> {
    if (netns) {
      TRYV(bring_up_network(config));
      TRYV(add_endpoint(netns.get(), rec.id, ep));
    }
    net.endpoints.push_back(ep);
    return save_container_network(containers, rec.id, net);
  }();
  if (!done) {
    if (netns) (void)remove_endpoint(rec.id, ep);
    (void)networks.release(config, rec.id);
    return fail(done.error());
  }
  refresh_own_hosts(networks, containers, rec, net);
  refresh_hosts_files(networks, containers, ContainerNetwork{"bridge", "", {ep}, {}}, rec.id);
  return {};
}

Result<void> disconnect_network(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                                const std::string& network) {
  ContainerNetwork net = TRY(load_container_network(containers, rec.id));
  NetworkConfig config = TRY(networks.get(network));
  auto it = std::find_if(net.endpoints.begin(), net.endpoints.end(),
                         [&](const Endpoint& e) { return e.network_id == config.id; });
  if (it == net.endpoints.end()) return fail(make_error("disconnect", rec.name, "it is not on " + config.name));
  UniqueFd netns = TRY(running_netns(containers, rec, "disconnect"));
  if (netns) TRYV(remove_endpoint(rec.id, *it));
  Endpoint gone = *it;
  net.endpoints.erase(it);
  TRYV(save_container_network(containers, rec.id, net));
  TRYV(networks.release(config, rec.id));
  refresh_own_hosts(networks, containers, rec, net);
  refresh_hosts_files(networks, containers, ContainerNetwork{"bridge", "", {gone}, {}}, rec.id);
  return {};
}

Result<void> bring_up_networks(NetworkStore& networks, const ContainerNetwork& net) {
  for (const Endpoint& ep : net.endpoints) TRYV(bring_up_network(TRY(networks.get(ep.network_id))));
  return {};
}

}  // namespace isola
