#pragma once

// DNS-SD unicast browsing for relays (RFC 6763, section 13 "unicast DNS"): for each search
// domain of the machine, the SRV and TXT records of the service type name
// `_lanrelay._udp.<domain>` (the flat form: the service type's own name carries them, no PTR
// instance list), then the addresses of each SRV target. The TXT record carries
// `site-key-sha256=<64 hex>`, the SHA-256 of the site key's 32 public bytes
// (site_key_fingerprint), once per key the relays of that domain sign with.
//
// The resolver is c-ares (no DNS code of ours), run on the caller's io_context: c-ares tells us
// through its socket-state callback which descriptors to watch; each is waited on with Asio
// (posix::stream_descriptor::async_wait, the descriptor stays c-ares's) and handed back with
// ares_process_fd; c-ares's own timeouts run on a steady_timer. Each query has one try of
// `timeout`; a browse as a whole ends at the latest after three timeouts (SRV/TXT, then the
// targets' addresses), whatever the server does, and every pending query is cancelled then.
//
// Threads: browse_dns_sd runs on the executor of the coroutine that awaits it; nothing is
// shared between browses (each has its own c-ares channel).

#include "lanrelay/base/site_key.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

inline constexpr std::string_view dns_sd_service = "_lanrelay._udp";

struct dns_sd_options {
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
  std::string server;  // "10.0.0.2" or "10.0.0.2:5353"; empty: resolv_conf's name servers
  std::chrono::milliseconds timeout{1'000};
  std::vector<std::string> domains;  // searched instead of resolv_conf's when not empty
};

struct dns_sd_relay {
  std::string domain;  // the search domain it was found under
  std::string target;  // the SRV target
  std::uint16_t port = 0;
  std::uint16_t priority = 0;
  std::vector<boost::asio::ip::address> addresses;
  std::set<std::string> key_fingerprints;  // from the domain's TXT records (lowercase hex)
};

struct dns_sd_result {
  std::vector<std::string> domains;  // searched
  std::vector<dns_sd_relay> relays;  // in SRV priority order; only those with addresses
  std::size_t queries = 0;           // DNS questions asked
  std::size_t timeouts = 0;          // of them, unanswered within the timeout
  std::string error;                 // why nothing could be asked (no domain, no channel)
};

// The search domains of a resolv.conf: its last `search` or `domain` line (as the C library
// reads it). Empty when the file is missing or names none.
std::vector<std::string> search_domains(const std::filesystem::path& resolv_conf);

// Lowercase hex SHA-256 of the key's 32 bytes: what the TXT record's site-key-sha256 names.
std::string site_key_fingerprint(const public_key& key);

boost::asio::awaitable<dns_sd_result> browse_dns_sd(const dns_sd_options& options);

// The addresses of each of `hosts` (names or literals), in their order, through the same
// resolver (hosts file, then DNS); an empty list for a host that did not resolve within
// `options.timeout`. Used for the address plan's relay names.
boost::asio::awaitable<std::vector<std::vector<boost::asio::ip::address>>> resolve_hosts(
    const std::vector<std::string>& hosts, const dns_sd_options& options);

}  // namespace lanrelay::agent
