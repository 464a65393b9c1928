#pragma once

// The HTTP content server: its http_listener (serving/http_listener.hpp: accept loop with back-off,
// http.max_connections, the TLS handshake on the HTTPS port) hands it connections, and it runs one
// coroutine per connection that reads request heads, parses each target once, asks
// request_handler for a plan and runs it: sends a small response, sends a file (sendfile(2); over
// HTTPS read and encrypted in chunks), or awaits an awaited_response first and sends what it
// yields, without knowing what was awaited. Requests over HTTPS are marked secure for the
// handler, whose access policy decides who may do what; the server decides no access itself.
//
// Deadlines (all from http_settings): a request head must arrive whole within header_timeout
// (from accept, or from the first byte of a keep-alive request); a keep-alive connection waits
// idle_timeout for that first byte; sending stops after send_timeout without progress. A body
// transfer whose client takes less than peers.min_client_rate over a peers.client_rate_window is
// reset (RST) and its slot freed (counted as slow_clients_reset).
//
// Threads and shared state: the io_context may run on many threads. Each connection lives on its
// own strand and owns its socket, buffers and flags; nothing else touches them except through a
// post to that strand. The acceptors live on the listener's strand; the shutdown sequence and
// the traffic timer on the server's control strand. The table of open connections (used for
// shutdown) is guarded by `registry_mutex_`. The handler, slot pool and counters are thread safe.
//
// Lifetime: the server is shared-owned; every connection coroutine holds a reference, so the
// store, slot pool and counters stay valid until the last connection has ended.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/handler.hpp"
#include "lanrelay/relay/monitor.hpp"
#include "lanrelay/relay/slot_pool.hpp"
#include "lanrelay/relay/stats.hpp"
#include "lanrelay/serving/admin_access.hpp"
#include "lanrelay/serving/http_listener.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace lanrelay::relay {

class catalog_signer;
class mirror_service;
class parent_chain;

namespace detail {
class connection;
}

class server : public std::enable_shared_from_this<server> {
 public:
  // Binds and listens on config.http.listen_address:port ("::" is dual-stack); port 0 picks a
  // free port. Does not accept before start(). `store` must outlive the server.
  // `signer` (may be null) serves /-/catalog.signed and `mirrors` (may be null) /activeupdate/;
  // both must outlive the server too, as must `parents` (may be null: discovery.parents).
  // With `tls` (may be null) the server also listens for HTTPS on config.https.port (same
  // address), running the same session code after a TLS handshake (https.handshake_timeout).
  static result<std::shared_ptr<server>> create(boost::asio::io_context& ioc,
                                                const relay_config& config, content_store& store,
                                                const catalog_signer* signer = nullptr,
                                                mirror_service* mirrors = nullptr,
                                                std::shared_ptr<tls_server_context> tls = nullptr,
                                                parent_chain* parents = nullptr,
                                                io_pool* connections = nullptr);
  ~server();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // The HTTPS listener's endpoint; port 0 when the server has none.
  boost::asio::ip::tcp::endpoint tls_local_endpoint() const;

  // Starts accepting. Ignores SIGPIPE process-wide: sendfile(2) has no MSG_NOSIGNAL.
  void start();

  // Graceful stop, from any thread, once: stop accepting, close idle connections, give running
  // transfers shutdown_grace, then cancel the rest. `on_stopped(clean)` runs on an io thread when
  // every connection has ended (`clean` false if some did not end even after cancellation).
  void stop(std::function<void(bool clean)> on_stopped);

  // Cuts the grace period short: running transfers are cancelled now. No-op before stop().
  void abort();

  stats_snapshot stats() const noexcept;
  // The counters behind /-/stats; others (the discovery responder) add theirs here.
  relay_counters& counters() noexcept { return counters_; }
  // Metrics, status and history behind /, /-/status and /-/metrics; the daemon adds its mirror
  // provider here. Any thread.
  relay::monitor& monitor() noexcept { return monitor_; }
  // Transfer slots not taken right now (what discovery offers advertise). Any thread.
  std::uint32_t free_slots() const noexcept { return slots_.available(); }

  // Settings a configuration reload changes at run time; any thread. Running transfers are not
  // affected: a lower cap refuses new transfers until enough of them have ended.
  void set_max_peers(std::uint32_t max_peers) noexcept { slots_.set_capacity(max_peers); }
  void set_max_peers_per_client(std::uint32_t per_client) noexcept {
    slots_.set_per_client(per_client);
  }
  void set_access_policy(access_policy access) { handler_.set_access_policy(std::move(access)); }
  void set_retry_after(std::chrono::seconds retry_after) noexcept {
    handler_.set_retry_after(retry_after);
  }

  struct private_tag {};
  server(private_tag, boost::asio::io_context& ioc, const relay_config& config,
         content_store& store, const catalog_signer* signer, mirror_service* mirrors,
         access_policy access, parent_chain* parents = nullptr);

 private:
  friend class detail::connection;

  boost::asio::awaitable<void> shutdown_sequence();
  // Feeds the monitor's traffic history every traffic_record_interval until stop().
  boost::asio::awaitable<void> traffic_loop();
  // Until every connection has ended, `deadline` passes, or (when asked) abort() is called.
  boost::asio::awaitable<void> wait_for_connections(std::chrono::steady_clock::time_point deadline,
                                                    bool interrupt_on_abort);
  // One connection from the listener; `self` keeps the server alive until the session ends.
  boost::asio::awaitable<void> run_session(std::shared_ptr<server> self,
                                           std::shared_ptr<http_connection> accepted);
  boost::asio::awaitable<bool> send_plan(detail::connection& conn, response_plan& plan);
  boost::asio::awaitable<boost::system::error_code> send_file(
      detail::connection& conn, file_transfer& transfer, transfer_registry::handle& tracked);
  // Item bytes over TLS: read and encrypted in chunks (sendfile(2) cannot encrypt).
  boost::asio::awaitable<boost::system::error_code> send_file_encrypted(
      detail::connection& conn, file_transfer& transfer, transfer_registry::handle& tracked);
  // Counts, logs and resets (RST) a connection whose transfer fell below the rate floor.
  void reset_slow_client(detail::connection& conn, const file_transfer& transfer);
  bool register_connection(const std::shared_ptr<detail::connection>& conn);
  void unregister_connection(std::uint64_t id);

  const http_settings http_;
  const std::chrono::milliseconds shutdown_grace_;
  const client_share_settings client_share_;
  relay_counters counters_;
  slot_pool slots_;
  relay::monitor monitor_;
  request_handler handler_;

  std::shared_ptr<http_listener> listener_;  // set once by create()

  // Control strand state.
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::steady_timer drain_timer_;
  boost::asio::steady_timer traffic_timer_;
  bool all_done_ = false;        // set (via a post) when the last connection ends while stopping
  bool abort_requested_ = false;
  std::function<void(bool)> on_stopped_;  // non-empty once stop() has begun

  // Guarded by registry_mutex_.
  mutable std::mutex registry_mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<detail::connection>> connections_;
  std::uint64_t next_connection_id_ = 0;
  bool stopping_ = false;
};

}  // namespace lanrelay::relay
