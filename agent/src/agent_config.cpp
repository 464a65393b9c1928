#include "lanrelay/agent/agent_config.hpp"

#include "lanrelay/base/detail/settings_toml.hpp"
#include "lanrelay/base/network_list.hpp"

namespace lanrelay::agent {
namespace {

using settings::apply_result;

apply_result check_network(std::string_view text) {
  if (!network_list::is_valid(text)) {
    return settings::toml_string(text) +
           " is not a network (address/prefix length, e.g. \"10.1.0.0/16\", or one address)";
  }
  return std::nullopt;
}

apply_result check_relay(std::string_view text) {
  const bool bad = text.empty() || text.size() > 255 ||
                   text.find_first_of(" \t/\\@?#") != std::string_view::npos;
  if (bad) {
    return settings::toml_string(text) +
           " is not a relay (a host name, an IPv4 address or [IPv6 address], with an optional "
           ":port)";
  }
  return std::nullopt;
}

apply_result check_dns_server(std::string_view text) {
  if (text.empty() || text.find_first_of(" \t/") == std::string_view::npos) {
    return std::nullopt;
  }
  return settings::toml_string(text) + " is not a name server (\"10.0.0.2\" or \"10.0.0.2:5353\")";
}

settings::list_of_tables<agent_config, discovery_site> site_list() {
  using item = discovery_site;
  discovery_site example;
  example.networks = {"10.1.0.0/16"};
  example.relays = {"relay1.example", "10.1.0.5"};
  return {
      {"discovery", "site"},
      "An address plan entry: agents with an address in one of `networks` ask `relays` by "
      "unicast (the first matching site wins).",
      {
          settings::required(settings::string_list_setting<item>(
              "", "networks", "Networks of the agents this site serves, e.g. [\"10.1.0.0/16\"].",
              [](item& s) -> auto& { return s.networks; }, check_network)),
          settings::required(settings::string_list_setting<item>(
              "", "relays",
              "Relays those agents ask: host names or addresses, with an optional :port "
              "(default: the discovery port).",
              [](item& s) -> auto& { return s.relays; }, check_relay)),
      },
      [](agent_config& c) -> auto& { return c.discovery.sites; },
      [](const item& s, std::span<const item>) -> apply_result {
        if (s.networks.empty() || s.relays.empty()) {
          return std::string("a site needs at least one network and one relay");
        }
        return std::nullopt;
      },
      example};
}

const settings::table<agent_config>& agent_settings_table() {
  using std::chrono::milliseconds;
  using namespace std::chrono_literals;
  static const settings::table<agent_config> table{
      {
          settings::bool_setting<agent_config>(
              "discovery", "segment",
              "Ask the segment first (IPv4 broadcast, IPv6 link-local multicast).",
              [](agent_config& c) -> auto& { return c.discovery.segment; }),
          settings::bool_setting<agent_config>(
              "discovery", "dns_sd",
              "Then look for relays by DNS-SD: SRV and TXT records of _lanrelay._udp.<domain> "
              "for each search domain.",
              [](agent_config& c) -> auto& { return c.discovery.dns_sd; }),
          settings::path_setting<agent_config>(
              "discovery", "resolv_conf",
              "Where the search domains (and, without dns_server, the name servers) are read.",
              [](agent_config& c) -> auto& { return c.discovery.resolv_conf; }),
          settings::string_setting<agent_config>(
              "discovery", "dns_server", settings::setting_type::text,
              "Ask this name server (\"10.0.0.2\" or \"10.0.0.2:5353\") instead of "
              "resolv_conf's. Empty: resolv_conf's.",
              [](agent_config& c) -> auto& { return c.discovery.dns_server; }, check_dns_server),
          settings::duration_setting<milliseconds, agent_config>(
              "discovery", "resolver_timeout",
              "Deadline of one DNS query (one try); a server that does not answer costs this "
              "once per segment memory period.",
              50ms, 30s, [](agent_config& c) -> auto& { return c.discovery.resolver_timeout; }),
      },
      {
          settings::make_list_reader(site_list()),
      }};
  return table;
}

}  // namespace

agent_config_load_result parse_agent_config(std::string_view toml_text, std::string_view file_name) {
  agent_config_load_result out;
  out.diagnostics = settings::parse(agent_settings_table(), out.config, toml_text, file_name);
  return out;
}

agent_config_load_result load_agent_config(const std::filesystem::path& file) {
  agent_config_load_result out;
  auto text = settings::read_config_file(file, out.diagnostics);
  if (!text) {
    return out;
  }
  return parse_agent_config(*text, file.string());
}

}  // namespace lanrelay::agent
