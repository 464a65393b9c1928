#pragma once

// What proxyhelperd did: counters (served at /-/stats, /-/status and /-/metrics) and the most
// recent queries (query_log, for /-/status and the status page).
//
// Thread safety: every counter is a relaxed atomic, updated from any io thread. A snapshot is not
// a consistent cut across counters; each value is exact on its own. query_log takes a mutex.

#include "lanrelay/segment/responder_guard.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace lanrelay::proxyhelper {

// The drops both segment responders share (malformed, own_packets, off_link, bad_source,
// rate_limited over query.rate_limit, new_source_limited over query.new_source_rate,
// unresolved_neighbour, send_queue_full) come from segment/responder_guard.hpp.
struct proxyhelper_counters : segment_drop_counters {
  // Proxy queries (responder.hpp).
  std::atomic<std::uint64_t> queries{0};          // valid queries from on-link senders
  std::atomic<std::uint64_t> answers_sent{0};
  std::atomic<std::uint64_t> no_healthy_proxy{0};  // valid query, nothing to advertise: silence
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

// One query from an agent on the link, and what came of it.
struct query_record {
  std::chrono::system_clock::time_point at;
  std::string client;                // address of the sender
  std::string outcome;               // "answered", "no healthy proxy", "rate limited", ...
  std::vector<std::string> proxies;  // advertised, best first (answered only)
};

// The last max_records queries from on-link senders (malformed datagrams and our own are not kept).
class query_log {
 public:
  static constexpr std::size_t max_records = 50;

  void add(query_record record);
  std::vector<query_record> recent() const;  // newest first

 private:
  mutable std::mutex mutex_;
  std::deque<query_record> records_;  // guarded by mutex_, oldest first
};

}  // namespace lanrelay::proxyhelper
