#pragma once

// The agent's own configuration file (`lanrelay fetch|discover|update --agent-config FILE`,
// default /etc/lanrelay/agent.toml when it exists): where to look for a relay besides the
// segment (discovery_sources.hpp). Read with the settings-table machinery the daemons use
// (base/detail/settings_toml.hpp), so problems are reported as file:line:column.
//
//   [discovery]
//   segment = true                    # IPv4 broadcast and IPv6 link-local multicast first
//   dns_sd = false                    # then DNS-SD: _lanrelay._udp.<search domain>
//   resolv_conf = "/etc/resolv.conf"  # search domains (and name servers, unless dns_server)
//   dns_server = ""                   # "10.0.0.2" or "10.0.0.2:5353": ask this server instead
//   resolver_timeout = "1s"           # one DNS query's deadline (one try)
//
//   [[discovery.site]]                # an address plan: the first site whose networks hold one
//   networks = ["10.1.0.0/16"]        # of this machine's addresses names its relays
//   relays = ["relay1.example", "10.1.0.5", "10.1.0.6:4126"]
//
// Thread safety: plain values.

#include "lanrelay/base/settings_table.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

struct discovery_site {
  std::vector<std::string> networks;  // "10.1.0.0/16", "fd00:1::/64", or one address
  std::vector<std::string> relays;    // host, IPv4, [IPv6], each with an optional :port

  bool operator==(const discovery_site&) const = default;
};

struct agent_discovery_settings {
  bool segment = true;
  // Off unless configured: an agent asks no name server about relays before it is told to.
  bool dns_sd = false;
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
  std::string dns_server;
  std::chrono::milliseconds resolver_timeout{1'000};
  std::vector<discovery_site> sites;
};

struct agent_config {
  agent_discovery_settings discovery;
};

using agent_config_load_result = basic_config_load_result<agent_config>;

inline constexpr std::string_view default_agent_config_file = "/etc/lanrelay/agent.toml";

agent_config_load_result parse_agent_config(std::string_view toml_text, std::string_view file_name);
// A missing file is a diagnostic; callers decide whether the default file may be absent.
agent_config_load_result load_agent_config(const std::filesystem::path& file);

}  // namespace lanrelay::agent
