#pragma once

// The listening side of a segment protocol (discovery on 4126, proxy queries on 4129):
// 0.0.0.0:port for IPv4 (directed and limited broadcast, unicast) and [::]:port, IPv6 only,
// joined to the protocol's link-local multicast group on every multicast interface. Both report
// the interface a datagram arrived on. Interfaces are listed again every rescan_interval (and
// when a datagram names an unknown one), so interfaces that come later are joined without a
// restart. What to do with the datagrams is the owner's business.
//
// Threads: everything runs on the owner's strand; call open() before the strand runs handlers
// for it, the rest from the strand.

#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace lanrelay {

class segment_listener {
 public:
  using executor = boost::asio::strand<boost::asio::io_context::executor_type>;

  struct options {
    std::uint16_t port = 0;      // 0: any free port (the same for both families)
    bool ipv6 = true;            // also [::]:port and the group
    std::string group;           // the IPv6 link-local group, such as "ff12::4126"
    std::string protocol;        // prefix of log events: "<protocol>_listen_error", ...
    std::chrono::milliseconds rescan_interval{5'000};
    int receive_buffer = 0;      // SO_RCVBUF to ask for; 0: the kernel's default
  };

  segment_listener(executor strand, options o);

  // Opens and binds both sockets; a family that fails is logged and left out. False when
  // neither could be opened.
  bool open();
  // Lists the interfaces and joins the group now and every rescan_interval until close().
  void start_rescans();
  // Closes both sockets (pending receives end) and stops the rescans.
  void close();

  std::optional<boost::asio::ip::udp::socket>& v4() noexcept { return v4_; }
  std::optional<boost::asio::ip::udp::socket>& v6() noexcept { return v6_; }
  std::uint16_t port() const noexcept { return port_; }  // the bound port

  // The interface with `index`, rescanning once when it is unknown; nullptr when there is none.
  const network_interface* find_interface(unsigned index);

 private:
  void rescan();
  boost::asio::awaitable<void> rescan_loop();

  executor strand_;
  const options options_;
  std::optional<boost::asio::ip::udp::socket> v4_;
  std::optional<boost::asio::ip::udp::socket> v6_;
  boost::asio::steady_timer rescan_timer_;
  std::vector<network_interface> interfaces_;
  std::set<unsigned> joined_;  // interfaces in the IPv6 group
  std::uint16_t port_ = 0;
  bool closed_ = false;
};

}  // namespace lanrelay
