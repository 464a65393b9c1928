#pragma once

// proxyhelperd's life: load (or on first start create) the signing key and print its public key
// for agents to pin, check the proxies' health, answer proxy queries on UDP and serve PAC/WPAD
// and monitoring (monitor.hpp) on HTTP; tell systemd when it is ready, ping its watchdog, and on
// SIGTERM or SIGINT stop answering and exit 0. SIGHUP reloads the configuration: the proxy list,
// health settings, query.rate_limit, query.answer_lifetime, http.pac_url and log.level change at
// once; sockets, files and the key keep their running values until a restart. An invalid file
// is reported and the running configuration kept.
//
// Runtime (common/daemon/runtime.hpp, shared with lanrelayd): signals, sd_notify and the watchdog,
// the reload step and the stop. Which settings reload is marked in the settings table
// (config.cpp); their apply hooks are this class's reload_hooks.
//
// Threads: the runtime's signal sets live on its control strand; see responder.hpp, health.hpp and
// pac_server.hpp for the rest. Counters are in one struct (stats.hpp).

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/service_notify.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/daemon/runtime.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/health.hpp"
#include "lanrelay/proxyhelper/monitor.hpp"
#include "lanrelay/proxyhelper/pac_server.hpp"
#include "lanrelay/proxyhelper/responder.hpp"
#include "lanrelay/proxyhelper/stats.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>

namespace lanrelay::proxyhelper {

class daemon : private reload_hooks {
 public:
  // Validates `config`, creates the state directory, loads or creates the signing key and binds
  // the HTTP port. Errors are logged with what to do about them.
  // `reload_source` reads the configuration again for SIGHUP (the file with the command line's
  // overrides); empty: SIGHUP is logged and ignored.
  using config_source = std::function<config_load_result()>;
  static result<std::unique_ptr<daemon>> create(boost::asio::io_context& ioc,
                                                proxyhelper_config config,
                                                config_source reload_source = {});
  ~daemon();

  // Starts the health checks, the query responder and the HTTP server. Prints
  // "public key lanrelay-ed25519:...", with HTTPS "https on <addr>:<port> certificate sha256
  // <hex>", and "listening on udp <port> http <addr>:<port>" to stdout. SIGHUP re-reads the TLS
  // certificate and key too. Returns false when no query socket could be opened (logged).
  bool start();

  const proxyhelper_counters& counters() const noexcept { return counters_; }
  const proxy_health& health() const noexcept { return health_; }
  lanrelay::public_key public_key() const { return key_.public_key(); }
  boost::asio::ip::tcp::endpoint http_endpoint() const { return http_->local_endpoint(); }
  boost::asio::ip::tcp::endpoint https_endpoint() const { return http_->tls_local_endpoint(); }
  std::uint16_t query_port() const noexcept { return responder_.port(); }

  // `tls`: the HTTPS listener's identity (https.enabled); null: HTTP only.
  daemon(boost::asio::io_context& ioc, proxyhelper_config config, site_key key,
         std::uint64_t cookie, config_source reload_source,
         std::shared_ptr<tls_server_context> tls = nullptr);
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

 private:
  std::string ready_status() const;  // the STATUS= line for systemd
  void notify_health();
  void reload_certificate();
  runtime::reload_result reload_config();
  void stop(std::function<void(bool clean)> stopped);

  // reload_hooks: the apply hooks of reloadable settings (control strand).
  std::optional<std::string> set_log_level(const std::string& level) override;
  std::optional<std::string> set_query_limits(std::uint32_t rate_limit,
                                              std::uint32_t new_source_rate,
                                              std::chrono::seconds answer_lifetime) override;
  std::optional<std::string> set_proxies(const std::vector<proxy_spec>& proxies) override;

  const proxyhelper_config config_;  // as started: sockets, files and the key follow it
  live_config live_;                 // what reloads change
  config_source reload_source_;
  const site_key key_;
  std::shared_ptr<tls_server_context> tls_;  // null: no HTTPS
  proxyhelper_counters counters_;
  query_log queries_;
  proxy_health health_;
  health_checker checker_;
  proxy_responder responder_;
  monitor_sources monitor_;
  metrics::registry metrics_;
  std::shared_ptr<pac_server> http_;
  runtime::runtime runtime_;
};

}  // namespace lanrelay::proxyhelper
