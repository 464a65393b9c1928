#include "lanrelay/serving/http_listener.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/serving/admin_access.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

namespace lanrelay {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
// What a keep-alive connection reads while waiting for the next request's first bytes.
constexpr std::size_t first_read_size = 1024;

bool is_resource_exhaustion(const boost::system::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
         ec == net::error::no_memory ||
         ec == boost::system::error_code(ENFILE, boost::system::system_category());
}

// Errors that concern one connection attempt only; the accept loop carries on at once.
bool is_per_connection_accept_error(const boost::system::error_code& ec) {
  return ec == net::error::connection_aborted || ec == net::error::connection_reset ||
         ec == boost::system::error_code(EPROTO, boost::system::system_category()) ||
         ec == boost::system::error_code(EPERM, boost::system::system_category());
}

std::string to_string(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6()) {
    return "[" + address.to_string() + "]:" + std::to_string(ep.port());
  }
  return address.to_string() + ":" + std::to_string(ep.port());
}

// Opens, binds and listens on address:port ("::" dual-stack, IPv4 only where IPv6 is missing).
boost::system::error_code open_acceptor(tcp::acceptor& acceptor,
                                        const http_listener_settings& settings,
                                        std::uint16_t port, const std::string& port_setting) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(settings.address, ec);
  if (ec) {
    spdlog::error("event=config_error setting={} value=\"{}\" hint=\"not an IP address; use :: "
                  "or 0.0.0.0 for all\"",
                  settings.listen_setting, settings.address);
    return ec;
  }
  tcp::endpoint endpoint{address, port};
  acceptor.open(endpoint.protocol(), ec);
  if (ec == net::error::address_family_not_supported && address == net::ip::address_v6::any()) {
    spdlog::warn("event=ipv6_unavailable hint=\"listening on IPv4 only (0.0.0.0)\"");
    endpoint = tcp::endpoint{net::ip::address_v4::any(), port};
    acceptor.open(endpoint.protocol(), ec);
  }
  if (ec) {
    spdlog::error("event=listen_error error=\"{}\"", ec.message());
    return ec;
  }
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (endpoint.address().is_v6()) {
    boost::system::error_code ignored;  // dual-stack is best effort; IPv6 still works without it
    acceptor.set_option(net::ip::v6_only(false), ignored);
  }
  acceptor.bind(endpoint, ec);
  if (ec) {
    spdlog::error("event=listen_error endpoint={} error=\"{}\" hint=\"is another instance "
                  "running? free the port, or set {} or {}\"",
                  to_string(endpoint), ec.message(), port_setting, settings.listen_setting);
    return ec;
  }
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    spdlog::error("event=listen_error endpoint={} error=\"{}\"", to_string(endpoint),
                  ec.message());
  }
  return ec;
}

void notify(const std::function<void()>& event) {
  if (event) {
    event();
  }
}

}  // namespace

http_connection::http_connection(tcp::socket socket, const http_listener_settings& settings)
    : stream(std::move(socket)),
      max_header_bytes_(settings.max_header_bytes),
      header_timeout_(settings.header_timeout),
      idle_timeout_(settings.idle_timeout) {
  boost::system::error_code ec;
  peer = stream.socket().remote_endpoint(ec);
  client = unmapped(peer.address());
}

net::awaitable<http_connection::head_result> http_connection::await_next_request(
    boost::beast::flat_buffer& buffer) {
  stream.expires_after(idle_timeout_);
  auto [ec, n] = co_await stream.async_read_some(buffer.prepare(first_read_size), use_tuple);
  if (!ec) {
    buffer.commit(n);
  }
  co_return head_result{ec, true};
}

http_listener::http_listener(private_tag, net::io_context& ioc, http_listener_settings settings,
                             std::shared_ptr<tls_server_context> tls, io_pool* connections)
    : ioc_(ioc),
      connections_(connections),
      settings_(std::move(settings)),
      tls_(std::move(tls)),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      tls_acceptor_(strand_),
      backoff_(strand_),
      tls_backoff_(strand_) {}

result<std::shared_ptr<http_listener>> http_listener::open(net::io_context& ioc,
                                                          http_listener_settings settings,
                                                          std::shared_ptr<tls_server_context> tls,
                                                          io_pool* connections) {
  auto listener = std::make_shared<http_listener>(private_tag{}, ioc, std::move(settings),
                                                  std::move(tls), connections);
  const auto& s = listener->settings_;
  if (auto ec = open_acceptor(listener->acceptor_, s, s.port, s.port_setting); ec) {
    return ec;
  }
  if (listener->tls_) {
    if (auto ec = open_acceptor(listener->tls_acceptor_, s, s.tls_port, s.tls_port_setting); ec) {
      return ec;
    }
  }
  return listener;
}

