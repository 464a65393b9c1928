#include "lanrelay/agent/segment_query.hpp"

#include "lanrelay/segment/datagram.hpp"
#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <spdlog/spdlog.h>

namespace lanrelay::agent {

namespace net = boost::asio;
using udp = net::ip::udp;

std::vector<query_destination> query_destinations(const std::vector<net::ip::address>& targets,
                                                  std::uint16_t port, bool ipv6,
                                                  std::string_view ipv6_group) {
  std::vector<query_destination> out;
  if (!targets.empty()) {
    for (const auto& address : targets) {
      out.push_back({udp::endpoint(address, port), 0});
    }
    return out;
  }
  const auto group = net::ip::make_address_v6(ipv6_group);
  for (const auto& nic : list_interfaces()) {
    if (nic.loopback) {
      continue;
    }
    bool limited_sent = false;
    for (const auto& binding : nic.ipv4) {
      if (!binding.broadcast) {
        continue;
      }
      out.push_back({udp::endpoint(*binding.broadcast, port), nic.index});
      if (!limited_sent) {
        out.push_back({udp::endpoint(net::ip::address_v4::broadcast(), port), nic.index});
        limited_sent = true;
      }
    }
    if (ipv6 && nic.multicast && !nic.ipv6_link_local.empty()) {
      net::ip::address_v6 scoped = group;
      scoped.scope_id(nic.index);
      out.push_back({udp::endpoint(scoped, port), nic.index});
    }
  }
  return out;
}

std::optional<udp::socket> open_query_socket(net::any_io_executor executor, udp protocol,
                                             std::string_view what) {
  udp::socket socket(executor);
  boost::system::error_code ec;
  socket.open(protocol, ec);
  if (!ec && protocol == udp::v4()) {
    socket.set_option(net::socket_base::broadcast(true), ec);
  }
  if (!ec && protocol == udp::v6()) {
    socket.set_option(net::ip::v6_only(true), ec);
  }
  if (!ec) {
    socket.bind(udp::endpoint(protocol, 0), ec);
  }
  if (!ec) {
    ec = enable_arrival_interface(socket);
  }
  if (ec) {
    spdlog::debug("event=query_socket_unavailable query={} protocol={} error=\"{}\"", what,
                  protocol == udp::v4() ? "ipv4" : "ipv6", ec.message());
    return std::nullopt;
  }
  return socket;
}

}  // namespace lanrelay::agent
