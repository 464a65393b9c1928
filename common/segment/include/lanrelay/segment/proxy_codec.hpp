#pragma once

// The proxy datagram codec: the bytes of proxy queries and proxy answers exchanged on UDP 4129
// between agents and proxyhelperd, as specified in docs/protocol.md ("Proxy protocol"). Keep the
// two in step.
//
// The layout follows the discovery codec (discovery_codec.hpp): a 6-byte header, TLV fields,
// strict parsing, a size limit, queries padded so that an answer is never larger than its query.
// What is new is trust: an answer may end with an Ed25519 signature (site_key.hpp) over every
// byte before it, so the transaction id, the expiry and the proxies are all covered, and an agent
// that pins the key of its proxyhelperd can tell a genuine answer from a rogue one (the WPAD
// attack, docs/security.md).
//
// Pure functions over byte spans: no sockets, no global state, safe to call from any thread.
// Every decode function accepts arbitrary untrusted bytes; it never reads outside the span and
// reports what is wrong through `errc`, whose values are stable so that callers can count drops
// by reason.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/site_key.hpp"

#include <boost/system/error_code.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay::proxy_protocol {

// Why a datagram was rejected (decode), could not be produced (encode) or is not trusted
// (check_answer).
enum class errc {
  truncated = 1,        // shorter than its header, or a field runs past the end of the datagram
  bad_magic,            // does not start with "LNPX": not a lanrelay proxy datagram
  unsupported_version,  // protocol version other than protocol_version
  wrong_type,           // message type is not the one asked for, or is unknown
  missing_field,        // a mandatory field is absent (or a signature without its key)
  duplicate_field,      // a known field appears twice (proxies excepted)
  invalid_field,        // a known field has the wrong length or a value outside its rules
  too_large,            // datagram over max_datagram, or an answer over the caller's limit
  unpadded,             // query shorter than query_datagram_size (anti-amplification)
  // check_answer: the answer decodes but must not be used.
  wrong_transaction,    // not an answer to our query
  unsigned_answer,      // no signature, and unsigned answers were not accepted
  no_pinned_key,        // signed, but no key is pinned and unsigned answers were not accepted
  wrong_key,            // signed with a key other than the pinned ones
  bad_signature,        // the signature does not match: altered or forged
  expired,              // now is at or past the answer's expiry
  lifetime_too_long,    // expiry further ahead than max_answer_lifetime (+ clock skew)
};

const boost::system::error_category& proxy_protocol_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), proxy_protocol_category()};
}

enum class message_type : std::uint8_t { query = 1, answer = 2 };

// TLV field type codes on the wire.
enum class field_type : std::uint16_t {
  transaction_id = 0x0001,  // u64, query and answer
  sender_cookie = 0x0002,   // u64, query and answer
  expires_at = 0x0003,      // u64 Unix seconds, answer
  proxy = 0x0004,           // proxy entry, answer, repeated best first
  public_key = 0x0005,      // 32 bytes, answer (with a signature)
  signature = 0x0006,       // 64 bytes, answer, last field
  padding = 0x0007,         // any bytes, ignored; any message
  proxy_auth = 0x0008,      // u8 proxy index, u8 auth_scheme; answer, repeated, optional
};

// How a proxy wants agents to log in, as the proxy answer says it (field proxy_auth). The values
// are the wire's; the words ("basic", ...) are those of configuration files and logs.
enum class auth_scheme : std::uint8_t { basic = 1, digest = 2, ntlm = 3, negotiate = 4 };
std::string_view to_string(auth_scheme scheme) noexcept;
// Case-insensitive; nullopt for any other word.
std::optional<auth_scheme> parse_auth_scheme(std::string_view text) noexcept;

inline constexpr std::array<std::byte, 4> magic{std::byte{'L'}, std::byte{'N'}, std::byte{'P'},
                                                 std::byte{'X'}};
inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::uint16_t default_port = 4129;
inline constexpr std::uint16_t default_http_port = 4130;
// Link-local scope (2), transient flag (1), distinct from discovery's ff12::4126.
inline constexpr std::string_view ipv6_group = "ff12::4129";

inline constexpr std::size_t max_datagram = 1200;  // fits the IPv6 minimum MTU with headers
inline constexpr std::size_t header_size = 6;
inline constexpr std::size_t field_header_size = 4;
// A query is padded to the largest datagram, so every answer that fits a datagram fits its query.
inline constexpr std::size_t query_datagram_size = max_datagram;
inline constexpr std::size_t max_proxies = 8;
inline constexpr std::size_t max_proxy_url_length = 255;
inline constexpr std::size_t max_bypass_length = 255;   // the whole list, comma separated
inline constexpr std::size_t proxy_entry_fixed_size = 4;  // priority u16, flags u8, url length u8
inline constexpr std::size_t proxy_auth_size = 2;  // proxy index u8, scheme u8
// An agent refuses answers that claim to stay valid longer than this (plus answer_clock_skew):
// a captured answer cannot be made to live for days.
inline constexpr std::chrono::seconds max_answer_lifetime{3600};
inline constexpr std::chrono::seconds answer_clock_skew{300};
// The signature covers this context string, a zero byte, then every datagram byte before the
// signature field's header.
inline constexpr std::string_view signature_context = "lanrelay-proxy-answer-v1";

