#pragma once

// What proxyhelperd shows about itself on its HTTP port: /-/metrics (Prometheus text format, the
// registry of base/metrics.hpp), /-/status (JSON) and the status page at / (HTML without
// scripts or anything fetched from elsewhere): the proxies with their health and check history,
// and the queries answered lately.
//
// Threads: every function reads thread-safe state only (relaxed atomic counters, proxy_health
// and query_log, which take their own mutexes), so HTTP connections call them from any strand.

#include "lanrelay/base/metrics.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/proxyhelper/health.hpp"
#include "lanrelay/proxyhelper/stats.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace lanrelay::proxyhelper {

// Everything the monitoring endpoints read; all referenced objects outlive every use.
struct monitor_sources {
  const proxyhelper_counters& counters;
  const proxy_health& health;
  const query_log& queries;
  std::string public_key;
  std::chrono::system_clock::time_point started;
  // The HTTPS listener (null: none); /-/status shows its port and certificate fingerprint.
  std::shared_ptr<const tls_server_context> tls = nullptr;
  std::uint16_t https_port = 0;
};

// Adds proxyhelperd's families to `registry`; collectors read `sources` at scrape time.
void register_metrics(metrics::registry& registry, const monitor_sources& sources);

std::string status_json(const monitor_sources& sources, std::chrono::system_clock::time_point now);
std::string status_page(const monitor_sources& sources, std::chrono::system_clock::time_point now);

}  // namespace lanrelay::proxyhelper
