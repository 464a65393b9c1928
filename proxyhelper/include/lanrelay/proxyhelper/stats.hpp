#pragma once

// Counters of proxyhelperd, served as JSON at /-/stats and later exported as metrics.
//
// Thread safety: every counter is a relaxed atomic, updated from any io thread. A snapshot is not
// a consistent cut across counters; each value is exact on its own.

#include <atomic>
#include <cstdint>

namespace lanrelay::proxyhelper {

struct proxyhelper_counters {
  // Proxy queries (responder.hpp).
  std::atomic<std::uint64_t> queries{0};          // valid queries from on-link senders
  std::atomic<std::uint64_t> answers_sent{0};
  std::atomic<std::uint64_t> no_healthy_proxy{0};  // valid query, nothing to advertise: silence
  std::atomic<std::uint64_t> malformed{0};         // not a valid query datagram (any codec error)
  std::atomic<std::uint64_t> own_packets{0};
  std::atomic<std::uint64_t> off_link{0};          // sender not on a subnet of the arrival interface
  std::atomic<std::uint64_t> rate_limited{0};
  std::atomic<std::uint64_t> reply_too_large{0};
  std::atomic<std::uint64_t> send_errors{0};
  // Health checks (health.hpp).
  std::atomic<std::uint64_t> checks{0};
  std::atomic<std::uint64_t> check_failures{0};
  // HTTP (pac_server.hpp).
  std::atomic<std::uint64_t> http_requests{0};
  std::atomic<std::uint64_t> pac_served{0};        // /proxy.pac and /wpad.dat answers
  std::atomic<std::uint64_t> connections_refused{0};
};

}  // namespace lanrelay::proxyhelper
