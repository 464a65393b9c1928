#pragma once

// The machine's network interfaces as discovery sees them: which are up, their IPv4 networks and
// broadcast addresses, their IPv6 link-local addresses. Read with getifaddrs(3) on every call, so
// interfaces that come and go are noticed by calling again.

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>

#include <optional>
#include <string>
#include <vector>

namespace lanrelay {

struct ipv4_binding {
  boost::asio::ip::network_v4 network;  // the interface's address with its prefix length
  std::optional<boost::asio::ip::address_v4> broadcast;
};

struct network_interface {
  std::string name;
  unsigned index = 0;
  bool loopback = false;
  bool multicast = false;
  std::vector<ipv4_binding> ipv4;
  std::vector<boost::asio::ip::address_v6> ipv6_link_local;  // scope id set to `index`

  // Is `peer` on a directly connected network of this interface?
  bool is_on_link(const boost::asio::ip::address& peer) const;
};

// Interfaces that are up and running, loopback included (callers decide whether to use it).
std::vector<network_interface> list_interfaces();

// A stable text naming the segment the machine is on: its non-loopback IPv4 networks, sorted and
// comma separated ("10.77.0.0/16"). Empty when there are none.
std::string segment_id(const std::vector<network_interface>& interfaces);

}  // namespace lanrelay
