#pragma once

// What every segment responder (lanrelayd's discovery responder, proxyhelperd's proxy query
// responder) does with a datagram before it looks at the question, and with an answer before it
// sends it: one chain, here, so that both daemons drop the same things and count them the same
// way (docs/protocol.md, "What a responder drops").
//
// Receiving (responder_guard::admit, no sockets): in this order, the first that applies drops
// the datagram and counts it:
//   1. it did not decode                                    -> malformed
//   2. it carries our own cookie (our own query came back)   -> own_packets
//   3. the arrival interface is unknown                      -> off_link
//   4. the source is no single sender (port 0, broadcast, a subnet's network address, ...;
//      is_unicast_sender)                                    -> bad_source
//   5. the source is not on a subnet of the arrival interface, nor in the responder's
//      unicast networks (lanrelayd's discovery.unicast_networks: agents one router away that
//      found the relay by DNS or an address plan and ask it by unicast)  -> off_link
//   6. the source is over its own rate                       -> rate_limited
//      a new source while newcomers are over their rate     -> new_source_limited
//      (source_rate_limiter.hpp)
//
// Sending (reply_gate, segment library too: reply_gate.hpp) adds two reasons, counted here so
// that both daemons show them: unresolved_neighbour and send_queue_full.
//
// Thread safety: responder_guard is not thread safe (its caller's strand runs it). The counters
// are relaxed atomics, readable from any thread.

#include "lanrelay/base/metrics.hpp"
#include "lanrelay/base/network_list.hpp"
#include "lanrelay/segment/interfaces.hpp"
#include "lanrelay/segment/source_rate_limiter.hpp"

#include <boost/asio/ip/udp.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace lanrelay {

// Why a segment responder did not answer, for the reasons both responders share. Each daemon's
// counters derive from this, so /-/stats and /-/metrics name them the same in both.
struct segment_drop_counters {
  std::atomic<std::uint64_t> malformed{0};    // not a valid query datagram (any codec error)
  std::atomic<std::uint64_t> own_packets{0};  // our own cookie: our own query came back
  std::atomic<std::uint64_t> off_link{0};     // sender not on a subnet of the arrival interface
  // Port 0, broadcast, multicast, unspecified or a subnet's network address as the source.
  std::atomic<std::uint64_t> bad_source{0};
  std::atomic<std::uint64_t> rate_limited{0};  // a known sender over its own rate
  // A new sender while the newcomers of its family on its interface were over their rate
  // (source_rate_limiter.hpp).
  std::atomic<std::uint64_t> new_source_limited{0};
  // Answers not sent because the kernel is still resolving the destination's link-layer address
  // (an answer already waits for it) or failed to lately (reply_gate.hpp).
  std::atomic<std::uint64_t> unresolved_neighbour{0};
  // Answers to a destination the kernel has no link-layer address for, not sent because the
  // socket's send queue held more than its share for such answers (reply_gate.hpp).
  std::atomic<std::uint64_t> send_queue_full{0};

  // Datagrams dropped before they were looked at as a question (reasons 1-6 above).
  std::uint64_t dropped_on_receipt() const noexcept;
};

// Adds each counter to `o` under its member's name.
void add_to_json(boost::json::object& o, const segment_drop_counters& c);

// One sample per reason, labelled as in the *_queries_dropped_total{reason} families:
// malformed, own_packet, off_link, bad_source, rate_limited, new_source_limited,
// unresolved_neighbour, send_queue_full.
std::vector<metrics::sample> drop_samples(const segment_drop_counters& c);

class responder_guard {
 public:
  struct settings {
    std::uint64_t cookie = 0;             // ours; queries carrying it are our own
    std::uint32_t rate_limit = 20;        // per known source, per second (burst: 2 s)
    std::uint32_t new_source_rate = 500;  // per family and interface (source_rate_limiter.hpp)
    // Senders off the arrival interface's subnets that are answered all the same (step 5).
    network_list unicast_networks;
  };

  enum class verdict {
    admitted,
    malformed,
    own_packet,
    off_link,
    bad_source,
    source_over_rate,
    newcomers_over_rate,
  };

  // `counters` must outlive the guard.
  responder_guard(settings s, segment_drop_counters& counters);

  // Runs the chain at the top of this file for one datagram and counts a drop by its reason.
  // `sender_cookie` is the decoded query's cookie, nullopt when the datagram did not decode;
  // `arrival` is the interface it came in on (nullptr when unknown).
  verdict admit(std::optional<std::uint64_t> sender_cookie,
                const boost::asio::ip::udp::endpoint& source, const network_interface* arrival,
                std::chrono::steady_clock::time_point now);

  // New rates from now on (configuration reload); tracked sources keep their entries.
  void update(std::uint32_t rate_limit, std::uint32_t new_source_rate) noexcept;

 private:
  std::uint64_t cookie_;
  network_list unicast_networks_;
  segment_drop_counters& counters_;
  source_rate_limiter limiter_;
};

}  // namespace lanrelay
