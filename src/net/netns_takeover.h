// A VM container whose spec joins a network namespace by path (a
// Kubernetes pod's, which CNI has configured: a veth "eth0" with the pod's
// address and a default route) takes over that namespace's network. The
// guest cannot enter a host namespace, so the namespace lends it its
// interface instead: the interface's IPv4 address leaves it, and its MAC,
// address and gateway become the guest NIC's. A bridge in the namespace
// joins the interface to the VM's tap, so what CNI routes to the pod's
// address reaches the guest, and the guest's traffic leaves as the pod's.
// When the VM is gone the namespace gets its configuration back. The
// bridge's alias holds what the namespace lent, so a VM killed with its
// monitor (its tap goes with QEMU) leaves a namespace the next VM, or any
// cleanup, can restore without another record.
#pragma once

#include <optional>
#include <string>

#include "common/error.h"
#include "common/json.h"
#include "common/unique_fd.h"
#include "net/ipv4.h"

namespace isola {

inline constexpr const char* kTakeoverBridge = "isola-br0";
inline constexpr const char* kTakeoverTap = "isola-tap0";

struct NetnsTakeover {
  std::string netns;      // the namespace's path
  std::string link;       // the interface the guest stands in for
  std::string mac;        // its MAC before: the guest's now
  std::string moved_mac;  // the MAC it has meanwhile
  Ipv4 address;
  unsigned prefix = 0;
  std::optional<Ipv4> gateway;

  std::string guest_address() const { return address.str() + "/" + std::to_string(prefix); }
  Json to_json() const;
  static Result<NetnsTakeover> from_json(const Json& j);
};

// Takes over the namespace at `netns` and opens the VM's tap into `tap`.
// A namespace without a configured interface (only loopback) gives
// nullopt: the VM gets no NIC. More than one such interface, or a
// namespace another VM has taken, is refused. On failure nothing changed.
Result<std::optional<NetnsTakeover>> take_over_netns(const std::string& netns, UniqueFd& tap);

// Gives the namespace its configuration back; a namespace that is gone
// meanwhile (the pod removed) is not an error.
Result<void> give_back_netns(const NetnsTakeover& t);

// The takeover as a record on disk, for whichever cleanup comes first (the
// monitor's, or the runtime's `delete` after the monitor was killed).
Result<void> record_takeover(const std::string& path, const NetnsTakeover& t);
// Gives back what the record at `path` holds and removes it; no record,
// nothing to do.
void give_back_recorded(const std::string& path);

}  // namespace isola
