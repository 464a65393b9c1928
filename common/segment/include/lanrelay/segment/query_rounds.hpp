#pragma once

// One query loop for both segment protocols (discovery_client.hpp asks for items,
// proxy_query.hpp for proxies): where a query goes, the sockets it is sent from, and the rounds
// of sending and waiting.
//
// query_rounds() sends the query to every destination `sends` times, the rounds spread over the
// first two thirds of `window` (at 0, 1/3 and 2/3 of it for three sends), and waits for replies
// until the window ends or `done()` says the caller has what it needs. Each wait has a deadline:
// a steady_timer set to the next round or the end of the window, raced with readiness of the
// sockets (awaitable operators). Every datagram that arrives is handed to `on_reply`, which
// decodes it and keeps or drops it: the loop knows nothing of either protocol. A send error is
// counted and logged at debug level; it does not end the query.
//
// Threads: free functions without state. The sockets and timer belong to the executor
// query_rounds() runs on; `on_reply` and `done` are called there, never concurrently.

#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace lanrelay {

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

struct query_round_options {
  std::chrono::milliseconds window{500};
  unsigned sends = 3;             // rounds; at least one is sent
  bool ipv6 = true;               // also open an IPv6 socket (for IPv6 destinations)
  std::size_t max_datagram = 0;   // receive buffer; a longer reply arrives truncated
  std::string_view what;          // names the query in logs: "discovery", "proxy"
};

struct query_round_counts {
  std::size_t send_errors = 0;  // destinations not sent to, over all rounds
};

// `bytes` is the received datagram (its head only when `got.truncated`).
using query_reply_fn =
    std::function<void(std::span<const std::byte> bytes, const received_datagram& got)>;

// Sends `query` (which must outlive the call) to `destinations` in rounds, hands every reply to
// `on_reply` and returns when `done()` is true after a wait or the window has ended. Replies
// already queued when a wait ends are all handed over before `done()` is asked.
boost::asio::awaitable<query_round_counts> query_rounds(std::span<const std::byte> query,
                                                        std::vector<query_destination> destinations,
                                                        query_round_options options,
                                                        query_reply_fn on_reply,
                                                        std::function<bool()> done);

}  // namespace lanrelay
