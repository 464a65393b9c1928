#pragma once

// What makes a discovery offer usable, one rule for both askers: agents choosing among holders
// (agent/offer_selection.hpp) and a relay asking its parents (relay/parent_chain.hpp).
//
// Pure functions over values; safe from any thread.

#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/asio/ip/address.hpp>

#include <optional>
#include <string_view>

namespace lanrelay::discovery {

// The address without an IPv6 zone (fe80::1%eth0 is fe80::1): one key per host.
boost::asio::ip::address without_zone(boost::asio::ip::address address);

// Whether `url`'s host is an IP literal equal to `sender` (an IPv6 zone is ignored on both
// sides). A host name, or another address, is not the sender: an offer naming one could send
// agents to any host and port of the network.
bool url_names(std::string_view url, const boost::asio::ip::address& sender);

// Whether `o` answers a query for this item: kind and name equal, version_satisfies, and the
// SHA-256 equal when the query names one.
bool answers(const offer& o, item_kind kind, std::string_view name, std::string_view version,
             const std::optional<sha256_digest>& sha256);

}  // namespace lanrelay::discovery
