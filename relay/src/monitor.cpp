#include "lanrelay/relay/monitor.hpp"

#include "lanrelay/base/log.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <tuple>

#include <sys/statvfs.h>

#ifndef LANRELAY_VERSION
#define LANRELAY_VERSION "unknown"
#endif

namespace lanrelay::relay {
namespace {

using metrics::metric_type;
using metrics::sample;

// A collector of one unlabelled value read from an atomic counter.
std::function<std::vector<sample>()> read(const std::atomic<std::uint64_t>& value) {
  return [&value] {
    return std::vector<sample>{{{}, static_cast<double>(value.load(std::memory_order_relaxed))}};
  };
}

std::function<std::vector<sample>()> value_of(std::function<double()> get) {
  return [get = std::move(get)] { return std::vector<sample>{{{}, get()}}; };
}

double seconds_since_epoch(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

monitor::monitor(content_store& store, relay_counters& counters, const slot_pool& slots,
                 std::string role)
    : store_(store),
      counters_(counters),
      slots_(slots),
      role_(std::move(role)),
      started_(std::chrono::system_clock::now()) {
  history_.record(started_, 0, 0);
  register_metrics();
}

void monitor::set_mirror_provider(mirror_provider provider) {
  std::lock_guard lock(provider_mutex_);
  mirror_provider_ = std::move(provider);
}

void monitor::set_mirror_total_rate(std::function<rate_in_effect()> source) {
  std::lock_guard lock(provider_mutex_);
  mirror_total_rate_ = std::move(source);
}

rate_in_effect monitor::mirror_total_rate() const {
  std::function<rate_in_effect()> source;
  {
    std::lock_guard lock(provider_mutex_);
    source = mirror_total_rate_;
  }
  return source ? source() : rate_in_effect{};
}

void monitor::set_upstream_bytes(std::function<std::uint64_t()> source) {
  std::lock_guard lock(provider_mutex_);
  upstream_bytes_ = std::move(source);
}

void monitor::set_disk(std::filesystem::path state_dir, space_floor min_free) {
  std::lock_guard lock(provider_mutex_);
  disk_dir_ = std::move(state_dir);
  min_free_ = min_free;
}

void monitor::set_https(std::function<https_report()> source) {
  std::lock_guard lock(provider_mutex_);
  https_ = std::move(source);
}

std::uint64_t monitor::upstream_total() const {
  std::function<std::uint64_t()> source;
  {
    std::lock_guard lock(provider_mutex_);
    source = upstream_bytes_;
  }
  return counters_.bytes_fetched_upstream.load(std::memory_order_relaxed) + (source ? source() : 0);
}

std::vector<mirror_report> monitor::mirrors() const {
  mirror_provider provider;
  {
    std::lock_guard lock(provider_mutex_);
    provider = mirror_provider_;
  }
  return provider ? provider() : std::vector<mirror_report>{};
}

void monitor::record_traffic(std::chrono::system_clock::time_point now) {
  history_.record(now, counters_.bytes_served.load(std::memory_order_relaxed), upstream_total());
}

status_report monitor::report() const {
  status_report r;
  r.version = LANRELAY_VERSION;
  r.role = role_;
  r.now = std::chrono::system_clock::now();
  r.started = started_;
  r.log_level = std::string(current_log_level());
  r.items = store_.list();
  std::sort(r.items.begin(), r.items.end(), [](const item& a, const item& b) {
    return std::tie(a.key.kind, a.key.name, a.key.version) <
           std::tie(b.key.kind, b.key.name, b.key.version);
  });
  r.cache_bytes = store_.total_size();
  r.cache_max_bytes = store_.max_size();
  {
    std::lock_guard lock(provider_mutex_);
    r.mirrors_configured = static_cast<bool>(mirror_provider_);
  }
  r.mirrors = mirrors();
  r.mirrors_configured = r.mirrors_configured && !r.mirrors.empty();
  r.mirror_rate = mirror_total_rate();
  r.transfers = transfers_.running();
  r.top_peers = transfers_.top_peers(10);
  r.stats = take_snapshot(counters_, slots_);
  r.bytes_fetched_upstream = upstream_total();
  r.stats.bytes_fetched_upstream = r.bytes_fetched_upstream;
  r.hash_mismatches = r.stats.hash_mismatches + r.stats.discovery.digest_mismatches;
  std::function<https_report()> https;
  {
    std::lock_guard lock(provider_mutex_);
    https = https_;
  }
  if (https) {
    r.https = https();
  }
  r.traffic = history_.series(r.now, r.stats.bytes_served, r.bytes_fetched_upstream);
  return r;
}

void monitor::register_metrics() {
  auto& r = registry_;
  auto& c = counters_;
  const auto& d = counters_.discovery;

  // Discovery.
  r.add_collector("lanrelay_discovery_queries_received_total",
                  "Query datagrams received on the discovery port, valid or not.",
                  metric_type::counter, {}, [&d] {
                    constexpr auto relaxed = std::memory_order_relaxed;
                    const auto total = d.queries.load(relaxed) + d.dropped_on_receipt();
                    return std::vector<sample>{{{}, static_cast<double>(total)}};
                  });
  r.add_collector("lanrelay_discovery_queries_answered_total",
                  "Queries answered with an offer (offers sent).", metric_type::counter, {},
                  read(d.offers_sent));
  r.add_collector("lanrelay_discovery_offers_sent_total", "Offer datagrams sent.",
                  metric_type::counter, {}, read(d.offers_sent));
  r.add_collector("lanrelay_discovery_queries_dropped_total",
                  "Queries not answered, by reason.", metric_type::counter, {"reason"}, [&d] {
                    constexpr auto relaxed = std::memory_order_relaxed;
                    const auto v = [](const std::atomic<std::uint64_t>& a) {
                      return static_cast<double>(a.load(relaxed));
                    };
                    auto samples = drop_samples(d);
                    samples.push_back({{"not_held"}, v(d.not_held)});
                    samples.push_back({{"reply_too_large"}, v(d.reply_too_large)});
                    samples.push_back({{"send_error"}, v(d.send_errors)});
                    return samples;
                  });

  r.add_collector("lanrelay_agent_fallbacks_total",
                  "Downloads agents made from the upstream because the segment could not serve "
                  "them, by reason, as reported in later queries this relay answered.",
                  metric_type::counter, {"reason"}, [&d] {
                    std::vector<sample> samples;
                    for (std::size_t i = 0; i < d.agent_fallbacks.size(); ++i) {
                      samples.push_back(
                          {{std::string(discovery::to_string(static_cast<discovery::fallback_reason>(i + 1)))},
                           static_cast<double>(d.agent_fallbacks[i].load(std::memory_order_relaxed))});
                    }
                    return samples;
                  });

  // HTTP and transfers.
  r.add_collector("lanrelay_http_requests_total", "HTTP request heads handled.",
                  metric_type::counter, {}, read(c.requests));
  r.add_collector("lanrelay_http_bad_requests_total",
                  "Requests answered 400, 405, 413 or 431.", metric_type::counter, {},
                  read(c.bad_requests));
  r.add_collector("lanrelay_http_header_timeouts_total",
                  "Connections dropped because a request head did not arrive in time.",
                  metric_type::counter, {}, read(c.header_timeouts));
  r.add_collector("lanrelay_http_connections_accepted_total", "TCP connections accepted.",
                  metric_type::counter, {}, read(c.connections_accepted));
  r.add_collector("lanrelay_http_connections_refused_total",
                  "TCP connections closed at once over http.max_connections.",
                  metric_type::counter, {}, read(c.connections_refused));
  r.add_collector("lanrelay_http_connections_open", "TCP connections open now.",
                  metric_type::gauge, {}, read(c.active_connections));
  const slot_pool* slots = &slots_;
  r.add_collector("lanrelay_transfers_running", "Transfers sending item bytes now.",
                  metric_type::gauge, {},
                  value_of([slots] { return static_cast<double>(slots->active()); }));
  r.add_collector("lanrelay_transfer_slots", "Transfers allowed at once (peers.max_peers).",
                  metric_type::gauge, {},
                  value_of([slots] { return static_cast<double>(slots->capacity()); }));
  r.add_collector("lanrelay_transfers_refused_busy_total",
                  "Requests answered 503 because every transfer slot was taken.",
                  metric_type::counter, {},
                  value_of([slots] { return static_cast<double>(slots->refused()); }));
  r.add_collector("lanrelay_transfers_refused_client_share_total",
                  "Requests answered 503 because the client already held its share of the "
                  "transfer slots (peers.max_peers_per_client).",
                  metric_type::counter, {},
                  value_of([slots] { return static_cast<double>(slots->refused_client_share()); }));
  r.add_collector("lanrelay_transfers_slow_client_reset_total",
                  "Transfers reset because the client read slower than peers.min_client_rate.",
                  metric_type::counter, {}, read(c.slow_clients_reset));
  r.add_collector("lanrelay_transfers_completed_total", "Transfers whose body was sent in full.",
                  metric_type::counter, {}, read(c.transfers_completed));
  r.add_collector("lanrelay_transfers_aborted_total",
                  "Transfers ended early: client gone, timeout or shutdown.", metric_type::counter,
                  {}, read(c.transfers_aborted));

  // Bytes.
  r.add_collector("lanrelay_served_bytes_total",
                  "Item bytes sent to clients from this machine (served locally).",
                  metric_type::counter, {}, read(c.bytes_served));
  r.add_collector("lanrelay_upstream_fetched_bytes_total",
                  "Bytes downloaded from upstream servers (mirror syncs, pull-through).",
                  metric_type::counter, {},
                  value_of([this] { return static_cast<double>(upstream_total()); }));
  r.add_collector("lanrelay_wan_spared_bytes",
                  "Bytes the WAN was spared: served locally minus fetched upstream, at least 0.",
                  metric_type::gauge, {}, [this, &c] {
                    const auto served = c.bytes_served.load(std::memory_order_relaxed);
                    const auto fetched = upstream_total();
                    return std::vector<sample>{
                        {{}, static_cast<double>(served > fetched ? served - fetched : 0)}};
                  });
  r.add_collector("lanrelay_hash_mismatches_total",
                  "Bytes or digests seen that did not match the expected SHA-256, by where.",
                  metric_type::counter, {"where"}, [&c, &d] {
                    return std::vector<sample>{
                        {{"discovery_query"},
                         static_cast<double>(d.digest_mismatches.load(std::memory_order_relaxed))},
                        {{"relay"},
                         static_cast<double>(c.hash_mismatches.load(std::memory_order_relaxed))}};
                  });

  // Cache.
  content_store* store = &store_;
  r.add_collector("lanrelay_cache_bytes", "Total size of cached items.", metric_type::gauge, {},
                  value_of([store] { return static_cast<double>(store->total_size()); }));
  r.add_collector("lanrelay_cache_max_bytes", "cache.max_size; 0: no limit.", metric_type::gauge,
                  {}, value_of([store] { return static_cast<double>(store->max_size()); }));
  r.add_collector("lanrelay_cache_items", "Items in the cache.", metric_type::gauge, {},
                  value_of([store] { return static_cast<double>(store->list().size()); }));
  r.add_collector("lanrelay_cache_evictions_total",
                  "Items this lanrelayd evicted from the cache to make room (cache.max_size).",
                  metric_type::counter, {},
                  value_of([store] { return static_cast<double>(store->evictions()); }));

  // The state directory's file system, and the floor cache.min_free keeps free on it.
  const auto disk_sample = [this](auto pick) {
    return [this, pick] {
      std::filesystem::path dir;
      space_floor floor;
      {
        std::lock_guard lock(provider_mutex_);
        dir = disk_dir_.empty() ? store_.dir() : disk_dir_;
        floor = min_free_;
      }
      struct ::statvfs fs {};
      if (::statvfs(dir.c_str(), &fs) != 0) {
        return std::vector<sample>{};
      }
      const std::uint64_t total = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
      const std::uint64_t free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      return std::vector<sample>{{{}, static_cast<double>(pick(total, free, floor.for_total(total)))}};
    };
  };
  r.add_collector("lanrelay_disk_free_bytes",
                  "Bytes free for lanrelayd on the state directory's file system.",
                  metric_type::gauge, {},
                  disk_sample([](std::uint64_t, std::uint64_t free, std::uint64_t) { return free; }));
  r.add_collector("lanrelay_disk_size_bytes", "Size of the state directory's file system.",
                  metric_type::gauge, {},
                  disk_sample([](std::uint64_t total, std::uint64_t, std::uint64_t) { return total; }));
  r.add_collector("lanrelay_disk_min_free_bytes",
                  "cache.min_free in bytes: below it nothing new is fetched.", metric_type::gauge,
                  {},
                  disk_sample([](std::uint64_t, std::uint64_t, std::uint64_t floor) { return floor; }));

  // Mirror sources, as the daemon reports them.
  r.add_collector("lanrelay_mirror_syncs_total", "Mirror syncs since start, by source and result.",
                  metric_type::counter, {"source", "result"}, [this] {
                    std::vector<sample> out;
                    for (const auto& m : mirrors()) {
                      out.push_back({{m.name, "ok"}, static_cast<double>(m.syncs_ok)});
                      out.push_back({{m.name, "not_modified"},
                                     static_cast<double>(m.syncs_not_modified)});
                      out.push_back({{m.name, "failed"}, static_cast<double>(m.syncs_failed)});
                    }
                    return out;
                  });
  r.add_collector("lanrelay_mirror_last_success_age_seconds",
                  "Seconds since the source's last successful sync; +Inf if it never succeeded.",
                  metric_type::gauge, {"source"}, [this] {
                    std::vector<sample> out;
                    const auto now = std::chrono::system_clock::now();
                    for (const auto& m : mirrors()) {
                      out.push_back(
                          {{m.name}, m.status.last_success
                                         ? std::chrono::duration<double>(now - *m.status.last_success)
                                               .count()
                                         : std::numeric_limits<double>::infinity()});
                    }
                    return out;
                  });

  r.add_collector("lanrelay_mirror_rate_limit_bytes_per_second",
                  "The source's own download limit now (rate_limit or the bandwidth window "
                  "holding); 0: unlimited.",
                  metric_type::gauge, {"source"}, [this] {
                    std::vector<sample> out;
                    for (const auto& m : mirrors()) {
                      out.push_back({{m.name}, static_cast<double>(m.rate.bytes_per_second)});
                    }
                    return out;
                  });
  r.add_collector("lanrelay_mirror_total_rate_limit_bytes_per_second",
                  "The download limit of all mirror sources together now ([mirror] rate_limit or "
                  "the bandwidth window holding); 0: unlimited.",
                  metric_type::gauge, {}, [this] {
                    return std::vector<sample>{
                        {{}, static_cast<double>(mirror_total_rate().bytes_per_second)}};
                  });
  r.add_collector("lanrelay_mirror_sync_interval_seconds",
                  "The source's schedule: seconds between syncs (plus jitter).", metric_type::gauge,
                  {"source"}, [this] {
                    std::vector<sample> out;
                    for (const auto& m : mirrors()) {
                      out.push_back({{m.name}, std::chrono::duration<double>(m.interval).count()});
                    }
                    return out;
                  });
  r.add_collector("lanrelay_mirror_sync_failing",
                  "1 when the source's last sync attempt failed (its error is in /-/mirror).",
                  metric_type::gauge, {"source"}, [this] {
                    std::vector<sample> out;
                    for (const auto& m : mirrors()) {
                      out.push_back({{m.name}, m.status.last_error.empty() ? 0.0 : 1.0});
                    }
                    return out;
                  });

  // Freshness, per source and component (mirror_freshness.hpp).
  const auto per_component = [this](auto value) {
    return [this, value] {
      std::vector<sample> out;
      const auto now = std::chrono::system_clock::now();
      for (const auto& m : mirrors()) {
        for (const auto& f : m.freshness) {
          if (auto v = value(f, now)) {
            out.push_back({{m.name, f.component}, *v});
          }
        }
      }
      return out;
    };
  };
  const auto age = [](const std::optional<std::chrono::system_clock::time_point>& t,
                      std::chrono::system_clock::time_point now) -> std::optional<double> {
    if (!t) {
      return std::nullopt;
    }
    return std::max(0.0, std::chrono::duration<double>(now - *t).count());
  };
  r.add_collector("lanrelay_mirror_component_info",
                  "Always 1; the labels name the version served and the newest the upstream lists "
                  "(empty: none served, or not known yet).",
                  metric_type::gauge, {"source", "component", "served", "upstream"}, [this] {
                    std::vector<sample> out;
                    for (const auto& m : mirrors()) {
                      for (const auto& f : m.freshness) {
                        out.push_back({{m.name, f.component, f.served, f.upstream}, 1});
                      }
                    }
                    return out;
                  });
  r.add_collector("lanrelay_mirror_served_age_seconds",
                  "Seconds since this relay began serving the component's current version.",
                  metric_type::gauge, {"source", "component"},
                  per_component([age](const component_freshness& f, auto now) {
                    return f.served.empty() ? std::nullopt : age(f.served_since, now);
                  }));
  r.add_collector("lanrelay_mirror_upstream_age_seconds",
                  "Seconds since the relay first saw the upstream list its newest version.",
                  metric_type::gauge, {"source", "component"},
                  per_component([age](const component_freshness& f, auto now) {
                    return f.upstream.empty() ? std::nullopt : age(f.upstream_since, now);
                  }));
  r.add_collector("lanrelay_mirror_behind",
                  "1 when the upstream lists a newer version than the relay serves.",
                  metric_type::gauge, {"source", "component"},
                  per_component([](const component_freshness& f, auto) -> std::optional<double> {
                    return f.behind() ? 1.0 : 0.0;
                  }));
  r.add_collector("lanrelay_mirror_behind_seconds",
                  "Seconds the upstream has listed a newer version than the relay serves; 0 when "
                  "current.",
                  metric_type::gauge, {"source", "component"},
                  per_component([](const component_freshness& f, auto now) -> std::optional<double> {
                    return static_cast<double>(f.behind_for(now).count());
                  }));

  // Process.
  const auto started = started_;
  r.add_collector("lanrelay_start_time_seconds", "When this lanrelayd started, in Unix time.",
                  metric_type::gauge, {},
                  value_of([started] { return seconds_since_epoch(started); }));
  r.add_collector("lanrelay_build_info", "Always 1; the labels name the build.",
                  metric_type::gauge, {"version", "role"},
                  [role = role_] { return std::vector<sample>{{{LANRELAY_VERSION, role}, 1}}; });
}

}  // namespace lanrelay::relay
