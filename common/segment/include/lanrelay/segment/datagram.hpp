#pragma once

// UDP helpers that Asio lacks: receiving with the interface a datagram arrived on (IP_PKTINFO /
// IPV6_RECVPKTINFO), and sending out of a chosen interface. Both work on a non-blocking socket's
// native handle; callers wait for readiness with Asio (socket.async_wait) and call these until
// they report would_block.

#include <boost/asio/ip/udp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace lanrelay {

struct received_datagram {
  std::size_t size = 0;
  boost::asio::ip::udp::endpoint source;
  unsigned interface_index = 0;  // 0 when the kernel did not say
  bool truncated = false;        // larger than the buffer; its tail was dropped
  // The address the datagram was sent to (the IP header's destination: ours, a broadcast or a
  // group); unspecified when the kernel did not say.
  boost::asio::ip::address destination;
};

// Asks the kernel to report the arrival interface on `socket` (call once after open).
boost::system::error_code enable_arrival_interface(boost::asio::ip::udp::socket& socket);

// One non-blocking receive. error::would_block when nothing is queued.
boost::system::error_code receive_datagram(boost::asio::ip::udp::socket& socket,
                                           std::span<std::byte> buffer, received_datagram& out);

// Up to `buffers.size()` datagrams in one non-blocking recvmmsg(2); `out` is resized to the count
// received (each entry describes the buffer of the same index). error::would_block when none.
boost::system::error_code receive_datagrams(boost::asio::ip::udp::socket& socket,
                                            std::span<std::span<std::byte>> buffers,
                                            std::vector<received_datagram>& out);

struct outgoing_datagram {
  std::span<const std::byte> data;
  boost::asio::ip::udp::endpoint destination;
  unsigned interface_index = 0;
  // The address to send from (IPV6_PKTINFO / IP_PKTINFO): an answer comes from the address it
  // names, and an answer to a unicast query leaves from the address the query was sent to.
  // Unspecified (the default): the kernel chooses, as for any send.
  boost::asio::ip::address source;
};

// Sends `datagrams` with as few sendmmsg(2) calls as possible; returns how many were sent (a
// datagram the kernel refused is skipped and counted as not sent).
std::size_t send_datagrams(boost::asio::ip::udp::socket& socket,
                           std::span<const outgoing_datagram> datagrams);

// One non-blocking send of `data` to `destination` out of interface `interface_index` (0: let the
// routing table decide). Used for the limited broadcast, which needs an explicit interface.
boost::system::error_code send_datagram(boost::asio::ip::udp::socket& socket,
                                        std::span<const std::byte> data,
                                        const boost::asio::ip::udp::endpoint& destination,
                                        unsigned interface_index);

}  // namespace lanrelay
