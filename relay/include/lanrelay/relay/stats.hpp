#pragma once

// Counters of the content server, served as JSON at /-/stats and later exported as metrics.
//
// Thread safety: every counter is a relaxed atomic, updated from any io thread. A snapshot is not
// a consistent cut across counters; each value is exact on its own.

#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/responder_guard.hpp"

#include <boost/json/object.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace lanrelay::relay {

class slot_pool;

// Discovery responder (discovery_responder.hpp): queries and why some were not answered.
// The drops both responders share (malformed, own_packets, off_link, bad_source, rate_limited over
// discovery.rate_limit, new_source_limited over discovery.new_source_rate, unresolved_neighbour,
// send_queue_full) come from segment/responder_guard.hpp.
struct responder_counters : segment_drop_counters {
  std::atomic<std::uint64_t> queries{0};        // valid queries from on-link senders
  std::atomic<std::uint64_t> offers_sent{0};
  std::atomic<std::uint64_t> not_held{0};       // valid query, nothing good enough in the store
  std::atomic<std::uint64_t> reply_too_large{0}; // the offer would be larger than the query
  std::atomic<std::uint64_t> send_errors{0};
  // Queries whose SHA-256 differs from every held item of the wanted name and version: the
  // agent's trusted digest and this cache disagree (a subset of not_held).
  std::atomic<std::uint64_t> digest_mismatches{0};
  // Offers for items a parent relay holds and this one pulls on request (parent_chain.hpp).
  std::atomic<std::uint64_t> parent_offers{0};
  // Fallbacks to the upstream agents reported in queries this relay answered, by
  // discovery::fallback_reason (index = code - 1); each query's report counted once, bounded.
  std::array<std::atomic<std::uint64_t>, discovery::fallback_reason_count> agent_fallbacks{};
};

struct relay_counters {
  std::atomic<std::uint64_t> requests{0};             // request heads handled
  std::atomic<std::uint64_t> bytes_served{0};         // item bytes sent (bodies only)
  std::atomic<std::uint64_t> transfers_completed{0};  // bodies sent in full
  std::atomic<std::uint64_t> transfers_aborted{0};    // client vanished, timed out or shutdown
  // Transfers reset because the client read slower than peers.min_client_rate (also counted in
  // transfers_aborted).
  std::atomic<std::uint64_t> slow_clients_reset{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_refused{0};  // over http.max_connections
  std::atomic<std::uint64_t> active_connections{0};
  std::atomic<std::uint64_t> header_timeouts{0};      // request head not complete in time
  std::atomic<std::uint64_t> tls_handshake_failures{0};  // HTTPS connections without a handshake
  std::atomic<std::uint64_t> bad_requests{0};         // 400, 405, 413 and 431 answers
  // Bytes this relay downloaded from upstream servers (mirror syncs, pull-through); whoever
  // downloads adds to it.
  std::atomic<std::uint64_t> bytes_fetched_upstream{0};
  // Bytes that did not match their expected SHA-256 (or size): a query whose digest differs from
  // the held item's, a cached file that changed behind the store's back, a bad upstream download.
  std::atomic<std::uint64_t> hash_mismatches{0};
  responder_counters discovery;
};

struct stats_snapshot {
  std::uint64_t active_transfers = 0;
  std::uint64_t peak_active_transfers = 0;
  std::uint64_t max_peers = 0;
  std::uint64_t refused_busy = 0;  // 503 answers: every slot was taken
  std::uint64_t refused_client_share = 0;  // 503 answers: the client held its share of slots
  std::uint64_t slow_clients_reset = 0;
  std::uint64_t bytes_served = 0;
  std::uint64_t requests = 0;
  std::uint64_t transfers_completed = 0;
  std::uint64_t transfers_aborted = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;
  std::uint64_t active_connections = 0;
  std::uint64_t header_timeouts = 0;
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t bad_requests = 0;
  std::uint64_t bytes_fetched_upstream = 0;
  std::uint64_t hash_mismatches = 0;
  struct {
    std::uint64_t queries = 0, offers_sent = 0, not_held = 0, malformed = 0, own_packets = 0,
                  off_link = 0, rate_limited = 0, reply_too_large = 0, send_errors = 0,
                  digest_mismatches = 0, new_source_limited = 0, bad_source = 0,
                  unresolved_neighbour = 0, send_queue_full = 0, parent_offers = 0;
  } discovery;
  std::array<std::uint64_t, discovery::fallback_reason_count> agent_fallbacks{};  // by code - 1
};

stats_snapshot take_snapshot(const relay_counters& counters, const slot_pool& slots) noexcept;

// One JSON object, keys named as the snapshot's members.
boost::json::object to_json_object(const stats_snapshot& snapshot);
std::string to_json(const stats_snapshot& snapshot);

}  // namespace lanrelay::relay
