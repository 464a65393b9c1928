#pragma once

// lanrelayd's life: open the store, run the content server, the ActiveUpdate mirrors and (unless
// discovery.enabled is off) the discovery responder, flush the store periodically, and on SIGTERM
// or SIGINT stop gracefully (a second signal cancels running transfers at once).
//
// Service manager: READY=1 once listening, WATCHDOG=1 every half WatchdogSec from the io_context,
// RELOADING=1 ... READY=1 around a reload, STOPPING=1 when shutdown begins (service_notify.hpp).
//
// Reload: SIGHUP re-reads the TLS certificate and key (a failure keeps the running pair; a new
// fingerprint goes into the next signed catalog) and reads the configuration again
// (config_source). Settings that can change at run
// time (peers.max_peers, peers.retry_after, log.level, cache.max_size, discovery.rate_limit) are
// applied without touching running transfers; others that changed are named in a warning and
// keep their running value until a restart. An invalid file is reported (file:line:column) and
// the running configuration kept.
//
// Threads: the daemon's own timers, signal sets, watchdog and running configuration live on one
// strand (control_); see server.hpp for the rest.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/service_notify.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/catalog_signer.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/discovery_responder.hpp"
#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lanrelay::relay {

// Reads the configuration again for a reload: the file given at start-up, with the same
// command-line overrides applied. Empty: nothing to re-read (the daemon runs on its defaults).
using config_source = std::function<config_load_result()>;

class daemon {
 public:
  // Creates the state directory, opens the store at <state_dir>/cache and binds the server.
  // Errors are logged with what to do about them.
  static result<std::unique_ptr<daemon>> create(boost::asio::io_context& ioc, relay_config config,
                                                config_source reload_source = {});
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
         std::shared_ptr<server> srv, config_source reload_source = {});
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

 private:
  boost::asio::awaitable<void> signal_loop();
  boost::asio::awaitable<void> flush_loop();
  void flush_store();

  // Reload (control strand).
  boost::asio::awaitable<void> reload_loop();
  void reload();
  // SIGHUP re-reads the TLS certificate and key, with or without a configuration file.
  void reload_certificate();
  // Applies what differs in `next` and can change at run time; returns the names of the
  // settings that differ but need a restart.
  std::vector<std::string> apply_changes(const relay_config& next);

  boost::asio::io_context& ioc_;
  relay_config config_;  // what runs; a reload updates the settings it applied (control strand)
  config_source reload_source_;
  std::unique_ptr<content_store> store_;
  std::unique_ptr<catalog_signer> signer_;  // before server_: the server uses it until it is gone
  std::unique_ptr<mirror_service> mirrors_;  // likewise; never null (may have no sources)
  std::shared_ptr<server> server_;
  std::shared_ptr<tls_server_context> tls_;  // null when https.enabled is off
  std::unique_ptr<discovery_responder> discovery_;  // null when discovery.enabled is off
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::signal_set signals_;
  boost::asio::signal_set reload_signals_;  // SIGHUP
  boost::asio::steady_timer flush_timer_;
  service::watchdog watchdog_;
  bool stopping_ = false;  // control strand
  int exit_code_ = 0;
};

// The worker thread count for `config`: http.threads, or one per core when 0.
unsigned worker_threads(const relay_config& config) noexcept;

// Runs `ioc` on `threads` threads (the caller's included) until it runs out of work.
void run_io_context(boost::asio::io_context& ioc, unsigned threads);

}  // namespace lanrelay::relay
