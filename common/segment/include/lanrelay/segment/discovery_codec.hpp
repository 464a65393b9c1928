#pragma once

// The discovery datagram codec: the bytes of queries and offers exchanged on UDP 4126, as
// specified in docs/protocol.md. Keep the two in step.
//
// Pure functions over byte spans: no sockets, no global state, safe to call from any thread.
// Every decode function accepts arbitrary untrusted bytes; it never reads outside the span and
// reports what is wrong through `errc`, whose values are stable so the daemon can count drops
// by reason.

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/version.hpp"

#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay::discovery {

// Why a datagram was rejected (decode) or could not be produced (encode).
enum class errc {
  truncated = 1,        // shorter than its header, or a field runs past the end of the datagram
  bad_magic,            // does not start with "LNRY": not a lanrelay datagram
  unsupported_version,  // protocol version other than protocol_version
  wrong_type,           // message type is not the one asked for, or is unknown
  missing_field,        // a mandatory field is absent
  duplicate_field,      // a known field appears twice
  invalid_field,        // a known field has the wrong length or a value outside its rules
  too_large,            // datagram over max_datagram, or an offer over the caller's limit
  unpadded,             // query shorter than query_datagram_size (anti-amplification)
};

const boost::system::error_category& discovery_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), discovery_category()};
}

enum class message_type : std::uint8_t { query = 1, offer = 2 };

// Who answered: the relay daemon of the segment, or a peer agent sharing its own copy.
enum class responder_role : std::uint8_t { relay = 1, peer = 2 };

// TLV field type codes on the wire. One numbering for all message types; a code that is not
// defined for the message carrying it is skipped like an unknown code.
enum class field_type : std::uint16_t {
  transaction_id = 0x0001,  // u64, query and offer
  sender_cookie = 0x0002,   // u64, query and offer
  kind = 0x0003,            // u8, query and offer
  name = 0x0004,            // string, query and offer
  version = 0x0005,         // string, query and offer
  sha256 = 0x0006,          // 32 bytes, query (optional) and offer
  size = 0x0007,            // u64, offer
  url = 0x0008,             // string, offer
  free_slots = 0x0009,      // u16, offer
  role = 0x000a,            // u8, offer
  padding = 0x000b,         // any bytes, ignored; any message
  partial_ok = 0x000c,      // u8 1, query (optional): holders of some pieces may answer
  pieces_held = 0x000d,     // u32, offer (optional): a partial holder's verified pieces
  fallbacks = 0x000e,       // (u8 reason, u16 count) entries, query (optional)
};

// Why an agent had to download an item from the upstream instead of the segment. An agent
// counts them in its state directory and reports them in a later query (the fallbacks field);
// the relay that answers it exports them. The values are wire codes: never reuse one.
enum class fallback_reason : std::uint8_t {
  segment_silent = 1,    // the segment's query (broadcast, multicast) brought no offer
  nothing_found = 2,     // the segment, the address plan and DNS-SD all brought no offer
  holders_busy = 3,      // every holder answered 503 for longer than the agent waits
  holders_failed = 4,    // holders failed, stalled or sent bytes that did not verify
  untrusted_offers = 5,  // offers came, but none matched a trusted digest
};
inline constexpr std::size_t fallback_reason_count = 5;
inline constexpr std::size_t max_fallback_entries = 8;  // in one query
inline constexpr std::size_t fallback_entry_size = 3;   // reason u8, count u16
// An agent counts at most this many fallbacks per reason until a relay has been told, and a
// relay counts at most this many per reason from one query (a forged query cannot add more).
inline constexpr std::uint16_t max_reported_fallbacks = 1000;

// "segment_silent", ...: the metric label and the agent's file key; empty for an unknown code.
std::string_view to_string(fallback_reason reason) noexcept;

struct fallback_count {
  fallback_reason reason = fallback_reason::segment_silent;
  std::uint16_t count = 1;  // at least 1

  bool operator==(const fallback_count&) const = default;
};

inline constexpr std::array<std::byte, 4> magic{std::byte{'L'}, std::byte{'N'}, std::byte{'R'},
                                                 std::byte{'Y'}};
inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::uint16_t default_port = 4126;
// Link-local scope (2), transient flag (1): not an IANA-assigned group, never routed off-link.
inline constexpr std::string_view ipv6_group = "ff12::4126";

inline constexpr std::size_t max_datagram = 1200;   // fits the IPv6 minimum MTU with headers
inline constexpr std::size_t header_size = 6;       // magic, version, message type
inline constexpr std::size_t field_header_size = 4;  // type u16, length u16
inline constexpr std::size_t max_name_length = 128;  // as is_valid_name
inline constexpr std::size_t max_version_length = 64;
inline constexpr std::size_t max_url_length = 512;

