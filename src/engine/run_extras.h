// What the docker flags of run/create that isola added later (--add-host,
// --dns*, --ulimit, --shm-size, --group-add, --sysctl, --device, the
// working directory, memory and CPU settings, stop signal and timeout)
// change in the container: its spec, its /etc/hosts and /etc/resolv.conf,
// and what the record keeps of them for inspect, stop and restart.
#pragma once

#include <string>

#include "common/error.h"
#include "common/json.h"
#include "engine/container_store.h"
#include "engine/options.h"
#include "engine/spec_builder.h"
#include "net/network.h"
#include "spec/spec.h"

namespace isola {

// Adds these flags' values to the record's options (docker's HostConfig
// and Config names: ExtraHosts, Dns, Ulimits, StopTimeout, ...).
void add_extra_options_json(const RunOptions& o, Json& j);

// --add-host NAME:host-gateway names the default bridge's gateway, the
// host as containers reach it.
Result<void> resolve_host_gateway(NetworkStore& networks, RunOptions& o);

// The /etc/hosts lines of --add-host, from the record ("ADDR\tNAME\n"...).
std::string extra_host_lines(const ContainerRecord& rec);

// --dns, --dns-search, --dns-option replace those lines of resolv.conf;
// --add-host lines go into a hosts file the network code does not write.
Result<void> apply_dns_flags(const std::string& etc_dir, const ContainerRecord& rec, const RunOptions& o,
                             const std::string& network_mode);

// rlimits, /dev/shm's size, extra groups, sysctls, devices, memory and
// CPU settings into the spec; creates a missing working directory.
Result<void> apply_extra_flags(RuntimeSpec& spec, const RunOptions& o, const SpecInputs& in);

}  // namespace isola
