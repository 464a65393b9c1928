#pragma once

// Getting one item: from the segment when someone there holds a copy we can verify, else from
// the upstream server, silently.
//
// Life of a fetch:
//  1. Trust: the size and SHA-256 the bytes must have come from the caller (`digest`) or from a
//     catalog signed with the pinned site key, fetched from a relay that answered (its offer's URL
//     naming its sender) and not older than the newest catalog already believed for that key
//     (catalog_memory.hpp). Without either, segment offers are not used and only the upstream is
//     asked. The catalog may also name the digest of the item's piece list (piece_list.hpp).
//  2. Discovery from its sources in order (discovery_sources.hpp: the segment, the address plan,
//     DNS-SD), unless none found anything recently (segment_memory).
//  3. Offers are filtered and ordered (offer_selection.hpp: one per sending host, URL naming the
//     sender or named exactly by the believed catalog's `urls`) and tried in turn; each is
//     fetched from the address the offer came from (a URL the catalog names: from its own host).
//     - With a piece list digest, the list is fetched from the holder first and kept when its
//       SHA-256 is the trusted one (a holder that answers anything but 200 is used without it; one
//       that sends another list is skipped). Each piece is checked as it arrives: a bad piece is
//       discarded at once and its holder skipped for the run; the next source resumes with a
//       Range request at the end of the last verified piece.
//     - Without one, bytes from one source are never completed by another: each source starts
//       from zero, and a whole-file mismatch blames the one source that sent every byte.
//     - Swarming, when this machine runs as a peer (peer_cache with a state_dir) and the item has
//       a piece list: the query says partial_ok, so peers still downloading the item answer too
//       (with pieces_held; which pieces: GET /-/have/<sha256>). Pieces are fetched by Range from
//       up to four holders at once (piece_scheduler.hpp: rarest first, peers before the relay, one
//       piece per holder at a time, endgame), each checked against the piece list before it is
//       written to <state_dir>/cache/partial/ (partial_items.hpp), where this peer's lanrelayd
//       serves it at once. A holder that sends one bad piece is dropped for the run; one that
//       fails three times too. The segment is asked again every second for new holders. When no
//       piece arrives for busy_patience, the upstream gets the whole item.
//     A 503, timeout or dropped connection moves to the next offer. Every attempt is bounded
//     (attempt_limits): too slow over a window, or past its deadline, it ends and the next source
//     is tried. When every parent is busy (503), it asks the segment again shortly (new peers
//     appear as agents finish), never asking a busy parent again before its Retry-After.
//  4. When no offer is left, or none came: the upstream URL, verified against the digest when
//     there is one (an https:// upstream is verified by TLS when there is none), resuming after
//     the last verified piece when there is a piece list.
//  5. The bytes land in a temporary file beside `output` (created anew, never through a symbolic
//     link) and are renamed over it only once verified; when this machine runs as a peer they are
//     also added to its cache.
// The whole fetch ends at `deadline`, whatever it is doing; nothing is left at `output` then.

#include "lanrelay/agent/agent_config.hpp"
#include "lanrelay/agent/discovery_client.hpp"
#include "lanrelay/agent/offer_selection.hpp"
#include "lanrelay/agent/relay_tls.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/url/url.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::agent {

enum class fetch_source { peer, relay, upstream };
std::string_view to_string(fetch_source source) noexcept;