// "Which proxy should I use?" Broadcast to the segment by an agent.
struct query {
  std::uint64_t transaction_id = 0;  // random per query; answers echo it
  std::uint64_t sender_cookie = 0;   // random per process; a responder ignores its own

  bool operator==(const query&) const = default;
};

struct proxy_entry {
  std::string url;  // is_valid_proxy_url: "http://host[:port][/]", no credentials
  std::uint16_t priority = 0;  // lower is better; the answer lists entries best first
  bool needs_credentials = false;  // the agent must bring its own user and password
  std::vector<std::string> bypass;  // hosts reached directly: is_valid_bypass_entry each
  // The scheme the proxy asks for (a proxy_auth field naming this entry); nullopt: the answer
  // does not say, and no such field is sent.
  std::optional<auth_scheme> auth;

  bool operator==(const proxy_entry&) const = default;
};

// "Use these proxies, best first." Unicast back to the query's source.
struct answer {
  std::uint64_t transaction_id = 0;  // the query's
  std::uint64_t sender_cookie = 0;   // the responder's own cookie
  std::chrono::system_clock::time_point expires_at;  // whole seconds on the wire (floored)
  std::vector<proxy_entry> proxies;  // 1..max_proxies
  // Set by decode_answer for a signed answer; encode signs with the key it is given instead.
  std::optional<lanrelay::public_key> key;
  std::optional<ed25519_signature> signature;
  std::size_t signed_size = 0;  // decode: datagram bytes covered by the signature

  bool operator==(const answer&) const = default;
};

// "http://" (lower case), a non-empty IPv4, bracketed IPv6 (no zone) or registered-name host, an
// optional port 1..65535, an empty path or "/", no userinfo, query or fragment; at most
// max_proxy_url_length visible ASCII characters. Credentials never travel in an answer.
bool is_valid_proxy_url(std::string_view text) noexcept;

// A host name, a "*." or "." suffix pattern, an IPv4 or bracketed IPv6 address, or an address
// with a prefix length ("10.0.0.0/8"): characters A-Z a-z 0-9 . - _ * : / [ ], 1..253 of them,
// "*" only as a leading "*." (or alone). Keeps bypass lists safe to embed in a PAC script.
bool is_valid_bypass_entry(std::string_view text) noexcept;

// Whether `host` (a URL's host: a name, an IPv4 address, or an IPv6 address without brackets)
// is covered by bypass entry `entry`: "*.corp" and ".corp" match names ending in ".corp" (and
// "corp" itself for ".corp"), "10.0.0.0/8" matches IPv4 addresses inside the prefix, any other
// entry matches the host exactly. Names compare case-insensitively. Generated PAC scripts
// (proxyhelper/pac.hpp) follow the same rules.
bool bypass_matches(std::string_view entry, std::string_view host) noexcept;

// Exactly query_datagram_size bytes.
std::vector<std::byte> encode(const query& q);

// The answer's fields in code order; with `key`, its public key and a signature over the rest
// (answer.key and answer.signature are ignored). At most min(max_size, max_datagram) bytes, else
// too_large; invalid_field when a field breaks its rule or there is no proxy or more than
// max_proxies. Throws boost::system::system_error only when OpenSSL fails to sign.
result<std::vector<std::byte>> encode(const answer& a, const site_key* key, std::size_t max_size);

// The encoded size of an answer with `proxies` (signed or not): lets a configuration be checked
// once for fitting a datagram.
std::size_t answer_size(std::span<const proxy_entry> proxies, bool is_signed) noexcept;

// Checks, in order: size, header, message type, for a query its size against query_datagram_size, then
// the fields in datagram order (a signature must be the last field), then mandatory fields.
result<query> decode_query(std::span<const std::byte> datagram);
result<answer> decode_answer(std::span<const std::byte> datagram);

// The message type when the header is valid; the fields are not read.
std::optional<message_type> peek_type(std::span<const std::byte> datagram) noexcept;

// What an agent accepts.
struct answer_trust {
  std::vector<lanrelay::public_key> pinned;  // keys of the segment's proxyhelperd
  // Take answers that are unsigned or signed by any key: an explicit, logged opt-in that lets a
  // rogue machine on the LAN choose the agent's proxy.
  bool accept_unsigned = false;
};

// Whether `a`, decoded from `datagram`, may be used as the answer to query `transaction_id` at
// `now`. Checks, in order: transaction id, signature and key against `trust`, then expiry.
result<void> check_answer(const answer& a, std::span<const std::byte> datagram,
                          std::uint64_t transaction_id, const answer_trust& trust,
                          std::chrono::system_clock::time_point now);

}  // namespace lanrelay::proxy_protocol

template <>
struct boost::system::is_error_code_enum<lanrelay::proxy_protocol::errc> : std::true_type {};
