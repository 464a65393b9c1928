#include "lanrelay/agent/proxy_query.hpp"

#include "lanrelay/agent/segment_query.hpp"
#include "lanrelay/base/machine_cookie.hpp"
#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <array>

namespace lanrelay::agent {

namespace net = boost::asio;
namespace proxy = proxy_protocol;
using namespace net::experimental::awaitable_operators;
using udp = net::ip::udp;

net::awaitable<proxy_query_result> ask_for_proxies(proxy_query_options options) {
  proxy_query_result result;
  const auto start = std::chrono::steady_clock::now();
  auto executor = co_await net::this_coro::executor;
  const proxy::query query{random_u64(), random_u64()};
  const auto datagram = proxy::encode(query);
  const auto targets = query_destinations(options.targets, options.port, options.ipv6, proxy::ipv6_group);
  result.destinations = targets.size();
  if (targets.empty()) {
    co_return result;  // no interface with broadcast or multicast: nobody to ask
  }
  if (options.trust.accept_unsigned) {
    spdlog::warn("event=unsigned_proxy_answers_accepted hint=\"explicit opt-in: any machine on "
                 "this segment can choose this agent's proxy\"");
  }

  std::optional<udp::socket> v4 = open_query_socket(executor, udp::v4(), "proxy");
  std::optional<udp::socket> v6 = options.ipv6 ? open_query_socket(executor, udp::v6(), "proxy") : std::nullopt;

  const auto send_round = [&] {
    for (const auto& d : targets) {
      auto& socket = d.endpoint.address().is_v4() ? v4 : v6;
      if (!socket) {
        ++result.send_errors;
        continue;
      }
      if (auto ec = send_datagram(*socket, datagram, d.endpoint, d.interface_index)) {
        ++result.send_errors;
        spdlog::debug("event=proxy_query_send_failed to={} interface={} error=\"{}\"",
                      d.endpoint.address().to_string(), d.interface_index, ec.message());
      }
    }
  };

  std::array<std::byte, proxy::max_datagram> buffer{};
  const auto drain = [&](udp::socket& socket) {
    received_datagram got;
    while (!result.accepted && !receive_datagram(socket, buffer, got)) {
      const auto bytes = std::span<const std::byte>(buffer.data(), got.size);
      auto answer = proxy::decode_answer(bytes);
      if (got.truncated || !answer || answer->transaction_id != query.transaction_id ||
          answer->sender_cookie == query.sender_cookie) {
        continue;  // not an answer to this query
      }
      ++result.answers;
      const auto checked = proxy::check_answer(*answer, bytes, query.transaction_id, options.trust,
                                               std::chrono::system_clock::now());
      if (!checked) {
        result.refused.push_back(got.source.address().to_string() + ": " +
                                 checked.error().message());
        spdlog::warn("event=proxy_answer_refused from={} reason=\"{}\"", got.source.address().to_string(),
                     checked.error().message());
        continue;
      }
      result.accepted = std::move(*answer);
      result.answered_by = got.source;
    }
  };

  const auto deadline = start + options.window;
  const unsigned sends = std::max(1u, options.sends);
  unsigned sent = 0;
  net::steady_timer timer(executor);
  while (!result.accepted) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      break;
    }
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
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  co_return result;
}

}  // namespace lanrelay::agent
