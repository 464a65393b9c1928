#pragma once

// The ActiveUpdate mirror: copies an upstream AU tree (server.ini and every file it names, plus
// the .sig beside each .zip) into a local directory that the relay serves to agents.
//
// On-disk layout under `dir` (<state>/mirror/<name>), all of it owned by the mirror:
//   tree/                  the served files at their upstream relative paths, and the served
//                          server.ini (upstream's bytes with only [Server] rewritten)
//   staging/<path>.partial downloads in progress; resumed with a Range request after a dropped
//                          connection or a killed process
//   staging/.server.ini.tmp, staging/.state.json.tmp   temporaries of the atomic writes
//   history/server.ini.<n> a copy of the served server.ini of generation n (one per change), so
//                          prune() knows what the previous snapshots named; kept outside tree/ so
//                          that no upstream path can collide with it and agents never see it
//   state.json             upstream validators of server.ini, times, last error, generation
//   lock                   flock'd by sync() and prune(): one writer per directory at a time
//
// Publication order is what keeps agents safe: a file is renamed into tree/ only once it has the
// index's size, and the served server.ini is replaced (temp, fsync, rename, fsync dir) only after
// every file the new index names is in tree/. So the served index never names a missing file, and
// a failed or killed sync leaves the previous snapshot served. A file that would replace one the
// served index names (same path, other size) waits in staging/ until that final step. Files of a
// failed sync may thus sit in tree/: the relay serves only what a published index names
// (mirror_service::lookup), and a sync that failed on the disk removes them (and its partials).
//
// Sizes are the only check the index allows (AU lists no digests); a path whose content changes
// without its size changing is not noticed. Real AU paths carry the version in the name.
//
// Never writes outside `dir`: paths come from activeupdate::parse (validated relative paths), and
// a symbolic link anywhere on a path inside tree/ or staging/ fails the sync.
//
// Threading: sync() is a coroutine on the caller's executor; it does blocking file I/O (writes of
// at most 64 KiB, fsyncs) on that executor's thread. Nothing is shared between calls; the lock
// file serialises syncs and prunes of one directory, also across processes.

#include "lanrelay/base/error.hpp"
#include "lanrelay/content/activeupdate_index.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/mirror_freshness.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/url/url.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::relay {

struct mirror_source {
  std::string name;              // for logs and messages
  boost::urls::url upstream;     // base URL of the AU tree; a missing final '/' is added
  std::string served_base_url;   // what [Server] is rewritten to (the relay's own URL)
  http_timeouts timeouts;
  tls_options tls;
  std::optional<proxy_settings> proxy;
  // Every limiter that applies to this source's downloads (its own and the mirror's total).
  std::vector<std::shared_ptr<rate_limiter>> rate_limits;
  // Tries per file (and for server.ini); at least 1. Between tries: exponential backoff from
  // retry_delay (x1, x2, x4...), each wait drawn uniformly from [d/2, d] (jitter).
  unsigned attempts = 3;
  std::chrono::milliseconds retry_delay{1'000};
  // Which listed files a sync fetches ahead of time; unset: all. A file left out (and its .sig)
  // is not fetched; the relay gets it with pull_file when an agent first asks for it.
  std::function<bool(const activeupdate::listed_file&)> include;
  // cache.min_free: a file is fetched only when the state directory's file system keeps this
  // much free after it (check_space); else the sync fails, saying so.
  space_floor min_free;
};

// Empty when `dir`'s file system has `needed` bytes free above `floor`; otherwise why not, for
// an administrator ("only 1.2 MiB free on ..., cache.min_free keeps 2 MiB free").
std::string check_space(const std::filesystem::path& dir, const space_floor& floor,
                        std::uint64_t needed);

// What a pull-through came to (mirror_service::pull_through), for the HTTP answer.
enum class pull_verdict {
  served,   // the file is in the tree now
  refused,  // never fetched on demand (404): `reason`
  busy,     // not now (503 with Retry-After): too many pulls, the hourly volume, the disk floor
  failed,   // the download failed or outlasted mirror.pull_through_wait (503)
};

struct pull_outcome {
  pull_verdict verdict = pull_verdict::failed;
  std::string reason;                   // for the client and the log
  std::chrono::seconds retry_after{0};  // busy and failed: 0 means the relay's default
};

struct sync_result {
  bool changed = false;       // the served server.ini was replaced by different bytes
  bool not_modified = false;  // upstream answered 304 to the conditional server.ini request
  std::size_t files_downloaded = 0;  // files (including .sig) fetched and published this time
  std::size_t files_kept = 0;        // files already in tree/ with the listed size
  std::size_t files_skipped = 0;     // listed files left out by mirror_source::include
  std::uint64_t bytes_downloaded = 0;  // payload bytes written, server.ini included
  std::size_t requests = 0;            // HTTP requests made (a redirect chain counts once)
  // The patterns and engines the upstream's index listed, when it was read and parsed this time
  // (also when the sync then failed, e.g. on a full disk); empty after a 304.
  component_versions upstream_versions;
  std::string error;  // empty on success; otherwise for an administrator, and in state.json

