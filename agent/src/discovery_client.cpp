#include "lanrelay/agent/discovery_client.hpp"

#include "lanrelay/agent/segment_query.hpp"
#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <set>

namespace lanrelay::agent {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using udp = net::ip::udp;

net::awaitable<discovery_result> discover(const discovery::query& query,
                                          const discovery_options& options) {
  discovery_result result;
  auto executor = co_await net::this_coro::executor;
  const auto datagram = discovery::encode(query);
  if (!datagram) {
    spdlog::warn("event=discovery_query_unencodable error=\"{}\"", datagram.error().message());
    co_return result;
  }
  const auto targets = query_destinations(options.targets, options.port, options.ipv6, discovery::ipv6_group);
  result.destinations = targets.size();
  if (targets.empty()) {
    co_return result;
  }

  std::optional<udp::socket> v4 = open_query_socket(executor, udp::v4(), "discovery");
  std::optional<udp::socket> v6 = options.ipv6 ? open_query_socket(executor, udp::v6(), "discovery") : std::nullopt;

  const auto send_round = [&] {
    for (const auto& d : targets) {
      auto& socket = d.endpoint.address().is_v4() ? v4 : v6;
      if (!socket) {
        ++result.send_errors;
        continue;
      }
      if (auto ec = send_datagram(*socket, *datagram, d.endpoint, d.interface_index)) {
        ++result.send_errors;
        spdlog::debug("event=discovery_send_failed to={} interface={} error=\"{}\"",
                      d.endpoint.address().to_string(), d.interface_index, ec.message());
      }
    }
  };

  // Distinct senders, not URLs: one host answering with many URLs must not end the wait before
  // the others have answered.
  std::set<net::ip::address> senders;
  std::array<std::byte, discovery::max_datagram> buffer{};
  const auto drain = [&](udp::socket& socket) {
    received_datagram got;
    while (!receive_datagram(socket, buffer, got)) {
      auto offer = discovery::decode_offer(std::span(buffer.data(), got.size));
      if (got.truncated || !offer || offer->transaction_id != query.transaction_id ||
          offer->sender_cookie == query.sender_cookie) {
        ++result.dropped;
        continue;
      }
      auto sender = got.source.address();
      if (sender.is_v6()) {
        auto v6 = sender.to_v6();
        v6.scope_id(0);
        sender = v6;
      }
      senders.insert(sender);
      result.offers.push_back(candidate{std::move(*offer), got.source, {}});
    }
  };

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.window;
  const unsigned sends = std::max(1u, options.sends);
  unsigned sent = 0;
  // Asking known addresses by unicast, we are done once each of them has answered.
  const std::size_t enough = options.targets.empty()
                                 ? options.enough_offers
                                 : std::min(options.enough_offers, options.targets.size());
  net::steady_timer timer(executor);
  while (senders.size() < enough) {
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
  co_return result;
}

}  // namespace lanrelay::agent
