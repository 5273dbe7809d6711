// isola network create|ls|inspect|rm|connect|disconnect, and isola port.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/networking.h"

namespace isola::cli {

namespace {

struct NetworkArgs {
  std::string name, subnet, container, format = "table", inspect_format;
  std::vector<std::string> names, labels, filters;
  bool quiet = false;
};

Json network_json(NetworkStore& networks, const ContainerStore& containers, const NetworkConfig& n) {
  Json members = Json::object();
  if (auto leases = networks.leases(n); leases)
    for (const auto& [addr, id] : *leases) {
      if (id.size() != 64) continue;
      auto rec = containers.resolve(id);
      members[id] = {{"Name", rec ? rec->name : ""}, {"IPv4Address", addr + "/" + std::to_string(n.subnet.prefix)},
                     {"MacAddress", mac_for(*Ipv4::parse(addr))}};
    }
  return {{"Name", n.name},
          {"Id", n.id},
          {"Created", format_time_ns(n.created_ns)},
          {"Driver", "bridge"},
          {"Interface", n.bridge},
          {"IPAM", {{"Config", Json::array({{{"Subnet", n.subnet.str()}, {"Gateway", n.gateway.str()}}})}}},
          {"Containers", members},
          {"Labels", n.labels}};
}

int cmd_network_create(const Globals& g, const NetworkArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  std::map<std::string, std::string> labels;
  for (const std::string& l : a.labels) {
    auto eq = l.find('=');
    labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  auto n = engine->networks().create(a.name, a.subnet, labels);
  if (!n) return report(n.error());
  record_named_event(g.root, "network", "create", n->id, n->name, {{"type", "bridge"}});
  std::cout << n->id << "\n";
  return 0;
}

int cmd_network_ls(const Globals& g, const NetworkArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  (void)engine->networks().get(kDefaultNetwork);  // listed from the start, as docker's
  auto all = engine->networks().list();
  if (!all) return report(all.error());
  auto filters = Filters::parse(a.filters, {"driver", "id", "label", "name"});
  if (!filters) return report(filters.error());
  std::vector<NetworkConfig> list;
  for (const NetworkConfig& n : *all)
    if (filters->any("name", [&](const std::string& v) { return n.name.find(v) != std::string::npos; }) &&
        filters->any("id", [&](const std::string& v) { return n.id.starts_with(v); }) &&
        filters->any("driver", [&](const std::string& v) { return v == "bridge"; }) && filters->labels_match(n.labels))
      list.push_back(n);
  if (a.quiet) {
    for (const NetworkConfig& n : list) std::cout << n.id.substr(0, 12) << "\n";
    return 0;
  }
  if (a.format == "json") {
    Json out = Json::array();
    for (const NetworkConfig& n : list) out.push_back(network_json(engine->networks(), engine->containers(), n));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::vector<Json> rows;
  for (const NetworkConfig& n : list) {
    std::string labels;
    for (const auto& [k, v] : n.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
    rows.push_back({{"ID", n.id.substr(0, 12)}, {"Name", n.name}, {"Driver", "bridge"}, {"Scope", "local"},
                    {"IPv6", false}, {"Internal", false}, {"Labels", labels},
                    {"CreatedAt", format_time_ns(n.created_ns)}, {"Subnet", n.subnet.str()}, {"Interface", n.bridge}});
  }
  static const std::vector<Column> columns = {
      {"ID", "NETWORK ID"}, {"Name", "NAME"}, {"Driver", "DRIVER"}, {"Scope", "SCOPE", false},
      {"IPv6", "IPV6", false}, {"Internal", "INTERNAL", false}, {"Labels", "LABELS", false},
      {"CreatedAt", "CREATED AT", false}, {"Subnet", "SUBNET"}, {"Interface", "INTERFACE"}};
  return print_rows(rows, a.format, columns);
}

int cmd_network_inspect(const Globals& g, const NetworkArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  Json out = Json::array();
  int code = 0;
  for (const std::string& name : a.names) {
    auto n = engine->networks().get(name);
    if (!n) {
      code = report(n.error());
      continue;
    }
    out.push_back(network_json(engine->networks(), engine->containers(), *n));
  }
  return print_inspect(out, a.inspect_format, code);
}

int cmd_network_rm(const Globals& g, const NetworkArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  int code = 0;
  for (const std::string& name : a.names) {
    auto n = engine->networks().get(name);
    if (!n) {
      code = report(n.error());
      continue;
    }
    if (n->name == kDefaultNetwork) {
      code = report(make_error("remove network", name, "the default network cannot be removed"));
      continue;
    }
    if (auto r = engine->networks().remove(*n); !r) {
      code = report(r.error());
      continue;
    }
    record_named_event(g.root, "network", "destroy", n->id, n->name, {{"type", "bridge"}});
    std::cout << name << "\n";
  }
  return code;
}

int cmd_network_connect(const Globals& g, const NetworkArgs& a, bool connect) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(a.container);
  if (!rec) return report(rec.error());
  auto lock = engine->containers().lock(rec->id);
  if (!lock) return report(lock.error());
  auto r = connect ? connect_network(engine->networks(), engine->containers(), *rec, a.name)
                   : disconnect_network(engine->networks(), engine->containers(), *rec, a.name);
  if (!r) return report(r.error());
  if (auto n = engine->networks().get(a.name))
    record_named_event(g.root, "network", connect ? "connect" : "disconnect", n->id, n->name,
                       {{"container", rec->id}, {"type", "bridge"}});
  return 0;
}

int cmd_port(const Globals& g, const std::string& ref, const std::string& which) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(ref);
  if (!rec) return report(rec.error());
  auto net = load_container_network(engine->containers(), rec->id);
  if (!net) return report(net.error());
  bool found = false;
  for (const PortMapping& p : net->ports) {
    std::string key = std::to_string(p.container_port) + "/" + p.proto;
    if (!which.empty() && which != key && which != std::to_string(p.container_port)) continue;
    found = true;
    std::string host = (p.host_ip.empty() ? "0.0.0.0" : p.host_ip) + ":" + std::to_string(p.host_port);
    std::cout << (which.empty() ? key + " -> " + host : host) << "\n";
  }
  if (!which.empty() && !found)
    return report(make_error("port", which, "no public port published for it in container " + rec->name));
  return 0;
}

}  // namespace

Json network_settings_json(const ContainerNetwork& net) {
  Json networks = Json::object(), ports = Json::object();
  for (const Endpoint& e : net.endpoints)
    networks[e.network] = {{"NetworkID", e.network_id}, {"IPAddress", e.address.str()},
                           {"IPPrefixLen", e.prefix}, {"Gateway", e.gateway.str()}, {"MacAddress", e.mac}};
  for (const PortMapping& p : net.ports)
    ports[std::to_string(p.container_port) + "/" + p.proto].push_back(
        {{"HostIp", p.host_ip.empty() ? "0.0.0.0" : p.host_ip}, {"HostPort", std::to_string(p.host_port)}});
  return {{"Mode", net.mode == "container" ? "container:" + net.container : net.mode},
          {"IPAddress", net.endpoints.empty() ? "" : net.endpoints[0].address.str()},
          {"Networks", networks},
          {"Ports", ports}};
}

void add_network_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<NetworkArgs>();
  auto* network = app.add_subcommand("network", "Manage bridge networks");
  network->require_subcommand(1);