  bool ok() const noexcept { return error.empty(); }
};

// One synchronisation of `dir` with `source`. Never throws for network, upstream or disk
// problems: they end up in sync_result::error (and state.json's last_error), and the previous
// snapshot stays served. Order: conditional GET of server.ini (If-None-Match/If-Modified-Since
// from state.json, only while a served snapshot exists); a 304 ends the sync after that single
// request. Otherwise the index is parsed completely, then each listed file and each .sig is kept
// or fetched into staging/ (resumed from the partial's size), size-checked against the index
// (a mismatch is retried `attempts` times, then fails the sync without publishing the file) and
// renamed into tree/. Only then the served server.ini and state.json are written.
// A .sig has no listed size: it is kept when present and non-empty, and fetched anew with its
// .zip whenever the .zip is fetched.
// Precondition: `dir` may not exist yet; its parent must.
boost::asio::awaitable<sync_result> sync(const mirror_source& source,
                                         const std::filesystem::path& dir);

struct pull_result {
  std::uint64_t bytes_downloaded = 0;
  std::size_t requests = 0;
  std::string error;  // empty on success

  bool ok() const noexcept { return error.empty(); }
};

// Pull-through of one file the served index names: fetched into staging/<path>.pull (resumed,
// retried and size-checked as in a sync; `size` nothing for a .sig) and renamed into tree/.
// Needs no lock: it never touches server.ini or state.json, and its partial file is its own, so
// it may run while a sync runs (both would publish the same listed bytes).
boost::asio::awaitable<pull_result> pull_file(const mirror_source& source,
                                              const std::filesystem::path& dir, std::string path,
                                              std::optional<std::uint64_t> size);

struct prune_result {
  std::size_t files_removed = 0;
  std::uint64_t bytes_removed = 0;
};

// Removes from tree/ every file (and symbolic link) that neither `current` nor the served indexes
// of the `keep` generations before the current one name (.sig files included), then empty
// directories, stale staging/ partials and history/ copies older than those generations.
// `current` is the index of the served server.ini (parse(tree/server.ini)); tree/server.ini
// itself is always kept. Agents that still read a removed file keep their open descriptor
// (unlinking is safe on Linux); an agent that fetched the previous index meanwhile may get a 404
// and retries at its next check, which is why `keep` exists.
// Fails (removing nothing) when another sync or prune holds the directory.
result<prune_result> prune(const std::filesystem::path& dir, const activeupdate::index& current,
                           unsigned keep);

struct mirror_status {
  bool has_snapshot = false;  // tree/server.ini exists
  std::uint64_t generation = 0;  // number of the served snapshot; 0 before the first
  std::string etag;           // of the upstream server.ini behind the served snapshot
  std::string last_modified;  // likewise
  std::optional<std::chrono::system_clock::time_point> last_attempt;
  std::optional<std::chrono::system_clock::time_point> last_success;  // ended ok, 304 included
  std::optional<std::chrono::system_clock::time_point> last_change;   // served index replaced
  std::string last_error;  // of the last attempt; empty when it succeeded
};

// The mirror's state as last recorded by sync(). A directory never synced gives an empty status;
// an unreadable state.json gives errc::corrupt_index.
result<mirror_status> read_status(const std::filesystem::path& dir);

}  // namespace lanrelay::relay
