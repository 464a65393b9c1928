#pragma once

// One HTTP listener for both daemons' HTTP servers (lanrelayd's content server, proxyhelperd's PAC
// server): the TCP side of serving HTTP, so that neither server repeats it. It knows nothing of
// what is served, nor of who may ask for it (admin_access.hpp decides that in the handlers).
//
// What it does:
//   - listens on settings.address:port ("::" is dual-stack; IPv4 only where IPv6 is missing) and,
//     with a TLS context, on tls_port as well;
//   - accepts in one loop per port; an error that concerns one connection attempt (reset,
//     aborted) is skipped, any other (EMFILE, ENFILE, ENOBUFS, ENOMEM...) makes the loop back off,
//     doubling from accept_backoff_min to accept_backoff_max, instead of spinning; both logged
//     once per episode;
//   - refuses (closes at once) connections beyond max_connections, counted over both ports,
//     a TLS handshake in progress included; logged once per episode;
//   - on the TLS port, runs the server side of the handshake within handshake_timeout through
//     session_stream, so that a session reads and writes plain HTTP either way;
//   - hands each connection to the session function, which reads requests with
//     http_connection::read_request_head (header_timeout for a whole head, idle_timeout between
//     keep-alive requests, max_header_bytes).
//
// Threads: the acceptors and back-off timers live on the listener's strand; each connection gets
// a strand of its own (its stream's executor), on which the session runs, or, when the listener
// was opened with an io_pool, the next of the pool's single-threaded loops (the session and all
// its handlers run on that loop's thread). The count of open
// connections is atomic. Events (accepted, refused, handshake_failed) are called on those strands
// and must be thread safe.
//
// Lifetime: shared-owned; each accept loop and each connection holds a reference. stop() closes
// the acceptors and drops the session function; sessions already running go on (their owner
// decides how they end).

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/serving/io_pool.hpp"
#include "lanrelay/serving/session_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace lanrelay {

struct http_listener_settings {
  std::string address = "::";
  std::uint16_t port = 0;      // 0: any free port
  std::uint16_t tls_port = 0;  // the HTTPS port, used only with a TLS context; 0: any free port
  std::uint32_t max_connections = 256;  // over both ports together
  std::uint32_t max_header_bytes = 8192;
  std::chrono::milliseconds header_timeout{10'000};     // a whole request head
  std::chrono::milliseconds idle_timeout{60'000};       // keep-alive wait for the next request
  std::chrono::milliseconds handshake_timeout{10'000};  // TLS handshake after accept
  std::chrono::milliseconds accept_backoff_min{50};
  std::chrono::milliseconds accept_backoff_max{2'000};
  // What an administrator changes, named in error messages and hints.
  std::string listen_setting = "http.listen";
  std::string port_setting = "http.port";
  std::string tls_port_setting = "https.port";
  std::string max_connections_setting = "http.max_connections";
};

// One accepted connection, from either port. On the TLS port the handshake is done before the
// session sees it (stream.secure()). Owned by the session's strand like its stream.
class http_connection {
 public:
  http_connection(boost::asio::ip::tcp::socket socket, const http_listener_settings& settings);

  // Reads the next request head into `parser` (header limit set here): on a keep-alive connection
  // whose buffer holds nothing yet, first waits idle_timeout for the request's first byte (an
  // error then is `idle_ended`); the head must then arrive whole within header_timeout (from
  // accept for the first request). Expected ends (timeout, eof, cancellation) are values.
  struct head_result {
    boost::system::error_code ec;
    bool idle_ended = false;  // the wait for a next request ended (idle timeout, close, stop)
  };
  template <class Body>
  boost::asio::awaitable<head_result> read_request_head(
      boost::beast::flat_buffer& buffer, boost::beast::http::request_parser<Body>& parser);

  session_stream stream;
  boost::asio::ip::tcp::endpoint peer;  // unspecified when the socket had no peer any more
  boost::asio::ip::address client;      // the peer's address, IPv4-mapped IPv6 as IPv4

 private:
  boost::asio::awaitable<head_result> await_next_request(boost::beast::flat_buffer& buffer);

  std::uint32_t max_header_bytes_;
  std::chrono::milliseconds header_timeout_;
  std::chrono::milliseconds idle_timeout_;
  bool first_request_ = true;
};

// Called from the listener's strands; each may be empty. Thread safe.
struct http_listener_events {
  std::function<void()> accepted;          // a connection was admitted (before any handshake)
  std::function<void()> refused;           // closed at once: max_connections reached
  std::function<void()> handshake_failed;  // a TLS handshake failed or timed out
};

class http_listener : public std::enable_shared_from_this<http_listener> {
 public:
  // Runs one connection until it ends; the listener closes nothing after it returns (the
  // connection's socket closes with the last reference).
  using session = std::function<boost::asio::awaitable<void>(std::shared_ptr<http_connection>)>;

  // Opens and binds the port (and, with `tls`, the TLS port); logs why when that fails. Does not
  // accept before start().
  // With `connections` (which must outlive every connection), connections run on its loops.
  static result<std::shared_ptr<http_listener>> open(boost::asio::io_context& ioc,
                                                     http_listener_settings settings,
                                                     std::shared_ptr<tls_server_context> tls,
                                                     io_pool* connections = nullptr);

  // Starts the accept loops. `run` is called for every admitted connection on its strand.
  void start(session run, http_listener_events events = {});
  // From any thread: stop accepting (closes both acceptors). Running sessions are not touched.
  void stop();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  boost::asio::ip::tcp::endpoint tls_local_endpoint() const;  // port 0 without TLS
  std::uint32_t open_connections() const noexcept {
    return open_.load(std::memory_order_relaxed);
  }

  struct private_tag {};
  http_listener(private_tag, boost::asio::io_context& ioc, http_listener_settings settings,
                std::shared_ptr<tls_server_context> tls, io_pool* connections);

 private:
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor,
                                           boost::asio::steady_timer& backoff, bool tls);
  boost::asio::awaitable<void> serve(std::shared_ptr<http_connection> connection,
                                     std::shared_ptr<const tls_server_context::snapshot> tls,
                                     session run);

  boost::asio::io_context& ioc_;
  io_pool* const connections_;  // null: a strand on ioc_ per connection
  const http_listener_settings settings_;
  const std::shared_ptr<tls_server_context> tls_;  // null: no TLS port
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::acceptor tls_acceptor_;  // open only with tls_
  boost::asio::steady_timer backoff_;
  boost::asio::steady_timer tls_backoff_;
  session run_;                   // strand; empty after stop()
  http_listener_events events_;   // set once by start()
  std::atomic<std::uint32_t> open_{0};
  std::atomic<bool> at_limit_{false};
};

template <class Body>
boost::asio::awaitable<http_connection::head_result> http_connection::read_request_head(
    boost::beast::flat_buffer& buffer, boost::beast::http::request_parser<Body>& parser) {
  if (!first_request_ && buffer.size() == 0) {
    auto waited = co_await await_next_request(buffer);
    if (waited.ec) {
      co_return waited;
    }
  }
  first_request_ = false;
  parser.header_limit(max_header_bytes_);
  stream.expires_after(header_timeout_);
  auto [ec, n] = co_await boost::beast::http::async_read_header(
      stream, buffer, parser, boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return head_result{ec, false};
}

}  // namespace lanrelay
