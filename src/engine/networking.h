// The engine's side of container networks: turning --network and -p into a
// container's network.json (leased addresses, chosen host ports), the
// /etc/hosts and /etc/resolv.conf a container on a network gets, keeping
// the hosts files of a user-defined network's containers up to date (how
// containers find each other by name), and giving leases back on removal.
#pragma once

#include <string>

#include "common/error.h"
#include "engine/container_store.h"
#include "engine/options.h"
#include "net/endpoint.h"
#include "net/network.h"

namespace isola {

// Leases an address on each network asked for and fixes the host ports.
// Nothing is leased when it fails.
Result<ContainerNetwork> plan_network(NetworkStore& networks, const ContainerStore& containers,
                                      const RunOptions& opts, const std::string& id);
// Gives back what plan_network leased.
void release_network(NetworkStore& networks, const ContainerNetwork& net, const std::string& id);
// After the container's removal: its leases back, its name out of the
// other containers' hosts files.
void forget_container_network(const ContainerStore& containers, const std::string& id, const ContainerNetwork& net);

// The container's /etc/hosts: localhost, its own name and address, and on
// user-defined networks every other container's name and address.
Result<void> write_hosts_file(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                              const std::string& hostname, const ContainerNetwork& net);
// Rewrites (in place: they are bind-mounted) the hosts files of every
// container on the user-defined networks of `net`.
void refresh_hosts_files(NetworkStore& networks, const ContainerStore& containers, const ContainerNetwork& net,
                         const std::string& skip_id);

// The host's resolv.conf without loopback name servers, which a container
// in its own network namespace cannot reach.
std::string container_resolv_conf(const std::string& host_resolv);

Result<ContainerNetwork> load_container_network(const ContainerStore& containers, const std::string& id);

// isola network connect / disconnect: a created or stopped container gets
// (or loses) the endpoint at its next start, a running process-isolated one
// at once. A running VM's devices are fixed: stop it first.
Result<void> connect_network(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                             const std::string& network);
Result<void> disconnect_network(NetworkStore& networks, const ContainerStore& containers, const ContainerRecord& rec,
                                const std::string& network);

// Brings up the host side of every network the container is on.
Result<void> bring_up_networks(NetworkStore& networks, const ContainerNetwork& net);

}  // namespace isola
