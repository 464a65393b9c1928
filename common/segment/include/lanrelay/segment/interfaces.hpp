#pragma once

// The machine's network interfaces as discovery sees them: which are up, their IPv4 networks and
// broadcast addresses, and every IPv6 address with its prefix (link-local, ULA and global). Read
// with getifaddrs(3) on every call, so interfaces that come and go are noticed by calling again;
// the state of each IPv6 address (tentative, deprecated, temporary) comes from
// /proc/net/if_inet6 when it can be read.
//
// Which of its addresses a responder names in an answer to a query that arrived on an interface
// (offered_ipv6_address) is decided here once for both responders (lanrelayd's discovery and
// proxyhelperd's proxy query).

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

struct ipv4_binding {
  boost::asio::ip::network_v4 network;  // the interface's address with its prefix length
  std::optional<boost::asio::ip::address_v4> broadcast;
};

struct ipv6_binding {
  // The address with its prefix length; a link-local address has its scope id set to the
  // interface's index.
  boost::asio::ip::network_v6 network;
  bool tentative = false;   // duplicate address detection still running, or failed: unusable
  bool deprecated = false;  // preferred lifetime over: kept for connections that use it
  bool temporary = false;   // a privacy address (RFC 8981) that changes over time
};

struct network_interface {
  std::string name;
  unsigned index = 0;
  bool loopback = false;
  bool multicast = false;
  std::vector<ipv4_binding> ipv4;
  std::vector<ipv6_binding> ipv6;  // every IPv6 address, in the kernel's order
  std::vector<boost::asio::ip::address_v6> ipv6_link_local;  // the link-local ones of `ipv6`,
                                                              // scope id set to `index`

  // Is `peer` on a directly connected network of this interface? For IPv6: a link-local address
  // (of this interface, when it has a scope id) or one inside one of the interface's prefixes.
  bool is_on_link(const boost::asio::ip::address& peer) const;
};

// The address a responder names (and answers from) for an IPv6 query from `querier` that arrived
// on `arrival`: a routable address (ULA or global, neither tentative) when the interface has one,
// preferring one whose prefix holds `querier`, then one neither deprecated nor temporary, then
// the first; else its first link-local address (scope id set). nullopt when it has no usable
// IPv6 address.
std::optional<boost::asio::ip::address_v6> offered_ipv6_address(
    const network_interface& arrival, const boost::asio::ip::address& querier);

// The address to send an answer to `querier` from, when it arrived on `arrival`: for an IPv6
// querier its offered_ipv6_address (an answer comes from the address it names, which is how the
// agent checks it); unspecified, which leaves the choice to the kernel, for IPv4 or when
// `arrival` is null.
boost::asio::ip::address answer_source(const network_interface* arrival,
                                       const boost::asio::ip::address& querier);

// `address` as a connection needs it when it was learned from a datagram that arrived on
// `interface_index`: a link-local IPv6 address gets that interface as its scope id (a URL or an
// answer carries no zone); any other address is returned as it is.
boost::asio::ip::address with_arrival_zone(const boost::asio::ip::address& address,
                                           unsigned interface_index);

// The address to reach a proxy at `url` (as a proxy answer or a setting names it) through
// `interface_index`, when the URL's host is a link-local IPv6 literal: with_arrival_zone of it.
// nullopt for any other host, or text that is no absolute URL (resolved and routed as usual).
std::optional<boost::asio::ip::address> link_local_url_address(std::string_view url,
                                                               unsigned interface_index);

// Interfaces that are up and running, loopback included (callers decide whether to use it).
std::vector<network_interface> list_interfaces();

// A stable text naming the segment the machine is on: its non-loopback IPv4 networks, sorted and
// comma separated ("10.77.0.0/16"). Empty when there are none.
std::string segment_id(const std::vector<network_interface>& interfaces);

}  // namespace lanrelay
