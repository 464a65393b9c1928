#pragma once

// Where an agent looks for a relay, in order, each quick (issue 14; docs/architecture.md, "Life
// of a query", step 2):
//   1. the segment: the query broadcast as today (discovery_client.hpp), IPv4 broadcast and
//      IPv6 link-local multicast, for `discovery.window`;
//   2. the address plan: the first [[discovery.site]] whose networks hold one of this
//      machine's addresses names relays (agent_config.hpp), asked by unicast;
//   3. DNS-SD (dns_sd.hpp): the relays published under _lanrelay._udp.<search domain>, asked by
//      unicast; with pinned site keys, only relays whose TXT record names one of them.
// The first source that brings offers ends the search. Every unicast source sends the very
// datagram the segment query sends, to each relay found, and the offers go through the same
// selection and trust rules (offer_selection.hpp, the signed catalog) as the segment's. The
// wait for unicast offers ends as soon as each relay asked has answered.
//
// Memory per source (segment_memory.hpp, keyed by the machine's segment): nothing found by any
// source keeps the agent off discovery for `memory_period` (as before); a segment where the
// broadcast was silent but the plan or DNS-SD found relays that answered is remembered with those
// relays, so later fetches skip the broadcast window (and the DNS lookup) and ask them at once.
// When the remembered relays bring nothing, the plan and DNS-SD are asked again (not the
// broadcast) until the memory expires.
//
// Threads: one coroutine on the caller's executor; nothing shared.

#include "lanrelay/agent/agent_config.hpp"
#include "lanrelay/agent/discovery_client.hpp"
#include "lanrelay/agent/dns_sd.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

enum class discovery_source { memory, segment, address_plan, dns_sd, remembered_relays };
std::string_view to_string(discovery_source source) noexcept;

// What one source did, for `lanrelay discover --explain` and the fallback reason.
struct source_report {
  discovery_source source = discovery_source::segment;
  bool tried = false;
  std::string note;                 // what it found or why it was skipped
  std::vector<std::string> relays;  // unicast: where the query went ("10.1.0.5:4126")
  std::size_t offers = 0;
  std::size_t dns_queries = 0;
  std::size_t dns_timeouts = 0;
  std::chrono::milliseconds took{0};
};

struct sources_options {
  discovery_options discovery;  // window, sends, port, ipv6 (`targets` is not used here)
  bool segment = true;
  std::vector<discovery_site> sites;  // the address plan
  bool dns_sd = false;
  dns_sd_options dns;
  std::vector<public_key> site_keys;  // pinned: DNS-SD relays must name one in their TXT
  std::optional<std::filesystem::path> memory_file;  // segments.json; nullopt: no memory
  std::chrono::seconds memory_period{600};
};

struct sources_result {
  std::vector<candidate> offers;
  std::vector<source_report> reports;  // in the order the sources were considered
  std::string fallback_reason;         // when no offers: why, for the log line
};

boost::asio::awaitable<sources_result> discover_from_sources(const discovery::query& query,
                                                             const sources_options& options);

// The addresses an address plan is matched against: every IPv4 address and every IPv6 address
// (global, unique-local and link-local; not tentative ones) of the interfaces that are not
// loopback.
std::vector<boost::asio::ip::address> own_addresses(
    const std::vector<network_interface>& interfaces);

// The relays of the first site with a network holding one of `own`; nullptr when none does.
const discovery_site* match_site(const std::vector<discovery_site>& sites,
                                 const std::vector<boost::asio::ip::address>& own);

// "10.1.0.5", "10.1.0.5:4126", "[fd00::5]:4126", "relay1.example:4126" split into host and
// port (`default_port` when none); nullopt when the text is not one of these.
struct relay_name {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<relay_name> parse_relay_name(std::string_view text, std::uint16_t default_port);

// Sends `query` by unicast to each of `relays` (rounds as the segment query) and collects the
// offers for it until each relay has answered or the window ends.
boost::asio::awaitable<discovery_result> ask_relays(const discovery::query& query,
                                                    const std::vector<boost::asio::ip::udp::endpoint>& relays,
                                                    const discovery_options& options);

}  // namespace lanrelay::agent
