#pragma once

// Which answers of a segment responder may be handed to the kernel now (issue 10, a flood of
// spoofed IPv4 sources).
//
// Why: an answer to an address the kernel has no link-layer address for waits in the kernel
// while ARP (IPv4) or neighbour discovery (IPv6) runs, up to three seconds, and then is dropped.
// While it waits it is charged to the socket's send buffer. A host on the segment that sends
// queries from a few hundred invented (but on-link) addresses, each within its own rate limit,
// thus fills the responder's send buffer with answers that will never leave, and every send on
// that socket fails with EAGAIN: the real agent's answer too.
//
// The rule, per answer, from the kernel's neighbour entry for (destination, arrival interface),
// read over rtnetlink (RTM_GETNEIGH):
//   - resolved (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP): sent. Such an answer leaves
//     at once; it never waits in the send buffer.
//   - resolving (INCOMPLETE): not sent, counted unresolved_neighbour. An earlier answer already
//     waits for this neighbour; one more would only wait beside it.
//   - failed (FAILED) or no entry: sent only while the socket's queued bytes (SIOCOUTQ), with
//     what this batch already let through, stay under half its send buffer (SO_SNDBUF); else
//     counted send_queue_full. The other half is kept for answers that leave at once. The answer
//     sent counts as resolving (a second answer to the same source in the same batch is not
//     sent). After a FAILED entry got an answer, the destination gets no other answer while the
//     kernel still says FAILED for failed_quiet (counted unresolved_neighbour): the kernel keeps
//     FAILED entries for as long as it likes, so a host that comes back must get an answer again
//     some time, and the answer that went out lets it resolve at once if it is there.
//   - still no entry after an answer went out: the kernel keeps none for this destination
//     (loopback, a local address, or a full neighbour table, where it drops the datagram at
//     once): counts as resolved.
// So each invented address holds at most one answer in the kernel at a time, invented addresses
// together hold at most half the send buffer, and a known agent's answer always goes out.
//
// Each verdict from the kernel is remembered for a short time in a fixed table (slots entries,
// direct-mapped on a keyed hash of destination and interface, a colliding destination takes the
// slot over): a busy known source costs one rtnetlink round trip per resolved_for, not one per
// answer. Memory is fixed, each answer costs O(1).
//
// The price: a host the kernel has no entry for gets one answer until its address resolves
// (a millisecond on a LAN, just_sent at least); its other queries meanwhile, which would have
// waited beside that answer, are dropped. Agents send each query three times over their
// discovery window, so the next copy is answered.
//
// When rtnetlink cannot be opened or does not answer, every destination reads as "no entry", and
// so as resolved after its first answer: the gate then only spaces the first answers, as the
// responder behaved before it.
//
// Thread safety: none; each responder runs its gate on its own strand.

#include "lanrelay/segment/address_hash.hpp"
#include "lanrelay/segment/datagram.hpp"
#include "lanrelay/segment/responder_guard.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace lanrelay {

enum class neighbour_state {
  none,       // no entry, or the kernel could not be asked
  resolved,   // a link-layer address is known: a datagram leaves at once
  resolving,  // INCOMPLETE: datagrams wait for address resolution
  failed,     // FAILED: resolution failed lately
};

// The kernel's neighbour entry for `address` on interface `interface_index`, read over
// rtnetlink. Not thread safe (one netlink socket, opened on first use).
class neighbour_table {
 public:
  neighbour_table();
  ~neighbour_table();
  neighbour_table(const neighbour_table&) = delete;
  neighbour_table& operator=(const neighbour_table&) = delete;

  neighbour_state lookup(const boost::asio::ip::address& address, unsigned interface_index);

 private:
  int fd_ = -1;
  bool tried_ = false;
  std::uint32_t sequence_ = 0;
};

class reply_gate {
 public:
  static constexpr std::size_t slots = 4096;
  static constexpr std::chrono::seconds resolved_for{1};   // resolved / resolving remembered
  static constexpr std::chrono::seconds failed_quiet{10};  // see the top of this file
  // After an answer to a destination without an entry, how long it counts as resolving without
  // asking the kernel (longer than one batch takes, shorter than an agent's retransmission).
  static constexpr std::chrono::milliseconds just_sent{10};
  // What a queued datagram is assumed to cost in the send buffer beyond its payload (the kernel
  // charges the socket buffer's true size).
  static constexpr std::size_t overhead = 1024;

  using lookup_function = std::function<neighbour_state(const boost::asio::ip::address&, unsigned)>;

  enum class verdict { send, unresolved_neighbour, send_queue_full };

  // `counters` must outlive the gate. `lookup` (tests) replaces the kernel's neighbour table.
  explicit reply_gate(segment_drop_counters& counters, lookup_function lookup = {});

  // The verdict for one answer of `size` bytes to `destination` out of `interface_index`, when
  // the send queue holds `queued` bytes (this batch's admitted answers included: the gate adds
  // what it lets through unresolved) of a send buffer of `send_buffer` bytes. Counts a drop.
  verdict check(const boost::asio::ip::address& destination, unsigned interface_index,
                std::size_t size, std::size_t& queued, std::size_t send_buffer,
                std::chrono::steady_clock::time_point now);

  // Sends the answers that may leave (check) with send_datagrams; returns how many the kernel
  // took. `refused` is set to how many it refused (send errors; dropped answers are not).
  std::size_t send(boost::asio::ip::udp::socket& socket,
                   std::span<const outgoing_datagram> answers,
                   std::chrono::steady_clock::time_point now, std::size_t& refused);

 private:
  struct slot {
    std::array<unsigned char, 16> address{};
    unsigned interface = 0;
    neighbour_state state = neighbour_state::none;
    std::chrono::steady_clock::time_point until{};        // state holds until then
    std::chrono::steady_clock::time_point quiet_until{};  // FAILED: no answer before then
    bool answered_without_entry = false;  // answered while the kernel had no entry for it
  };

  slot& slot_for(const std::array<unsigned char, 16>& address, unsigned interface) noexcept;
  // The slot holding the neighbour state of `destination`, asked of the kernel unless the slot
  // still holds it.
  slot& classify(const boost::asio::ip::address& destination, unsigned interface_index,
                 std::chrono::steady_clock::time_point now);
  // The verdict that needs no look at the send queue, if there is one (counts a drop).
  std::optional<verdict> without_room(const slot& s, std::chrono::steady_clock::time_point now);
  // The verdict for an answer that will wait in the kernel (counts a drop).
  verdict with_room(slot& s, std::size_t size, std::size_t& queued, std::size_t send_buffer,
                    std::chrono::steady_clock::time_point now);

  segment_drop_counters& counters_;
  lookup_function lookup_;
  std::unique_ptr<neighbour_table> kernel_;  // when lookup_ is empty
  std::unique_ptr<slot[]> slots_;
  address_hash hash_;
  std::vector<outgoing_datagram> admitted_;
};

}  // namespace lanrelay
