#pragma once

// Where the agent connects for an offer (docs/protocol.md, "Client rules"): to the offer's sender
// (its URL names that address, offer_selection.hpp), through the interface the offer arrived on.
// An offer's URL carries no IPv6 zone, and Boost.URL is not asked for one: the connection's
// address is the sender's address with the arrival interface as its scope id when it is
// link-local (segment/interfaces.hpp, with_arrival_zone). Item downloads, piece lists and the
// signed catalog all connect there (fetch_request::host_address).

#include "lanrelay/agent/offer_selection.hpp"

#include <boost/asio/ip/address.hpp>

#include <string>

namespace lanrelay::agent {

struct offer_route {
  boost::asio::ip::address address;  // connect here (a link-local one with its scope id)
  std::string interface;             // the arrival interface's name; empty when unknown
  std::string zone;                  // the zone a link-local address gets; empty otherwise
};

offer_route route_to(const candidate& c);

}  // namespace lanrelay::agent