tcp::endpoint http_listener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

tcp::endpoint http_listener::tls_local_endpoint() const {
  boost::system::error_code ec;
  return tls_acceptor_.is_open() ? tls_acceptor_.local_endpoint(ec) : tcp::endpoint{};
}

void http_listener::start(session run, http_listener_events events) {
  run_ = std::move(run);
  events_ = std::move(events);
  net::co_spawn(strand_, accept_loop(acceptor_, backoff_, false),
                [self = shared_from_this()](std::exception_ptr e) { log_failure("accept loop")(e); });
  if (tls_acceptor_.is_open()) {
    net::co_spawn(strand_, accept_loop(tls_acceptor_, tls_backoff_, true),
                  [self = shared_from_this()](std::exception_ptr e) {
                    log_failure("https accept loop")(e);
                  });
  }
}

void http_listener::stop() {
  net::dispatch(strand_, [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->tls_acceptor_.close(ignored);
    self->backoff_.cancel();
    self->tls_backoff_.cancel();
    self->run_ = nullptr;  // what it holds (its server) need not outlive the accepting
  });
}

net::awaitable<void> http_listener::accept_loop(tcp::acceptor& acceptor,
                                                net::steady_timer& backoff_timer, bool tls) {
  auto backoff = settings_.accept_backoff_min;
  bool backing_off = false;
  for (;;) {
    const net::any_io_executor executor =
        connections_ != nullptr ? connections_->next() : net::any_io_executor(net::make_strand(ioc_));
    auto [ec, socket] = co_await acceptor.async_accept(executor, use_tuple);
    if (!acceptor.is_open() || !run_) {
      co_return;  // stop() closed it
    }
    if (ec) {
      if (is_per_connection_accept_error(ec)) {
        continue;
      }
      if (!backing_off) {
        spdlog::warn("event=accept_failed error=\"{}\" hint=\"accepting connections failed; "
                     "retrying with back-off{}\"",
                     ec.message(),
                     is_resource_exhaustion(ec) ? "; raise the open-files limit, LimitNOFILE" : "");
        backing_off = true;
      }
      backoff_timer.expires_after(backoff);
      co_await backoff_timer.async_wait(use_tuple);
      backoff = std::min(backoff * 2, settings_.accept_backoff_max);
      continue;
    }
    if (backing_off) {
      spdlog::info("event=accept_resumed hint=\"accepting connections again\"");
      backing_off = false;
      backoff = settings_.accept_backoff_min;
    }

    // A response head and a small body go out as two writes; with Nagle's algorithm the body
    // would wait for the client's delayed ACK of the head (~40 ms per small item).
    boost::system::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);
    auto connection = std::make_shared<http_connection>(std::move(socket), settings_);
    if (open_.load(std::memory_order_relaxed) >= settings_.max_connections) {
      notify(events_.refused);
      if (!at_limit_.exchange(true, std::memory_order_relaxed)) {
        spdlog::warn("event=connection_limit open={} peer={} hint=\"{} reached; closing new "
                     "connections at once\"",
                     settings_.max_connections, to_string(connection->peer),
                     settings_.max_connections_setting);
      }
      continue;  // `connection` goes out of scope: the socket closes
    }
    if (at_limit_.exchange(false, std::memory_order_relaxed)) {
      spdlog::info("event=connection_limit_cleared");
    }
    open_.fetch_add(1, std::memory_order_relaxed);
    notify(events_.accepted);
    auto connection_executor = connection->stream.get_executor();
    net::co_spawn(connection_executor,
                  serve(std::move(connection), tls ? tls_->current() : nullptr, run_),
                  [self = shared_from_this()](std::exception_ptr e) {
                    log_failure("connection")(e);
                  });
  }
}

net::awaitable<void> http_listener::serve(std::shared_ptr<http_connection> connection,
                                          std::shared_ptr<const tls_server_context::snapshot> tls,
                                          session run) {
  struct release_at_exit {
    std::atomic<std::uint32_t>& open;
    ~release_at_exit() { open.fetch_sub(1, std::memory_order_relaxed); }
  } const release{open_};

  if (tls) {
    // A certificate reload applies from the next connection on: `tls` was taken at accept.
    auto ec = co_await connection->stream.start_tls(tls->context, settings_.handshake_timeout);
    if (ec) {
      notify(events_.handshake_failed);
      spdlog::debug("event=tls_handshake_failed peer={} error=\"{}\"",
                    to_string(connection->peer), ec.message());
      boost::system::error_code ignored;
      connection->stream.socket().close(ignored);
      co_return;
    }
  }
  auto session_done = run(std::move(connection));
  co_await std::move(session_done);
}

}  // namespace lanrelay
