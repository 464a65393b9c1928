#pragma once

// Counters of the content server, served as JSON at /-/stats and later exported as metrics.
//
// Thread safety: every counter is a relaxed atomic, updated from any io thread. A snapshot is not
// a consistent cut across counters; each value is exact on its own.

#include <atomic>
#include <cstdint>
#include <string>

namespace lanrelay::relay {

class slot_pool;

struct relay_counters {
  std::atomic<std::uint64_t> requests{0};             // request heads handled
  std::atomic<std::uint64_t> bytes_served{0};         // item bytes sent (bodies only)
  std::atomic<std::uint64_t> transfers_completed{0};  // bodies sent in full
  std::atomic<std::uint64_t> transfers_aborted{0};    // client vanished, timed out or shutdown
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_refused{0};  // over http.max_connections
  std::atomic<std::uint64_t> active_connections{0};
  std::atomic<std::uint64_t> header_timeouts{0};      // request head not complete in time
  std::atomic<std::uint64_t> bad_requests{0};         // 400, 405, 413 and 431 answers
};

struct stats_snapshot {
  std::uint64_t active_transfers = 0;
  std::uint64_t peak_active_transfers = 0;
  std::uint64_t max_peers = 0;
  std::uint64_t refused_busy = 0;  // 503 answers: every slot was taken
  std::uint64_t bytes_served = 0;
  std::uint64_t requests = 0;
  std::uint64_t transfers_completed = 0;
  std::uint64_t transfers_aborted = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;
  std::uint64_t active_connections = 0;
  std::uint64_t header_timeouts = 0;
  std::uint64_t bad_requests = 0;
};

stats_snapshot take_snapshot(const relay_counters& counters, const slot_pool& slots) noexcept;

// One JSON object, keys named as the snapshot's members.
std::string to_json(const stats_snapshot& snapshot);

}  // namespace lanrelay::relay