// Bounds on each attempt at a segment holder (and on fetching its piece list), so that a stall, a
// trickle or a holder that never answers costs one bounded attempt. The upstream, the last
// resort, is bounded only by http_timeouts and the fetch's deadline.
struct attempt_limits {
  // The attempt ends when fewer than min_rate × rate_window bytes arrived in a rate_window (from
  // the connection on, so a holder that never sends its head is cut too). 0: no floor and no
  // per-attempt deadline.
  std::uint64_t min_rate = 16 * 1024;  // bytes per second
  std::chrono::milliseconds rate_window{10'000};
  // The attempt ends this long after it started, plus the item's size at min_rate, however fast
  // the bytes come (an endless body stops at the item's size anyway).
  std::chrono::milliseconds attempt_base{60'000};

  // The deadline of an attempt at an item of `size` bytes; nullopt without a floor.
  std::optional<std::chrono::milliseconds> attempt_deadline(std::uint64_t size) const;
};

struct fetch_options {
  wanted_item wanted;
  std::filesystem::path output;
  std::optional<boost::urls::url> upstream;  // where the item is when the segment cannot help
  std::optional<trusted_digest> digest;      // the exact bytes wanted, vouched for by the caller
  // Without a digest: the size the upstream's bytes must have (e.g. listed in an ActiveUpdate
  // index). The download stops beyond it and fails when shorter.
  std::optional<std::uint64_t> expected_size;
  std::vector<public_key> site_keys;         // pinned: accept catalogs signed with any of them
  // Relays' catalogs and items over HTTPS, pinned to the certificates their signed catalogs list
  // (relay_tls.hpp); the pins are kept in state_dir.
  relay_https_options relay_https;
  discovery_options discovery;
  bool use_discovery = true;
  // Without discovery.targets: the sources asked after (or instead of) the segment, the
  // address plan and DNS-SD (discovery_sources.hpp; agent_config.hpp).
  agent_discovery_settings sources;
  // Segment memory, the machine cookie and (with peer_cache) the local peer's cache live here.
  std::optional<std::filesystem::path> state_dir;
  bool peer_cache = false;
  std::chrono::seconds silent_segment_memory{600};
  // When every parent is busy (503), ask the segment again every busy_poll for up to
  // busy_patience before going to the upstream: agents that finish meanwhile serve as peers, and
  // the WAN is spared. A parent that answered 503 is not asked again before its Retry-After.
  std::chrono::milliseconds busy_poll{250};
  std::chrono::milliseconds busy_patience{60'000};
  http_timeouts timeouts;
  attempt_limits limits;
  // The whole fetch (discovery, every attempt, the upstream) gives up after this; 0: never.
  std::chrono::milliseconds deadline{std::chrono::hours(1)};
  tls_options tls;
  // The route to the upstream, asked only when the upstream is used (proxy_resolver.hpp);
  // nullopt: direct.
  using upstream_route_fn =
      std::function<boost::asio::awaitable<std::optional<proxy_settings>>(const boost::urls::url&)>;
  upstream_route_fn upstream_proxy;
  // Called as bytes arrive: (bytes so far, total size when known, else 0).
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

struct fetch_attempt {
  std::string url;
  std::string outcome;  // "ok", "busy (503)", "digest mismatch", "too slow", "timeout", ...
};

struct fetch_outcome {
  fetch_source source = fetch_source::upstream;
  std::string responder;        // "ip:port" that served the bytes
  std::string fallback_reason;  // why the upstream was used; empty when the segment served it
  std::string version;          // version of the bytes fetched
  std::uint64_t bytes = 0;
  sha256_digest sha256{};
  bool verified = false;        // checked against a trusted digest (else: trusted TLS upstream)
  std::chrono::milliseconds duration{0};
  std::size_t offers_seen = 0;  // distinct offers (by URL) received
  // Swarming: bytes of the item taken from relays and from peers.
  std::uint64_t relay_bytes = 0;
  std::uint64_t peer_bytes = 0;
  std::vector<fetch_attempt> attempts;
};

// Errors only when the item could not be had at all (no offer worked and the upstream failed or
// was not given), the deadline passed, or the output cannot be written (e.g. a symbolic link
// planted at <output>.lanrelay-part); the message says what was tried.
struct fetch_failure {
  boost::system::error_code code;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const fetch_failure& e,
                                             const boost::source_location& loc);

boost::asio::awaitable<boost::system::result<fetch_outcome, fetch_failure>> fetch(
    const fetch_options& options);

}  // namespace lanrelay::agent
