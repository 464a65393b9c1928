#include "lanrelay/segment/query_rounds.hpp"

#include "lanrelay/segment/datagram.hpp"
#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace lanrelay {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
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

net::awaitable<query_round_counts> query_rounds(std::span<const std::byte> query,
                                                std::vector<query_destination> destinations,
                                                query_round_options options,
                                                query_reply_fn on_reply,
                                                std::function<bool()> done) {
  query_round_counts counts;
  auto executor = co_await net::this_coro::executor;
  std::optional<udp::socket> v4 = open_query_socket(executor, udp::v4(), options.what);
  std::optional<udp::socket> v6 =
      options.ipv6 ? open_query_socket(executor, udp::v6(), options.what) : std::nullopt;

  const auto send_round = [&] {
    for (const auto& d : destinations) {
      auto& socket = d.endpoint.address().is_v4() ? v4 : v6;
      if (!socket) {
        ++counts.send_errors;
        continue;
      }
      if (auto ec = send_datagram(*socket, query, d.endpoint, d.interface_index)) {
        ++counts.send_errors;
        spdlog::debug("event={}_send_failed to={} interface={} error=\"{}\"", options.what,
                      d.endpoint.address().to_string(), d.interface_index, ec.message());
      }
    }
  };

  std::vector<std::byte> buffer(options.max_datagram);
  const auto drain = [&](udp::socket& socket) {
    received_datagram got;
    while (!receive_datagram(socket, buffer, got)) {
      on_reply(std::span<const std::byte>(buffer.data(), got.size), got);
    }
  };

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.window;
  const unsigned sends = std::max(1u, options.sends);
  unsigned sent = 0;
  net::steady_timer timer(executor);
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      break;
    }
    // Rounds at 0, 1/3 and 2/3 of the window (for three sends).
    const auto next_send = start + options.window * 2 * sent / (3 * (sends > 1 ? sends - 1 : 1));
    if (sent < sends && now >= next_send) {
      send_round();
      ++sent;
      continue;
    }
    timer.expires_at(sent < sends ? std::min(deadline, next_send) : deadline);
    auto wait_for = [&](std::optional<udp::socket>& socket) -> net::awaitable<void> {
      if (socket) {
        co_await socket->async_wait(udp::socket::wait_read, net::as_tuple(net::use_awaitable));
      } else {
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      }
    };
    co_await (wait_for(v4) || wait_for(v6) || timer.async_wait(net::as_tuple(net::use_awaitable)));
    if (v4) {
      drain(*v4);
    }
    if (v6) {
      drain(*v6);
    }
  }
  co_return counts;
}

}  // namespace lanrelay
