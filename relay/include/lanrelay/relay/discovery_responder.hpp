#pragma once

// Answers segment queries (docs/protocol.md) for what the store holds.
//
// responder_core is the socket-free seam: process_packet() takes one datagram, where it came from
// and the interface it arrived on, and returns the offer to send back, if any. Tests and the
// fuzzer drive it directly. discovery_responder receives through a segment_listener
// (segment/segment_listener.hpp: 0.0.0.0:port for IPv4 directed and limited broadcast and unicast,
// [::]:port joined to the IPv6 link-local group on every multicast interface, re-scanned every
// interface_rescan so interfaces that come and go are picked up without a restart) and answers
// in batches, through a reply_gate (segment/reply_gate.hpp: no answers piling up in the kernel for
// addresses that never resolve). A socket that fails is logged and closed; the daemon keeps running.
//
// Threads: responder_core is not thread safe; discovery_responder runs it on its own strand.
// Counters are relaxed atomics, readable from any thread.

#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/stats.hpp"
#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/interfaces.hpp"
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
#include <utility>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace lanrelay::relay {

class mirror_service;
class parent_chain;

class responder_core {
 public:
  struct settings {
    std::uint64_t cookie = 0;            // ours; queries carrying it are our own
    discovery::responder_role role = discovery::responder_role::relay;
    std::uint16_t http_port = 4127;      // where offers tell agents to fetch
    std::uint32_t rate_limit = 20;       // queries per second per source address (burst: 2 s)
    std::uint32_t new_source_rate = 500;  // per family and interface (source_rate_limiter.hpp)
    // Off-link senders answered by unicast (discovery.unicast_networks; responder_guard.hpp).
    network_list unicast_networks;
  };

  // `free_slots` reports the content server's free transfer slots when an offer is built.
  // `mirrors` (may be null; must outlive the core): mirrored ActiveUpdate files are offered too,
  // when the store holds nothing that matches. `parents` (may be null; must outlive the core):
  // a query neither satisfies is asked of the parent relays (parent_chain.hpp), and once a
  // parent has offered the item, answered with an offer for this relay, which pulls it on the
  // first request.
  responder_core(settings s, content_store& store, std::function<std::uint16_t()> free_slots,
                 responder_counters& counters, const mirror_service* mirrors = nullptr,
                 parent_chain* parents = nullptr);

  // The offer datagram to send back to `source`, or nullopt (counted by reason). `arrival` is the
  // interface the datagram came in on (nullptr when unknown: then nothing is answered).
  std::optional<std::vector<std::byte>> process_packet(std::span<const std::byte> datagram,
                                                       const boost::asio::ip::udp::endpoint& source,
                                                       const network_interface* arrival,
                                                       std::chrono::steady_clock::time_point now);
  // The same, knowing the address the query was sent to (`arrived_at`; unspecified when not
  // known). A query from an off-link sender in the unicast networks is answered with a URL
  // naming `arrived_at`, and the answer must leave from that address (reply_source()).
  std::optional<std::vector<std::byte>> process_packet(std::span<const std::byte> datagram,
                                                       const boost::asio::ip::udp::endpoint& source,
                                                       const network_interface* arrival,
                                                       const boost::asio::ip::address& arrived_at,
                                                       std::chrono::steady_clock::time_point now);

  // The address an answer to `source` must be sent from: `arrived_at` for a sender off the
  // arrival interface's subnets (the routing table might choose another address, and agents use
  // only offers whose URL names their sender), else unspecified (the kernel's choice).
  static boost::asio::ip::address reply_source(const boost::asio::ip::udp::endpoint& source,
                                               const network_interface* arrival,
                                               const boost::asio::ip::address& arrived_at);

  // Queries answered per second per source from now on (configuration reload).
  void set_rate_limit(std::uint32_t per_second) noexcept {
    settings_.rate_limit = per_second;
    guard_.update(settings_.rate_limit, settings_.new_source_rate);
  }

 private:
  std::optional<std::string> url_host(const network_interface& arrival,
                                      const boost::asio::ip::address& source) const;
  // Adds the fallbacks an answered query reports (a relay only; once per query, whose copies
  // share a transaction id; each count at most discovery::max_reported_fallbacks).
  void count_fallbacks(const discovery::query& q);

  settings settings_;
  content_store& store_;
  std::function<std::uint16_t()> free_slots_;
  responder_counters& counters_;
  const mirror_service* mirrors_;
  parent_chain* parents_;
  responder_guard guard_;
  mutable std::unordered_map<std::uint32_t, std::string> host_texts_;  // IPv4 address -> text
  // The latest queries whose report was counted: (sender cookie, transaction id), a ring.
  std::array<std::pair<std::uint64_t, std::uint64_t>, 64> reported_{};
  std::size_t next_reported_ = 0;
};

class discovery_responder {
 public:
  // `counters` (the server's, so /-/stats shows them) must outlive the responder.
  discovery_responder(boost::asio::io_context& ioc, const relay_config& config,
                      content_store& store, std::uint16_t http_port, std::uint64_t cookie,
                      std::function<std::uint16_t()> free_slots, responder_counters& counters,
                      const mirror_service* mirrors = nullptr, parent_chain* parents = nullptr);

  // Opens the sockets and starts answering; errors opening one family are logged, not fatal.
  // Returns false when neither IPv4 nor IPv6 could be opened.
  bool start();
  void stop();
  // From any thread; applied on the responder's strand (configuration reload).
  void set_rate_limit(std::uint32_t per_second);

  const responder_counters& counters() const noexcept { return counters_; }
  std::uint16_t port() const noexcept { return listener_.port(); }  // the bound port

 private:
  boost::asio::awaitable<void> receive_loop(boost::asio::ip::udp::socket& socket);

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  const discovery_settings settings_;
  responder_counters& counters_;
  responder_core core_;
  reply_gate gate_;            // strand
  segment_listener listener_;  // strand
  bool stopped_ = false;  // strand
};

}  // namespace lanrelay::relay
