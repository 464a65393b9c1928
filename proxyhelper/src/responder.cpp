#include "lanrelay/proxyhelper/responder.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace lanrelay::proxyhelper {
namespace {

namespace net = boost::asio;
namespace proxy = proxy_protocol;
using udp = net::ip::udp;

}  // namespace

responder_core::responder_core(settings s, const site_key* key, healthy_proxies healthy,
                               proxyhelper_counters& counters)
    : settings_(s),
      key_(key),
      healthy_(std::move(healthy)),
      counters_(counters),
      guard_({s.cookie, s.rate_limit, s.new_source_rate}, counters) {}

std::optional<std::vector<std::byte>> responder_core::process_packet(
    std::span<const std::byte> datagram, const udp::endpoint& source,
    const network_interface* arrival, std::chrono::steady_clock::time_point now,
    std::chrono::system_clock::time_point wall) {
  const auto note = [&](std::string outcome, std::vector<std::string> proxies = {}) {
    if (settings_.log != nullptr) {
      settings_.log->add({wall, source.address().to_string(), std::move(outcome), std::move(proxies)});
    }
  };
  auto q = proxy::decode_query(datagram);
  const auto cookie = q ? std::optional(q->sender_cookie) : std::nullopt;
  switch (guard_.admit(cookie, source, arrival, now)) {
    case responder_guard::verdict::admitted:
      break;
    case responder_guard::verdict::source_over_rate:
      note("rate limited");
      return std::nullopt;
    default:
      // Not noted: malformed datagrams and our own are not kept, nor off-link senders, and
      // during a flood of invented sources the log would show only the flood.
      return std::nullopt;
  }
  ++counters_.queries;

  proxy::answer a;
  a.transaction_id = q->transaction_id;
  a.sender_cookie = settings_.cookie;
  a.expires_at = wall + settings_.answer_lifetime;
  a.proxies = healthy_();
  if (a.proxies.empty()) {
    ++counters_.no_healthy_proxy;  // silence: agents keep their own fallback
    note("no healthy proxy");
    return std::nullopt;
  }
  if (a.proxies.size() > proxy::max_proxies) {
    a.proxies.resize(proxy::max_proxies);
  }
  auto encoded = proxy::encode(a, key_, datagram.size());
  if (!encoded) {
    ++counters_.reply_too_large;
    note("answer larger than the query");
    return std::nullopt;
  }
  std::vector<std::string> advertised;
  for (const auto& p : a.proxies) {
    advertised.push_back(p.url);
  }
  note("answered", std::move(advertised));
  return std::move(*encoded);
}

void responder_core::update(std::uint32_t rate_limit, std::uint32_t new_source_rate,
                            std::chrono::seconds answer_lifetime) {
  settings_.rate_limit = rate_limit;
  settings_.new_source_rate = new_source_rate;
  settings_.answer_lifetime = answer_lifetime;
  guard_.update(rate_limit, new_source_rate);
}

proxy_responder::proxy_responder(net::io_context& ioc, const proxyhelper_config& config,
                                 std::uint64_t cookie, const site_key* key,
                                 responder_core::healthy_proxies healthy,
                                 proxyhelper_counters& counters, query_log* log)
    : strand_(net::make_strand(ioc)),
      config_(config),
      counters_(counters),
      core_(responder_core::settings{cookie, config.rate_limit, config.answer_lifetime, log,
                                     config.new_source_rate},
            key,
            std::move(healthy), counters),
      gate_(counters),
      listener_(strand_, segment_listener::options{.port = config.query_port,
                                                   .ipv6 = config.ipv6,
                                                   .group = std::string(proxy::ipv6_group),
                                                   .protocol = "proxy_query",
                                                   .rescan_interval = config.interface_rescan}) {}

void proxy_responder::update(std::uint32_t rate_limit, std::uint32_t new_source_rate,
                             std::chrono::seconds answer_lifetime) {
  net::dispatch(strand_, [this, rate_limit, new_source_rate, answer_lifetime] {
    core_.update(rate_limit, new_source_rate, answer_lifetime);
  });
}

bool proxy_responder::start() {
  if (!listener_.open()) {
    return false;
  }
  listener_.start_rescans();
  if (listener_.v4()) {
    net::co_spawn(strand_, receive_loop(*listener_.v4()),
                  log_failure("proxy query ipv4 receive loop"));
  }
  if (listener_.v6()) {
    net::co_spawn(strand_, receive_loop(*listener_.v6()),
                  log_failure("proxy query ipv6 receive loop"));
  }
  spdlog::info("event=proxy_query_listening port={} ipv4={} ipv6={}", listener_.port(),
               listener_.v4().has_value(), listener_.v6().has_value());
  return true;
}

void proxy_responder::stop() {
  net::dispatch(strand_, [this] {
    stopped_ = true;
    listener_.close();
  });
}

net::awaitable<void> proxy_responder::receive_loop(udp::socket& socket) {
  std::array<std::byte, proxy::max_datagram> buffer{};
  while (!stopped_) {
    auto [ec] = co_await socket.async_wait(udp::socket::wait_read, net::as_tuple(net::use_awaitable));
    if (ec || stopped_) {
      co_return;
    }
    received_datagram got;
    while (!receive_datagram(socket, buffer, got)) {
      if (got.truncated) {
        ++counters_.malformed;
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      const network_interface* arrival = listener_.find_interface(got.interface_index);
      auto reply = core_.process_packet(std::span(buffer).first(got.size), got.source, arrival,
                                        now, std::chrono::system_clock::now());
      if (!reply) {
        continue;
      }
      // From the arrival interface's routable IPv6 address when it has one, as lanrelayd's
      // offers (segment/interfaces.hpp, answer_source).
      const outgoing_datagram answer{*reply, got.source, got.interface_index,
                                     answer_source(arrival, got.source.address())};
      std::size_t refused = 0;
      counters_.answers_sent += gate_.send(socket, std::span(&answer, 1), now, refused);
      if (refused != 0) {
        ++counters_.send_errors;
        spdlog::debug("event=proxy_answer_not_sent to={}", got.source.address().to_string());
      }
    }
  }
}

}  // namespace lanrelay::proxyhelper
