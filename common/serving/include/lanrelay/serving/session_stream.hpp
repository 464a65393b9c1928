#pragma once

// A server connection's byte stream: plain TCP, or TLS over it once start_tls() succeeded. Beast
// reads and writes HTTP on either through the same AsyncStream interface, so a daemon's HTTP and
// HTTPS listeners share every line of their session code; deadlines are the TCP stream's
// (beast::tcp_stream::expires_after), under TLS as well. Used by lanrelayd's content server and
// proxyhelperd's HTTP server.
//
// Thread safety: like the tcp_stream it wraps, one operation of each direction at a time, on the
// stream's executor.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <memory>
#include <utility>

namespace lanrelay {

class session_stream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;

  explicit session_stream(boost::asio::ip::tcp::socket socket) : tcp_(std::move(socket)) {}

  executor_type get_executor() noexcept { return tcp_.get_executor(); }
  boost::asio::ip::tcp::socket& socket() noexcept { return tcp_.socket(); }
  template <class Duration>
  void expires_after(Duration timeout) {
    tcp_.expires_after(timeout);
  }
  void expires_never() { tcp_.expires_never(); }
  // The connection runs TLS (start_tls was called; it may have failed).
  bool secure() const noexcept { return tls_ != nullptr; }

  // The server side of the TLS handshake, within `timeout`. `context` stays alive as long as the
  // stream, whatever a certificate reload does meanwhile.
  boost::asio::awaitable<boost::system::error_code> start_tls(
      std::shared_ptr<boost::asio::ssl::context> context, std::chrono::milliseconds timeout) {
    context_ = std::move(context);
    tls_ = std::make_unique<boost::asio::ssl::stream<boost::beast::tcp_stream&>>(tcp_, *context_);
    tcp_.expires_after(timeout);
    auto [ec] = co_await tls_->async_handshake(boost::asio::ssl::stream_base::server,
                                               boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return ec;
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) {
      return tls_->async_read_some(buffers, std::forward<Token>(token));
    }
    return tcp_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) {
      return tls_->async_write_some(buffers, std::forward<Token>(token));
    }
    return tcp_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  boost::beast::tcp_stream tcp_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::unique_ptr<boost::asio::ssl::stream<boost::beast::tcp_stream&>> tls_;
};

}  // namespace lanrelay
