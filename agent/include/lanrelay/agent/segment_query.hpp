#pragma once

// What the agent's two segment queries (discovery_client.hpp for items, proxy_query.hpp for
// proxies) share: where a query goes, and the sockets it is sent from.
//
// Threads: free functions without state; the sockets belong to the caller's executor.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

struct query_destination {
  boost::asio::ip::udp::endpoint endpoint;
  unsigned interface_index = 0;  // the interface to send out of; 0: the routing table decides
};

// With `targets`, each of them by unicast. Otherwise, for every interface that is not loopback:
// each IPv4 subnet's directed broadcast, the limited broadcast once, and with `ipv6` the
// link-local multicast `ipv6_group` scoped to the interface when it has a link-local address.
std::vector<query_destination> query_destinations(
    const std::vector<boost::asio::ip::address>& targets, std::uint16_t port, bool ipv6,
    std::string_view ipv6_group);

// A UDP socket bound to any port of `protocol`, allowed to broadcast (IPv4) or IPv6 only, that
// reports arrival interfaces. nullopt when the machine cannot open one (logged at debug level
// with `what` naming the query).
std::optional<boost::asio::ip::udp::socket> open_query_socket(
    boost::asio::any_io_executor executor, boost::asio::ip::udp protocol, std::string_view what);

}  // namespace lanrelay::agent
