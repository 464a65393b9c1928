#pragma once

// Step 2 of proxy resolution: ask the segment's proxyhelperd which proxy to use
// (docs/protocol.md, "Proxy protocol").
//
// The query goes out through the loop discovery queries use (query_rounds.hpp): IPv4 directed
// and limited broadcast on every interface that has a broadcast address, and the IPv6 group
// ff12::4129 on every multicast interface; or, with `targets`, by unicast to those addresses
// only. It is sent `sends` times spread over the first two thirds of `window`. The wait ends at the first answer
// that passes proxy_protocol::check_answer with `trust`; answers that do not pass are counted and
// described (a rogue responder shows up there), never used.

#include "lanrelay/segment/proxy_codec.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::proxy_resolution {

struct proxy_query_options {
  std::uint16_t port = proxy_protocol::default_port;
  std::chrono::milliseconds window{500};
  unsigned sends = 3;
  std::vector<boost::asio::ip::address> targets;  // unicast instead of broadcast when not empty
  bool ipv6 = true;
  proxy_protocol::answer_trust trust;
};

struct proxy_query_result {
  std::optional<proxy_protocol::answer> accepted;
  boost::asio::ip::udp::endpoint answered_by;  // the source of the accepted answer
  unsigned answered_on = 0;                     // the interface it arrived on (0: unknown)
  std::size_t answers = 0;                      // valid answer datagrams for our query
  std::vector<std::string> refused;             // "10.1.0.66: <why>" for each refused answer
  std::size_t destinations = 0;                 // where the query was sent (per round)
  std::size_t send_errors = 0;
  std::chrono::milliseconds elapsed{0};
};

// Takes `options` by value: the coroutine owns them whenever it starts.
boost::asio::awaitable<proxy_query_result> ask_for_proxies(proxy_query_options options);

}  // namespace lanrelay::proxy_resolution
