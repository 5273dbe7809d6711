// Bridge networks: their configuration and address leases in the store
// (<root>/networks/<name>/), and the host side that makes them exist: the
// bridge with the gateway address, and an nftables table with the network's
// outbound NAT. The default network "bridge" (interface isola0) is made on
// first use.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "net/ipv4.h"

namespace isola {

inline constexpr const char* kDefaultNetwork = "bridge";

struct NetworkConfig {
  std::string name;
  std::string id;       // 64 hex
  std::string bridge;   // the host interface: isola0, or isola-<id 8>
  Ipv4Net subnet;
  Ipv4 gateway;         // the bridge's address: the subnet's first host
  int64_t created_ns = 0;
  std::map<std::string, std::string> labels;

  // The nftables table with this network's rules: "ip isola-n-<id 12>".
  std::string nft_table() const;
  Json to_json() const;
  static Result<NetworkConfig> from_json(const Json& j);
};

class NetworkStore {
 public:
  static Result<NetworkStore> open(const std::string& root);

  // A user-defined network; an empty subnet picks a free one.
  Result<NetworkConfig> create(const std::string& name, const std::string& subnet,
                               const std::map<std::string, std::string>& labels);
  // A network by name or id prefix; "bridge" is made if it does not exist yet.
  Result<NetworkConfig> get(const std::string& name_or_id);
  Result<std::vector<NetworkConfig>> list();
  // Refused while a container holds an address on it.
  Result<void> remove(const NetworkConfig& net);

  // Leases: an address per container, kept in a file named after the
  // address (created exclusively), so they survive crashes and two
  // concurrent allocations never get the same one.
  Result<Ipv4> lease(const NetworkConfig& net, const std::string& container_id);
  Result<void> release(const NetworkConfig& net, const std::string& container_id);
  // address → container id
  Result<std::map<std::string, std::string>> leases(const NetworkConfig& net);
  // Drops the leases of containers that no longer exist (a crash between a
  // container's removal and its release), on every network.
  void sweep_leases(const std::function<bool(const std::string& id)>& exists);

 private:
  explicit NetworkStore(std::string dir) : dir_(std::move(dir)) {}
  std::string net_dir(const NetworkConfig& n) const;
  Result<NetworkConfig> make(const std::string& name, const std::string& subnet, const std::string& bridge,
                             const std::map<std::string, std::string>& labels);
  Result<Ipv4Net> free_subnet();

  std::string dir_;
};

// Makes the network's host side exist (idempotent): the bridge, up, with
// the gateway address; IP forwarding; route_localnet on the bridge (for
// ports published on 127.0.0.1); the NAT table.
Result<void> bring_up_network(const NetworkConfig& net);
// Removes the bridge and the table.
Result<void> tear_down_network(const NetworkConfig& net);

}  // namespace isola
