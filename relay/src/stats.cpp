#include "lanrelay/relay/stats.hpp"

#include "lanrelay/relay/slot_pool.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace lanrelay::relay {

stats_snapshot take_snapshot(const relay_counters& c, const slot_pool& slots) noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  stats_snapshot s;
  s.active_transfers = slots.active();
  s.peak_active_transfers = slots.peak();
  s.max_peers = slots.capacity();
  s.refused_busy = slots.refused();
  s.refused_client_share = slots.refused_client_share();
  s.slow_clients_reset = c.slow_clients_reset.load(relaxed);
  s.bytes_served = c.bytes_served.load(relaxed);
  s.requests = c.requests.load(relaxed);
  s.transfers_completed = c.transfers_completed.load(relaxed);
  s.transfers_aborted = c.transfers_aborted.load(relaxed);
  s.connections_accepted = c.connections_accepted.load(relaxed);
  s.connections_refused = c.connections_refused.load(relaxed);
  s.active_connections = c.active_connections.load(relaxed);
  s.header_timeouts = c.header_timeouts.load(relaxed);
  s.tls_handshake_failures = c.tls_handshake_failures.load(relaxed);
  s.bad_requests = c.bad_requests.load(relaxed);
  s.bytes_fetched_upstream = c.bytes_fetched_upstream.load(relaxed);
  s.hash_mismatches = c.hash_mismatches.load(relaxed);
  const auto& d = c.discovery;
  s.discovery = {d.queries.load(relaxed),     d.offers_sent.load(relaxed),
                 d.not_held.load(relaxed),    d.malformed.load(relaxed),
                 d.own_packets.load(relaxed), d.off_link.load(relaxed),
                 d.rate_limited.load(relaxed), d.reply_too_large.load(relaxed),
                 d.send_errors.load(relaxed), d.digest_mismatches.load(relaxed),
                 d.new_source_limited.load(relaxed), d.bad_source.load(relaxed),
                 d.unresolved_neighbour.load(relaxed), d.send_queue_full.load(relaxed),
                 d.parent_offers.load(relaxed)};
  for (std::size_t i = 0; i < s.agent_fallbacks.size(); ++i) {
    s.agent_fallbacks[i] = d.agent_fallbacks[i].load(relaxed);
  }
  return s;
}

boost::json::object to_json_object(const stats_snapshot& s) {
  boost::json::object o;
  o["active_transfers"] = s.active_transfers;
  o["peak_active_transfers"] = s.peak_active_transfers;
  o["max_peers"] = s.max_peers;
  o["refused_busy"] = s.refused_busy;
  o["refused_client_share"] = s.refused_client_share;
  o["slow_clients_reset"] = s.slow_clients_reset;
  o["bytes_served"] = s.bytes_served;
  o["requests"] = s.requests;
  o["transfers_completed"] = s.transfers_completed;
  o["transfers_aborted"] = s.transfers_aborted;
  o["connections_accepted"] = s.connections_accepted;
  o["connections_refused"] = s.connections_refused;
  o["active_connections"] = s.active_connections;
  o["header_timeouts"] = s.header_timeouts;
  o["tls_handshake_failures"] = s.tls_handshake_failures;
  o["bad_requests"] = s.bad_requests;
  o["bytes_fetched_upstream"] = s.bytes_fetched_upstream;
  o["hash_mismatches"] = s.hash_mismatches;
  const auto& d = s.discovery;
  o["discovery"] = boost::json::object{
      {"queries", d.queries},         {"offers_sent", d.offers_sent},
      {"not_held", d.not_held},       {"malformed", d.malformed},
      {"own_packets", d.own_packets}, {"off_link", d.off_link},
      {"rate_limited", d.rate_limited}, {"reply_too_large", d.reply_too_large},
      {"send_errors", d.send_errors}, {"digest_mismatches", d.digest_mismatches},
      {"new_source_limited", d.new_source_limited}, {"bad_source", d.bad_source},
      {"unresolved_neighbour", d.unresolved_neighbour}, {"send_queue_full", d.send_queue_full},
      {"parent_offers", d.parent_offers}};
  boost::json::object fallbacks;
  for (std::size_t i = 0; i < s.agent_fallbacks.size(); ++i) {
    fallbacks[discovery::to_string(static_cast<discovery::fallback_reason>(i + 1))] =
        s.agent_fallbacks[i];
  }
  o["agent_fallbacks"] = std::move(fallbacks);
  return o;
}

std::string to_json(const stats_snapshot& s) { return boost::json::serialize(to_json_object(s)); }

}  // namespace lanrelay::relay
