#pragma once

// The relay's ActiveUpdate mirrors at run time: one per [[mirror.source]]. For each source it
//   - syncs on a schedule (interval + random jitter; the first sync right after start when the
//     last one is older than the interval) and on demand (sync_now: "update now"),
//   - prunes files no snapshot within `keep` names after a change,
//   - keeps, per component, the version served, the newest the upstream lists and since when
//     (mirror_freshness.hpp; <dir>/freshness.json),
//   - keeps the served index parsed in memory, with the SHA-256 of every file it holds (computed
//     once per file on a worker thread and remembered in <dir>/digests.json), for the HTTP
//     handler, discovery offers and the signed catalog,
//   - pulls through: a file the served index names that the tree lacks (left out by `include`
//     and admitted by `pull_through`, or missing after a failed sync) is fetched from upstream
//     once, however many agents ask for it at the same moment; they all wait on that one
//     download, each for at most mirror.pull_through_wait. Bounds (docs/security.md): at most
//     mirror.max_pulls pulls at once and mirror.pull_volume bytes per sliding hour over all
//     sources, nothing below cache.min_free, and a pull whose every waiting client hung up is
//     cancelled (its partial file is kept for the next request to resume).
//   - after a failed sync, tries again after `retry`, doubling up to `interval`; keeps the last
//     error in memory too (state.json may be unwritable: a full disk),
//   - switches the download limits ([mirror] and each source's rate_limit) to the bandwidth
//     window in effect (rate_windows.hpp) when one starts or ends, in local time; downloads
//     running then go on at the new rate.
//
// Directory of a source: <state_dir>/mirror/<name>, laid out as mirror.hpp describes, plus
// staging/<path>.pull for pull-through downloads in progress (kept when a pull is cancelled, so
// the next one resumes), digests.json and freshness.json.
//
// Thread safety: every public member may be called from any thread. Each source's schedule and
// sync run on its own strand; the served snapshot and the pull-through table are guarded by the
// source's mutex (held only to copy a shared_ptr or look up a map entry, never across I/O).

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/mirror.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::relay {

// A mirrored file as the segment sees it: kind file, name activeupdate::segment_item_name(path),
// version its size in decimal (docs/protocol.md).
struct mirrored_item {
  item entry;             // key, size and sha256 as for a cached item
  std::string url_path;   // /activeupdate/<source>/<path>
};

struct mirror_source_view {
  std::string name;
  std::string upstream;
  mirror_status status;  // as recorded in state.json
  bool syncing = false;
  std::optional<sync_result> last_result;  // of the last sync this process ran
  std::optional<std::chrono::system_clock::time_point> next_sync;
  std::size_t files = 0;      // files the served index names that the tree holds
  std::uint64_t bytes = 0;    // their total size
  std::size_t pulls_running = 0;
  // Why nothing new is fetched now (cache.min_free); empty when fetching is possible.
  std::string blocked;
  // With proxy = "auto": the route last found ("direct", or the proxy URL) and which step of the
  // resolution decided it; empty before the first sync or pull.
  std::string route;
  // Syncs this process ran, by result (/-/metrics: lanrelay_mirror_syncs_total).
  std::uint64_t syncs_ok = 0;
  std::uint64_t syncs_not_modified = 0;
  std::uint64_t syncs_failed = 0;
  // The served index's components: ("PATTERN:<id>", "16.679.00"), ("ENGINE:<id>", "12.500.1004").
  std::vector<std::pair<std::string, std::string>> versions;
  // Per component: served and upstream versions and since when (mirror_freshness.hpp).
  std::vector<component_freshness> freshness;
  std::chrono::milliseconds interval{0};  // the source's schedule
  rate_in_effect rate;  // this source's own download limit now (rate_limit, rate_windows)
};

enum class mirror_lookup_verdict {
  served,          // `file` holds the bytes (size `size`)
  pullable,        // the served index names it, the tree lacks it: pull_through() gets it
  not_admitted,    // likewise, but neither `include` nor `pull_through` admits it: never fetched
  not_listed,      // the served index does not name it (or there is no snapshot yet)
  unknown_source,  // no such source
};

struct mirror_lookup {
  mirror_lookup_verdict verdict = mirror_lookup_verdict::not_listed;
  std::filesystem::path file;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::optional<sha256_digest> sha256;  // when known
};

// For /-/mirror, /-/mirror/sync and `lanrelay mirror status`.
boost::json::object to_json(const sync_result& r);
boost::json::array to_json(const std::vector<mirror_source_view>& sources);
// {"bytes_per_second": 2097152, "window": "Mon-Fri 08:00-18:00"} (0: unlimited; "": the base rate)
boost::json::object to_json(const rate_in_effect& rate);
// The same read back (the CLI); nullopt when `v` is not such an object (an older relay).
std::optional<rate_in_effect> rate_from_json(const boost::json::value* v);

class mirror_service {
 public:
  // `public_base`: how agents reach this relay, e.g. "http://relay.corp:4127"; the served
  // server.ini's [Server] section points at <public_base>/activeupdate/<name>/.
  mirror_service(boost::asio::io_context& ioc, const relay_config& config, std::string public_base);
  ~mirror_service();
  mirror_service(const mirror_service&) = delete;
  mirror_service& operator=(const mirror_service&) = delete;

  // The relay's own URL when it is known only after binding (http.port 0); before start().
  void set_public_base(std::string public_base);

  // Loads each source's served snapshot and starts the schedules.
  void start();
  // Cancels schedules, syncs and pulls; a killed sync resumes next time (mirror.hpp).
  void stop();

  bool has_sources() const noexcept;
  std::vector<std::string> source_names() const;

  mirror_lookup lookup(std::string_view source, std::string_view path) const;

  // Gets `path` of `source` from upstream into the tree unless another request is already doing
  // so, then waits for that download for at most mirror.pull_through_wait. A new download
  // starts only within the bounds (header comment). Cancelling the wait (the client hung up)
  // withdraws this request; the download is cancelled when no client waits for it any more and
  // none was told to come back.
  boost::asio::awaitable<pull_outcome> pull_through(std::string source, std::string path);

  // Starts a sync of `source` now, or joins the one running, and returns its result.
  // errc::not_found when there is no such source.
  boost::asio::awaitable<result<sync_result>> sync_now(std::string source);

  // Mirrored files that match a segment query (kind file, name, exact version), with digest.
  std::vector<mirrored_item> find(item_kind kind, std::string_view name,
                                  std::string_view version) const;
  // Every mirrored file with a known digest, for the catalogs.
  std::vector<mirrored_item> items() const;

  std::vector<mirror_source_view> status() const;
  // The limit of all sources together now ([mirror] rate_limit and rate_windows).
  rate_in_effect total_rate() const;

  // Payload bytes fetched from upstreams by syncs and pull-throughs since start.
  std::uint64_t upstream_bytes() const noexcept {
    return upstream_bytes_.load(std::memory_order_relaxed);
  }

  struct source;       // defined in mirror_service.cpp
  struct pull_state;   // likewise
  struct pull_budget;  // likewise

 private:
  boost::asio::awaitable<void> schedule_loop(source& s);
  // Applies the windows in effect now to every limit; how long until one may change.
  std::chrono::seconds apply_rate_windows();
  boost::asio::awaitable<void> rate_window_loop();  // on rate_strand_, while any window is set
  boost::asio::awaitable<sync_result> run_sync(source& s);
  boost::asio::awaitable<sync_result> sync_and_replan(source& s);  // sync_now, on s.strand
  boost::asio::awaitable<pull_outcome> pull_and_wait(source& s, std::string path);
  boost::asio::awaitable<void> pull(source& s, std::string path, std::shared_ptr<pull_state> state);
  boost::asio::awaitable<void> refresh_snapshot(source& s);
  // Advances s's freshness from its served snapshot and `upstream` (advance_freshness) and
  // records it in freshness.json when it changed. On s.strand.
  void note_freshness(source& s, const std::optional<component_versions>& upstream,
                      std::chrono::system_clock::time_point now);
  source* find_source(std::string_view name) const;
  // proxy = "auto": sets s.upstream.proxy to the route the resolver finds (on s.strand).
  boost::asio::awaitable<void> find_route(source& s);
  struct route_finder;  // mirror_service.cpp

  boost::asio::io_context& ioc_;
  std::chrono::milliseconds pull_wait_;
  std::chrono::seconds retry_after_;  // peers.retry_after: a busy pull-through's Retry-After
  space_floor min_free_;
  std::unique_ptr<pull_budget> budget_;  // mirror.max_pulls and mirror.pull_volume
  std::unique_ptr<scheduled_rate> total_rate_;  // [mirror] rate_limit and rate_windows
  boost::asio::strand<boost::asio::io_context::executor_type> rate_strand_;
  boost::asio::steady_timer rate_timer_;  // rate_strand_: until the next window edge
  mutable std::mutex rate_mutex_;
  std::string total_window_;  // guarded by rate_mutex_: the window applied to total_rate_
  std::vector<std::unique_ptr<source>> sources_;
  std::unique_ptr<route_finder> routes_;  // when a source has proxy = "auto"
  boost::asio::thread_pool hashing_{1};  // digests of new files, off the I/O threads
  std::atomic<std::uint64_t> upstream_bytes_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace lanrelay::relay