  auto* create = network->add_subcommand("create", "Create a bridge network; containers on it reach each other by name");
  create->add_option("NAME", a->name, "Network name")->required();
  create->add_option("--subnet", a->subnet, "IPv4 subnet, e.g. 10.90.0.0/24 (default: a free /16)");
  create->add_option("-l,--label", a->labels, "Set a label KEY=VALUE")->allow_extra_args(false);
  create->callback([&g, a] { g.action = [&g, a] { return cmd_network_create(g, *a); }; });

  auto* ls = network->add_subcommand("ls", "List networks");
  ls->alias("list");
  ls->add_flag("-q,--quiet", a->quiet, "Only IDs");
  ls->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  ls->add_option("-f,--filter", a->filters, "Filter KEY=VALUE (name, id, driver, label)")->allow_extra_args(false);
  ls->callback([&g, a] { g.action = [&g, a] { return cmd_network_ls(g, *a); }; });

  auto* inspect = network->add_subcommand("inspect", "Show networks as JSON");
  inspect->add_option("-f,--format", a->inspect_format, "Print each network through a Go template, e.g. '{{.Name}}'");
  inspect->add_option("NETWORK", a->names, "Networks")->required();
  inspect->callback([&g, a] { g.action = [&g, a] { return cmd_network_inspect(g, *a); }; });

  auto* rm = network->add_subcommand("rm", "Remove networks no container uses");
  rm->alias("remove");
  rm->add_option("NETWORK", a->names, "Networks")->required();
  rm->callback([&g, a] { g.action = [&g, a] { return cmd_network_rm(g, *a); }; });

  for (bool connect : {true, false}) {
    auto* c = network->add_subcommand(connect ? "connect" : "disconnect",
                                      connect ? "Put a container on a network" : "Take a container off a network");
    c->add_option("NETWORK", a->name, "Network")->required();
    c->add_option("CONTAINER", a->container, "Container")->required();
    c->callback([&g, a, connect] { g.action = [&g, a, connect] { return cmd_network_connect(g, *a, connect); }; });
  }

  // isola port and isola container port (after add_container_commands).
  for (CLI::App* parent : {&app, app.get_subcommand("container")}) {
    auto* port = parent->add_subcommand("port", "List a container's published ports");
    port->add_option("CONTAINER", a->container, "Container")->required();
    port->add_option("PORT", a->name, "Only this port: PORT[/PROTO]");
    port->callback([&g, a] { g.action = [&g, a] { return cmd_port(g, a->container, a->name); }; });
  }
}

}  // namespace isola::cli
