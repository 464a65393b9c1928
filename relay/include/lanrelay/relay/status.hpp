#pragma once

// The relay's status, gathered once per request and rendered three ways: /-/status (JSON, read by
// `lanrelay status`), the status page at / (HTML with an inline SVG chart, no script, nothing
// loaded from elsewhere) and, through monitor.hpp, /-/metrics.
//
// Mirror sources come from the daemon through a mirror_provider, so that this code does not need
// to know how mirrors are configured or scheduled.

#include "lanrelay/base/text_format.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/activity.hpp"
#include "lanrelay/relay/mirror.hpp"
#include "lanrelay/relay/mirror_freshness.hpp"
#include "lanrelay/relay/stats.hpp"
#include "lanrelay/upstream/rate_windows.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::relay {

// One configured mirror source, as the daemon knows it.
struct mirror_report {
  std::string name;
  std::string upstream;       // base URL of the upstream tree
  mirror_status status;       // read_status(<state>/mirror/<name>)
  std::string status_error;   // set when read_status failed (state.json unreadable)
  std::string route;          // proxy = "auto": the route last found; empty otherwise
  std::string blocked;        // why nothing new is fetched now (cache.min_free); empty: fetching
  // Syncs since the daemon started, by result.
  std::uint64_t syncs_ok = 0;            // changed or unchanged, all files in place
  std::uint64_t syncs_not_modified = 0;  // upstream answered 304
  std::uint64_t syncs_failed = 0;
  // Per component: served and upstream versions and since when (mirror_freshness.hpp).
  std::vector<component_freshness> freshness;
  std::chrono::milliseconds interval{0};  // the source's schedule
  rate_in_effect rate;                    // the source's own download limit now
};

// Called at each status or metrics request, from any io thread; must be thread safe and quick
// (reading state files is fine).
using mirror_provider = std::function<std::vector<mirror_report>()>;

// The HTTPS listener, for administrators who pin its certificate by hand.
struct https_report {
  std::uint16_t port = 0;
  std::string certificate_sha256;  // fingerprint_text of the DER certificate
};

struct status_report {
  std::string version;  // lanrelay's version
  std::string role;     // "relay" or "peer"
  std::chrono::system_clock::time_point now;
  std::chrono::system_clock::time_point started;
  std::string log_level;

  std::vector<item> items;  // the cache, sorted by kind, name, version
  std::uint64_t cache_bytes = 0;
  std::uint64_t cache_max_bytes = 0;  // 0: no limit

  bool mirrors_configured = false;  // false: the daemon gave no mirror provider or no source
  std::vector<mirror_report> mirrors;
  rate_in_effect mirror_rate;  // the download limit of all sources together now

  std::vector<running_transfer> transfers;
  std::vector<peer_total> top_peers;
  std::vector<traffic_history::point> traffic;  // 24 h, oldest first
  std::chrono::minutes traffic_bucket{traffic_history::bucket_width};

  stats_snapshot stats;
  std::uint64_t bytes_fetched_upstream = 0;
  std::uint64_t hash_mismatches = 0;
  std::optional<https_report> https;  // nullopt: HTTPS is off
};

// /-/status. Times as RFC 3339 UTC strings, sizes in bytes; see docs/protocol.md.
std::string to_json(const status_report& report);

// The page at /: UTF-8 HTML, inline CSS and SVG, every outside string escaped.
std::string render_status_page(const status_report& report);


}  // namespace lanrelay::relay
