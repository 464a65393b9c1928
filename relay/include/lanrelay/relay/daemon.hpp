#pragma once

// lanrelayd's life: open the store, run the content server, the ActiveUpdate mirrors and (unless
// discovery.enabled is off) the discovery responder, flush the store periodically, and on SIGTERM or SIGINT stop gracefully
// (a second signal cancels running transfers at once).
//
// Threads: the daemon's own timers and signal set live on one strand; see server.hpp for the rest.

#include "lanrelay/common/config.hpp"
#include "lanrelay/common/error.hpp"
#include "lanrelay/common/store.hpp"
#include "lanrelay/relay/discovery_responder.hpp"
#include "lanrelay/relay/catalog_signer.hpp"
#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <memory>

namespace lanrelay::relay {

class daemon {
 public:
  // Creates the state directory, opens the store at <state_dir>/cache and binds the server.
  // Errors are logged with what to do about them.
  static result<std::unique_ptr<daemon>> create(boost::asio::io_context& ioc, relay_config config);
  ~daemon();

  // Starts serving and answering discovery queries; logs and prints "listening on <addr>:<port>"
  // to stdout (an IPv6 address in brackets). When no discovery socket can be opened the relay
  // logs an error and still serves HTTP (agents with a configured parent can use it).
  void start();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  int exit_code() const noexcept { return exit_code_; }  // valid once the io_context has stopped

  daemon(boost::asio::io_context& ioc, relay_config config, std::unique_ptr<content_store> store,
         std::unique_ptr<catalog_signer> signer, std::unique_ptr<mirror_service> mirrors,
         std::shared_ptr<server> srv);
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

 private:
  boost::asio::awaitable<void> signal_loop();
  boost::asio::awaitable<void> flush_loop();
  void flush_store();

  boost::asio::io_context& ioc_;
  const relay_config config_;
  std::unique_ptr<content_store> store_;
  std::unique_ptr<catalog_signer> signer_;  // before server_: the server uses it until it is gone
  std::unique_ptr<mirror_service> mirrors_;  // likewise; never null (may have no sources)
  std::shared_ptr<server> server_;
  std::unique_ptr<discovery_responder> discovery_;  // null when discovery.enabled is off
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer flush_timer_;
  bool stopping_ = false;  // control strand
  int exit_code_ = 0;
};

// The worker thread count for `config`: http.threads, or one per core when 0.
unsigned worker_threads(const relay_config& config) noexcept;

// Runs `ioc` on `threads` threads (the caller's included) until it runs out of work.
void run_io_context(boost::asio::io_context& ioc, unsigned threads);

}  // namespace lanrelay::relay
