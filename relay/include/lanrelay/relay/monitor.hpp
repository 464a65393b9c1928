#pragma once

// What lanrelayd shows about itself: the metrics registry behind /-/metrics, the running
// transfers and peer totals, the 24-hour traffic history and the mirror sources the daemon
// reports. The server owns one; the request handler reads it.
//
// The relay's counters (stats.hpp) stay the single place where the hot path counts: the registry
// reads them at scrape time through collectors. Other parts of the daemon (the mirror scheduler,
// later proxyhelperd's own monitor) add their metrics to registry().
//
// Thread safety: every member function may be called from any thread.

#include "lanrelay/base/metrics.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/activity.hpp"
#include "lanrelay/relay/slot_pool.hpp"
#include "lanrelay/relay/stats.hpp"
#include "lanrelay/relay/status.hpp"

#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>

namespace lanrelay::relay {

class monitor {
 public:
  // All three must outlive the monitor.
  monitor(content_store& store, relay_counters& counters, const slot_pool& slots, std::string role);
  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;

  metrics::registry& registry() noexcept { return registry_; }
  transfer_registry& transfers() noexcept { return transfers_; }

  // The daemon's mirror sources; without one, status says none is configured.
  void set_mirror_provider(mirror_provider provider);
  // The download limit of all mirror sources together now. Any thread; quick.
  void set_mirror_total_rate(std::function<rate_in_effect()> source);
  // Bytes downloaded from upstream that are counted elsewhere (the mirror service's own total);
  // added to relay_counters::bytes_fetched_upstream. Any thread; quick.
  void set_upstream_bytes(std::function<std::uint64_t()> source);
  // The state directory and cache.min_free, for lanrelay_disk_*; before: the cache directory,
  // no floor. Any thread.
  void set_disk(std::filesystem::path state_dir, space_floor min_free);
  // The HTTPS listener's port and current certificate (it changes on SIGHUP). Any thread.
  void set_https(std::function<https_report()> source);

  // Moves the traffic since the last call into the history (the server calls it every minute).
  void record_traffic(std::chrono::system_clock::time_point now);

  status_report report() const;
  std::string render_metrics() const { return registry_.render(); }

 private:
  void register_metrics();
  std::vector<mirror_report> mirrors() const;
  std::uint64_t upstream_total() const;
  rate_in_effect mirror_total_rate() const;

  content_store& store_;
  relay_counters& counters_;
  const slot_pool& slots_;
  const std::string role_;
  const std::chrono::system_clock::time_point started_;

  metrics::registry registry_;
  transfer_registry transfers_;
  traffic_history history_;

  mutable std::mutex provider_mutex_;
  mirror_provider mirror_provider_;  // guarded by provider_mutex_
  std::function<std::uint64_t()> upstream_bytes_;  // guarded by provider_mutex_
  std::function<rate_in_effect()> mirror_total_rate_;  // guarded by provider_mutex_
  std::function<https_report()> https_;  // guarded by provider_mutex_
  std::filesystem::path disk_dir_;        // guarded by provider_mutex_
  space_floor min_free_;                  // guarded by provider_mutex_
};

}  // namespace lanrelay::relay
