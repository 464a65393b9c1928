#pragma once

// The agent's side of segment discovery: send one query to the segment and collect the offers
// (through query_rounds.hpp, the loop the proxy query uses too).
//
// The query goes out as an IPv4 directed broadcast and a limited broadcast (255.255.255.255) on
// every interface that is up and has a broadcast address, and to the IPv6 link-local group
// (discovery::ipv6_group) on every multicast interface; or, when `targets` is set, by unicast to
// those addresses only. It is sent `sends` times spread over the first two thirds of `window`,
// and the wait ends early when `enough_offers` distinct offers (by URL) have arrived (with
// `targets`: as soon as each target has answered). Offers are counted by sending address, so one
// host answering with many URLs cannot end the wait before the others have answered.

#include "lanrelay/agent/offer_selection.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <vector>

namespace lanrelay::agent {

struct discovery_options {
  std::uint16_t port = discovery::default_port;
  std::chrono::milliseconds window{500};
  unsigned sends = 3;
  std::size_t enough_offers = 8;  // distinct senders
  std::vector<boost::asio::ip::address> targets;  // unicast instead of broadcast when not empty
  bool ipv6 = true;
};

struct discovery_result {
  std::vector<candidate> offers;  // every valid offer for our transaction, in arrival order;
                                  // a responder that got several copies of the query repeats
  std::size_t destinations = 0;   // where the query was sent (per round)
  std::size_t send_errors = 0;
  std::size_t dropped = 0;        // datagrams that were not a valid offer for this query
};

boost::asio::awaitable<discovery_result> discover(const discovery::query& query,
                                                  const discovery_options& options);

}  // namespace lanrelay::agent
