#pragma once

// Tells when an IP address of this machine is added or removed: a NETLINK_ROUTE socket
// subscribed to RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR. The proxy resolver forgets what it
// learned when the machine moves (new DHCP lease, VPN up or down, another segment).
//
// Threads: one coroutine at a time may wait on an address_watch.

#include "lanrelay/common/error.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstddef>

namespace lanrelay::agent {

class address_watch {
 public:
  // Opens and subscribes the socket. Check ok(): without it, wait() fails at once.
  explicit address_watch(const boost::asio::any_io_executor& executor);

  bool ok() const noexcept { return socket_.is_open(); }
  const boost::system::error_code& open_error() const noexcept { return open_error_; }

  // Waits for the next batch of address changes; returns how many RTM_NEWADDR/RTM_DELADDR
  // messages it held (at least 1; a kernel buffer overrun counts as one change, since changes
  // may have been lost). Cancel with the awaiting operation's cancellation or by destroying.
  boost::asio::awaitable<result<std::size_t>> wait();

 private:
  boost::asio::posix::stream_descriptor socket_;
  boost::system::error_code open_error_;
};

}  // namespace lanrelay::agent
