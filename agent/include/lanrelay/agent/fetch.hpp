#pragma once

// Getting one item: from the segment when someone there holds a copy we can verify, else from
// the upstream server, silently.
//
// Life of a fetch:
//  1. Trust: the size and SHA-256 the bytes must have come from the caller (`digest`) or from a
//     catalog signed with the pinned site key, fetched from a relay that answered. Without either,
//     segment offers are not used and only the upstream is asked.
//  2. Discovery (discovery_client.hpp), unless this segment was silent recently (segment_memory).
//  3. Offers are filtered and ordered (offer_selection.hpp) and tried in turn. A 503, timeout or
//     dropped connection moves to the next offer, resuming with a Range request where the bytes
//     stopped; a digest mismatch discards the bytes and skips that offer for the rest of the run.
//     When every parent is busy (503), it asks the segment again shortly (new peers appear as
//     agents finish), never asking a busy parent again before its Retry-After.
//  4. When no offer is left, or none came: the upstream URL, verified against the digest when
//     there is one (an https:// upstream is verified by TLS when there is none).
//  5. The bytes land in a temporary file beside `output` and are renamed over it only once
//     verified; when this machine runs as a peer they are also added to its cache.

#include "lanrelay/agent/discovery_client.hpp"
#include "lanrelay/agent/offer_selection.hpp"
#include "lanrelay/agent/relay_tls.hpp"
#include "lanrelay/common/http_client.hpp"
#include "lanrelay/common/site_key.hpp"

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
  std::string outcome;  // "ok", "busy (503)", "digest mismatch", "timeout", ...
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
  std::vector<fetch_attempt> attempts;
};

// Errors only when the item could not be had at all (no offer worked and the upstream failed or
// was not given) or the output cannot be written; the message says what was tried.
struct fetch_failure {
  boost::system::error_code code;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const fetch_failure& e,
                                             const boost::source_location& loc);

boost::asio::awaitable<boost::system::result<fetch_outcome, fetch_failure>> fetch(
    const fetch_options& options);

}  // namespace lanrelay::agent