// Every query is padded to exactly this size, and decode_query rejects shorter ones, so that a
// responder never sends more bytes than it received.
inline constexpr std::size_t query_datagram_size = 1024;

// The largest query and offer that can be built from the fields of this protocol version.
inline constexpr std::size_t max_query_content_size =
    header_size + 2 * (field_header_size + 8) + (field_header_size + 1) +
    (field_header_size + max_name_length) + (field_header_size + max_version_length) +
    (field_header_size + 32) + (field_header_size + 1) +
    (field_header_size + fallback_entry_size * max_fallback_entries);
inline constexpr std::size_t max_offer_size =
    header_size + 2 * (field_header_size + 8) + 2 * (field_header_size + 1) +
    (field_header_size + max_name_length) + (field_header_size + max_version_length) +
    (field_header_size + 32) + (field_header_size + 8) + (field_header_size + max_url_length) +
    (field_header_size + 2) + (field_header_size + 4);
static_assert(max_query_content_size + field_header_size <= query_datagram_size, "padding must fit");
static_assert(max_offer_size <= query_datagram_size, "every valid query must admit every valid offer");
static_assert(query_datagram_size <= max_datagram);

// "I want this item." Sent to the segment by an agent (or by a peer that is missing an item).
struct query {
  std::uint64_t transaction_id = 0;  // random per query; offers echo it
  std::uint64_t sender_cookie = 0;   // random per process; a responder ignores its own
  item_kind kind = item_kind::installer;
  std::string name;                     // is_valid_name
  std::string version;                  // wanted version; is_valid_version_text
  std::optional<sha256_digest> sha256;  // when the agent knows exactly which bytes it wants
  // The sender fetches piece by piece from several holders (docs/protocol.md, "Swarming"): peers
  // still downloading the item may answer with pieces_held.
  bool partial_ok = false;
  // Fallbacks to the upstream since the agent last reported to a relay that answered; each
  // reason at most once, known reasons only. Empty: the field is not sent.
  std::vector<fallback_count> fallbacks;

  bool operator==(const query&) const = default;
};

// "I hold this item; fetch it here." Unicast back to the query's source address and port.
struct offer {
  std::uint64_t transaction_id = 0;  // the query's
  std::uint64_t sender_cookie = 0;   // the responder's own cookie
  responder_role role = responder_role::relay;
  item_kind kind = item_kind::installer;
  std::string name;        // is_valid_name
  std::string version;     // version held; is_valid_version_text
  std::uint64_t size = 0;  // bytes
  sha256_digest sha256{};
  std::string url;               // is_valid_offer_url
  std::uint16_t free_slots = 0;  // transfer slots free when the offer was sent
  // Set only by a holder that has some of the item's pieces so far (answering a partial_ok
  // query): how many it has verified. Which ones: GET /-/have/<sha256> from it.
  std::optional<std::uint32_t> pieces_held;

  bool operator==(const offer&) const = default;
};

// 1..max_version_length characters, each visible ASCII (0x21..0x7e). The kind's own version
// rules (version.hpp) are the responder's business, not the codec's.
bool is_valid_version_text(std::string_view text) noexcept;

// At most max_url_length visible ASCII characters, starting with "http://", an absolute URI with
// a non-empty IPv4, bracketed IPv6 (no zone ID) or registered-name host, an optional port in
// 1..65535, and no userinfo or fragment.
bool is_valid_offer_url(std::string_view text) noexcept;

// Exactly query_datagram_size bytes. Fails with invalid_field when a field breaks its rule; nothing is
// sent that a receiver would reject.
result<std::vector<std::byte>> encode(const query& q);

// At most min(max_size, max_datagram) bytes, else too_large. A responder passes the size of the
// query datagram it is answering. Fails with invalid_field when a field breaks its rule.
result<std::vector<std::byte>> encode(const offer& o, std::size_t max_size);

// Checks, in order: size (too_large, truncated), magic, version, message type, then for a query
// its size against query_datagram_size, then the fields in datagram order, then mandatory fields.
result<query> decode_query(std::span<const std::byte> datagram);
result<offer> decode_offer(std::span<const std::byte> datagram);

// The message type when the datagram is at most max_datagram bytes and its header is valid, of
// this protocol version and a known type; the fields are not read. Lets a socket loop dispatch
// to decode_query or decode_offer.
std::optional<message_type> peek_type(std::span<const std::byte> datagram) noexcept;

// The amplification rule: a reply may be sent only when it is no larger than the query that
// caused it (and no larger than max_datagram).
bool reply_fits(std::size_t query_size, std::size_t offer_size) noexcept;

}  // namespace lanrelay::discovery

template <>
struct boost::system::is_error_code_enum<lanrelay::discovery::errc> : std::true_type {};
