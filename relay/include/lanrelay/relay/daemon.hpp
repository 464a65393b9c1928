#pragma once

// lanrelayd's life: open the store, run the content server, the ActiveUpdate mirrors and (unless
// discovery.enabled is off) the discovery responder, flush the store periodically, and on SIGTERM
// or SIGINT stop gracefully (a second signal cancels running transfers at once).
//
// Runtime (common/daemon/runtime.hpp, shared with proxyhelperd): signals, sd_notify and the
// watchdog, the reload step and the stop. The daemon supplies its parts and hooks: the stop
// (server_->stop: running transfers get shutdown.grace_period), the abort (a second signal),
// the TLS pair re-read on SIGHUP, and the apply hooks of reloadable settings
// (relay_reload_hooks; which settings reload is marked in the settings table, config.cpp).
//
// Reload: SIGHUP re-reads the TLS certificate and key (a failure keeps the running pair; a new
// fingerprint goes into the next signed catalog) and reads the configuration again
// (config_source). Reloadable settings are applied without touching running transfers; others
// that changed are named in a warning and keep their running value until a restart. An invalid
// file is reported (file:line:column) and the running configuration kept.
//
// Threads: the daemon's own timers, the runtime's signal sets and watchdog and the running
// configuration live on one strand (the runtime's control strand); see server.hpp for the rest.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/service_notify.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/daemon/runtime.hpp"
#include "lanrelay/relay/catalog_signer.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/discovery_responder.hpp"
#include "lanrelay/relay/parent_chain.hpp"
#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

namespace lanrelay::relay {

// Reads the configuration again for a reload: the file given at start-up, with the same
// command-line overrides applied. Empty: nothing to re-read (the daemon runs on its defaults).
using config_source = std::function<config_load_result()>;

class daemon : private relay_reload_hooks {
 public:
  // Creates the state directory, opens the store at <state_dir>/cache and binds the server.
  // Errors are logged with what to do about them.
  // With `connections`, the content server's connections run on its loops (it must outlive them:
  // stop it after the io_context has stopped, before the daemon is destroyed).
  static result<std::unique_ptr<daemon>> create(boost::asio::io_context& ioc, relay_config config,
                                                config_source reload_source = {},
                                                io_pool* connections = nullptr);
  ~daemon();

  // Starts serving and answering discovery queries; logs and prints "listening on <addr>:<port>"
  // to stdout (an IPv6 address in brackets), then tells the service manager it is ready. When no
  // discovery socket can be opened the relay logs an error and still serves HTTP (agents with a
  // configured parent can use it).
  void start();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  int exit_code() const noexcept { return exit_code_; }  // valid once the io_context has stopped

  daemon(boost::asio::io_context& ioc, relay_config config, std::unique_ptr<content_store> store,
         std::unique_ptr<catalog_signer> signer, std::unique_ptr<mirror_service> mirrors,
         std::shared_ptr<server> srv, config_source reload_source = {},
         std::unique_ptr<parent_chain> parents = nullptr);
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

 private:
  void stop(std::function<void(bool clean)> stopped);
  boost::asio::awaitable<void> flush_loop();
  void flush_store();

  // Reload (control strand).
  runtime::reload_result reload_config();
  // SIGHUP re-reads the TLS certificate and key, with or without a configuration file.
  void reload_certificate();

  // relay_reload_hooks: the apply hooks of reloadable settings (control strand).
  std::optional<std::string> set_cache_max_size(std::uint64_t bytes) override;
  std::optional<std::string> set_max_peers(std::uint32_t slots) override;
  std::optional<std::string> set_max_peers_per_client(std::uint32_t slots) override;
  std::optional<std::string> set_retry_after(std::chrono::seconds after) override;
  std::optional<std::string> set_discovery_rate_limit(std::uint32_t per_second) override;
  std::optional<std::string> set_log_level(const std::string& level) override;
  std::optional<std::string> set_admin(const admin_settings& admin) override;

  relay_config config_;  // what runs; a reload replaces it with what it applied (control strand)
  config_source reload_source_;
  std::unique_ptr<content_store> store_;
  std::unique_ptr<catalog_signer> signer_;  // before server_: the server uses it until it is gone
  std::unique_ptr<mirror_service> mirrors_;  // likewise; never null (may have no sources)
  std::unique_ptr<parent_chain> parents_;    // likewise; null without discovery.parents
  std::shared_ptr<server> server_;
  std::shared_ptr<tls_server_context> tls_;  // null when https.enabled is off
  std::unique_ptr<discovery_responder> discovery_;  // null when discovery.enabled is off
  runtime::runtime runtime_;
  boost::asio::steady_timer flush_timer_;  // on the runtime's control strand
  int exit_code_ = 0;
};

// The worker thread count for `config`: http.threads, or one per core when 0.
unsigned worker_threads(const relay_config& config) noexcept;


}  // namespace lanrelay::relay
