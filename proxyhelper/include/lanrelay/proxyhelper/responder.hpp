#pragma once

// Answers proxy queries (docs/protocol.md, "Proxy protocol") with the proxies that are healthy
// right now, signed with proxyhelperd's key.
//
// responder_core is the socket-free seam: process_packet() takes one datagram, where it came from
// and the interface it arrived on, and returns the answer to send back, if any. Tests and the
// fuzzer drive it directly. proxy_responder receives through a segment_listener
// (segment/segment_listener.hpp: 0.0.0.0:port and [::]:port joined to ff12::4129 on every
// multicast interface, re-scanned every interface_rescan) and sends through a reply_gate
// (segment/reply_gate.hpp), as relay/discovery_responder.hpp does.
//
// Threads: responder_core is not thread safe; proxy_responder runs it on its own strand.

#include "lanrelay/base/site_key.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/stats.hpp"
#include "lanrelay/segment/interfaces.hpp"
#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/segment/reply_gate.hpp"
#include "lanrelay/segment/responder_guard.hpp"
#include "lanrelay/segment/segment_listener.hpp"
#include "lanrelay/segment/source_rate_limiter.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lanrelay::proxyhelper {

class responder_core {
 public:
  struct settings {
    std::uint64_t cookie = 0;       // ours; queries carrying it are our own
    std::uint32_t rate_limit = 20;  // queries per second per source address (burst: 2 s)
    std::chrono::seconds answer_lifetime{300};
    query_log* log = nullptr;  // where on-link queries are recorded; must outlive the core
    std::uint32_t new_source_rate = 500;  // per family and interface (source_rate_limiter.hpp)
  };
  using healthy_proxies = std::function<std::vector<proxy_protocol::proxy_entry>()>;

  // `key` signs every answer (nullptr: answers go unsigned, for tests of agents that opted in).
  // `key`, `healthy` and `counters` must outlive the core.
  responder_core(settings s, const site_key* key, healthy_proxies healthy,
                 proxyhelper_counters& counters);

  // The answer datagram to send back to `source`, or nullopt (counted by reason). `arrival` is
  // the interface the datagram came in on (nullptr when unknown: then nothing is answered).
  // `now` times the rate limit, `wall` the answer's expiry.
  std::optional<std::vector<std::byte>> process_packet(
      std::span<const std::byte> datagram, const boost::asio::ip::udp::endpoint& source,
      const network_interface* arrival, std::chrono::steady_clock::time_point now,
      std::chrono::system_clock::time_point wall);

  // A reloaded configuration's rate limits and answer lifetime, for the next query.
  void update(std::uint32_t rate_limit, std::uint32_t new_source_rate,
              std::chrono::seconds answer_lifetime);

 private:

  settings settings_;
  const site_key* key_;
  healthy_proxies healthy_;
  proxyhelper_counters& counters_;
  responder_guard guard_;
};

class proxy_responder {
 public:
  // `key`, `healthy`, `counters` and `log` (may be null) must outlive the responder.
  proxy_responder(boost::asio::io_context& ioc, const proxyhelper_config& config,
                  std::uint64_t cookie, const site_key* key,
                  responder_core::healthy_proxies healthy, proxyhelper_counters& counters,
                  query_log* log = nullptr);

  // Opens the sockets and starts answering; returns false when neither IPv4 nor IPv6 could be
  // opened (logged).
  bool start();
  void stop();
  // Applies a reloaded query.rate_limit, query.new_source_rate and query.answer_lifetime (on the
  // responder's strand).
  void update(std::uint32_t rate_limit, std::uint32_t new_source_rate,
              std::chrono::seconds answer_lifetime);

  std::uint16_t port() const noexcept { return listener_.port(); }

 private:
  boost::asio::awaitable<void> receive_loop(boost::asio::ip::udp::socket& socket);

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  const proxyhelper_config& config_;
  proxyhelper_counters& counters_;
  responder_core core_;
  reply_gate gate_;            // strand
  segment_listener listener_;  // strand
  bool stopped_ = false;  // strand
};

}  // namespace lanrelay::proxyhelper
