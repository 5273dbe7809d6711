// A container's place on the networks: its mode, its interfaces (one per
// bridge network, each with a leased address) and its published ports, kept
// in the container's network.json. And the host-side operations that
// give a process-isolated container its network namespace, a VM its tap,
// and publish ports with nftables DNAT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"
#include "net/ipv4.h"

namespace isola {

struct PortMapping {
  std::string host_ip;          // "" = every address of the host
  uint16_t host_port = 0;       // 0 = chosen when the container is created
  uint16_t container_port = 0;
  std::string proto = "tcp";    // tcp | udp

  // -p [hostip:][hostport:]containerport[/tcp|udp]
  static Result<PortMapping> parse(const std::string& text);
  // "80/tcp -> 0.0.0.0:8080", as docker port prints it.
  std::string str() const;
  Json to_json() const;
  static Result<PortMapping> from_json(const Json& j);
};

struct Endpoint {
  unsigned slot = 0;  // eth<slot> in the container, suffix of the host link's name
  std::string network, network_id, bridge;
  Ipv4 address;
  unsigned prefix = 0;
  Ipv4 gateway;
  std::string mac;

  Json to_json() const;
  static Result<Endpoint> from_json(const Json& j);
};

struct ContainerNetwork {
  std::string mode = "none";  // none | host | bridge | container
  std::string container;      // mode container: the id whose namespace is shared
  std::vector<Endpoint> endpoints;
  std::vector<PortMapping> ports;

  Json to_json() const;
  static Result<ContainerNetwork> from_json(const Json& j);
};

// A locally administered MAC derived from the address (02:42:a.b.c.d).
std::string mac_for(Ipv4 address);

// The host-side names of a container's links: veth "iv<id 10><slot>", tap
// "it<id 10><slot>" (15 characters at most, as the kernel wants).
std::string host_veth_name(const std::string& id, unsigned slot);
std::string tap_name(const std::string& id, unsigned slot);

// Gives the network namespace `netns_fd` (a container's, new and empty) lo
// up and, per endpoint, eth<slot> (the peer of a veth on the endpoint's
// bridge) with its address; the default route goes through the first
// endpoint's gateway. The veths go with the namespace. The caller must be
// single-threaded (it enters the namespace for a moment).
Result<void> plug_endpoints(int netns_fd, const std::string& id, const ContainerNetwork& net);

// Adds an endpoint to a running container's namespace (network connect),
// and takes one out again (network disconnect: the veth goes).
Result<void> add_endpoint(int netns_fd, const std::string& id, const Endpoint& ep, bool default_route = false);
Result<void> remove_endpoint(const std::string& id, const Endpoint& ep);

// Deletes the host side of every endpoint (veth pairs, taps) at once, not
// when the kernel gets round to freeing the namespace; missing ones are fine.
void unplug_endpoints(const std::string& id, const ContainerNetwork& net);

// A tap named `name` in the caller's network namespace (down, on no
// bridge); it lasts while the returned descriptor is open.
Result<UniqueFd> open_tap(const std::string& name);
// A tap for a VM's endpoint, on its bridge and up; it lasts while the
// returned descriptor (handed to QEMU) is open.
Result<UniqueFd> make_tap(const std::string& id, const Endpoint& ep);

// The DNAT rules of the container's published ports (table "ip
// isola-c-<id 12>"), towards its first endpoint; replaced if present.
Result<void> publish_ports(const std::string& id, const ContainerNetwork& net);
// Removes them; no error if there are none.
Result<void> unpublish_ports(const std::string& id);

// A free host port for `proto`, as the kernel picks an ephemeral one.
Result<uint16_t> pick_host_port(const std::string& host_ip, const std::string& proto);
// Whether a host process listens on (or is bound to) the port.
bool host_port_in_use(const std::string& host_ip, uint16_t port, const std::string& proto);

}  // namespace isola
