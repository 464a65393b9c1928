#pragma once

// Tells when an IP address of this machine is added or removed: a NETLINK_ROUTE socket
// subscribed to RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR. The proxy resolver forgets what it
// learned when the machine moves (new DHCP lease, VPN up or down, another segment).
// Only the kernel speaks for the machine's addresses: a datagram whose sender is not the kernel
// (netlink port id 0) is dropped and counted, so that a local process cannot make the resolver
// forget its routes at will.
//
// Threads: one coroutine at a time may wait on an address_watch.

#include "lanrelay/base/error.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

struct sockaddr_nl;

namespace lanrelay::proxy_resolution {

// The number of RTM_NEWADDR/RTM_DELADDR messages in one netlink datagram from `sender`; 0 when
// the sender is not the kernel. Pure: the parsing seam of wait(), for tests.
std::size_t count_address_changes(std::span<const std::byte> datagram, const sockaddr_nl& sender);

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

  // Datagrams dropped because the kernel did not send them. Read on the waiting coroutine's
  // executor.
  std::uint64_t dropped() const noexcept { return dropped_; }
  // The socket's netlink port id (0 when not open).
  std::uint32_t port_id() const;

 private:
  boost::asio::posix::stream_descriptor socket_;
  boost::system::error_code open_error_;
  std::uint64_t dropped_ = 0;
};

}  // namespace lanrelay::proxy_resolution
