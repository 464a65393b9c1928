#pragma once

// A list of IP networks ("10.1.0.0/16", "fd00::/8", or one address) and the question "is this
// address in one of them". Used where a setting names networks: the relay's
// discovery.unicast_networks (segment/responder_guard.hpp), the agent's address plan
// (agent/discovery_sources.hpp) and both daemons' [admin] read_networks (serving/admin_access.hpp). IPv4-mapped IPv6 addresses match as IPv4.
//
// Thread safety: immutable after parse(); contains() may run on any thread.

#include "lanrelay/base/error.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

class network_list {
 public:
  network_list() = default;

  // Every entry must be a network or one address; invalid_argument names the first that is not.
  static result<network_list> parse(const std::vector<std::string>& entries);
  // One entry: "10.1.0.0/16", "fd00::/8", "10.1.0.5" (a /32).
  static bool is_valid(std::string_view entry);

  bool contains(const boost::asio::ip::address& address) const;
  bool empty() const noexcept { return v4_.empty() && v6_.empty(); }

 private:
  std::vector<boost::asio::ip::network_v4> v4_;
  std::vector<boost::asio::ip::network_v6> v6_;
};

}  // namespace lanrelay
