#include "lanrelay/relay/server.hpp"

#include "lanrelay/relay/mirror_service.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/serving/http_listener.hpp"
#include "lanrelay/serving/session_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <exception>
#include <string>
#include <vector>

namespace lanrelay::relay {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {

// Ends when the client closes or resets its connection while its request waits (for an awaited
// response). Bytes it sends meanwhile (a pipelined request) stay for the next read: the
// wait then lasts until it is cancelled.
net::awaitable<void> client_hung_up(tcp::socket& socket) {
  for (;;) {
    auto [ec] = co_await socket.async_wait(tcp::socket::wait_read,
                                           net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return;  // cancelled (the wait is over) or the socket failed
    }
    char byte = 0;
    const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      co_return;
    }
    if (n > 0) {
      net::steady_timer forever(socket.get_executor(), net::steady_timer::time_point::max());
      co_await forever.async_wait(net::as_tuple(net::use_awaitable));
      co_return;
    }
  }
}

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// Awaits the work of an awaited response and keeps what it yields in `out` (empty when the work
// was cancelled). A void coroutine, so that racing it with client_hung_up moves no plan through
// the awaitable operators.
net::awaitable<void> produce_into(awaited_response& awaited, std::optional<ready_plan>& out) {
  auto produced = co_await awaited.produce();
  out.emplace(std::move(produced));
}

// After a response with Connection: close, unread request bytes are drained this long so the
// kernel sends FIN rather than RST, which could destroy the response before the peer reads it.
constexpr std::chrono::milliseconds lingering_close_timeout{2'000};
// Once running transfers are cancelled at the end of the grace period, connections get this long
// to unwind before the server reports an unclean stop.
constexpr std::chrono::milliseconds cancel_wait{5'000};
// sendfile(2) bytes per call, and bytes sent before a transfer yields to other connections on
// the same thread.
constexpr std::size_t sendfile_chunk = 16U << 20;
constexpr std::uint64_t fairness_quantum = 4U << 20;
// Over HTTPS an item is read into this buffer and encrypted (no sendfile): one TLS write each.
constexpr std::size_t tls_file_chunk = 256U << 10;
// How often the traffic history takes the growth of the byte counters (its buckets are 5 min).
constexpr std::chrono::seconds traffic_record_interval{60};

net::awaitable<void> nothing_to_run() { co_return; }

// Writes what it can of a file response's head at once, without waiting, with MSG_MORE: the kernel
// holds the head until the body's first bytes (sendfile) join it, as nginx's tcp_nopush does, so
// the head does not go out as a packet of its own (the socket has TCP_NODELAY) and wake the client
// once more. What the socket's buffer did not take is left in the serializer. Plain TCP only.
boost::system::error_code send_head_corked(tcp::socket& socket,
                                           http::response_serializer<http::empty_body>& serializer) {
  serializer.split(true);
  std::array<iovec, 64> parts{};  // a head is three pieces, one per field and a last CRLF
  std::size_t count = 0;
  boost::system::error_code ec;
  serializer.next(ec, [&](boost::system::error_code&, const auto& buffers) {
    for (const net::const_buffer b : beast::buffers_range_ref(buffers)) {
      if (count == parts.size()) {
        break;  // the rest goes out on the next call, through async_write_header
      }
      parts[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    }
  });
  if (ec) {
    return ec;
  }
  msghdr message{};
  message.msg_iov = parts.data();
  message.msg_iovlen = count;
  ssize_t sent = -1;
  do {
    sent = ::sendmsg(socket.native_handle(), &message, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return {};
    }
    return boost::system::error_code(errno, boost::system::system_category());
  }
  serializer.consume(static_cast<std::size_t>(sent));
  return {};
}

// The content server's listener: http.* and https.* of the configuration.
http_listener_settings listener_settings(const relay_config& config) {
  http_listener_settings s;
  s.address = config.http.listen_address;
  s.port = config.http.port;
  s.tls_port = config.https.port;
  s.max_connections = config.http.max_connections;
  s.max_header_bytes = config.http.max_header_bytes;
  s.header_timeout = config.http.header_timeout;
  s.idle_timeout = config.http.idle_timeout;
  s.handshake_timeout = config.https.handshake_timeout;
  return s;
}

std::string to_string(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6()) {
    return "[" + address.to_string() + "]:" + std::to_string(ep.port());
  }
  return address.to_string() + ":" + std::to_string(ep.port());
}


}  // namespace

namespace detail {

// One peer connection. Every member is owned by the connection's executor (the stream's: one of
// the io_pool's single-threaded loops, or a strand of its own); other threads reach it only
// through request_stop(), which posts to that executor.
class connection : public std::enable_shared_from_this<connection> {
 public:
  explicit connection(std::shared_ptr<http_connection> accepted)
      : accepted_(std::move(accepted)),
        stream_(accepted_->stream),
        peer_(accepted_->peer),
        send_timer_(stream_.get_executor()) {}

  // From any thread. Graceful: close now if idle, else after the running response. Abort: cancel
  // whatever runs, a transfer included.
  void request_stop(bool abort) {
    net::post(stream_.get_executor(), [self = shared_from_this(), abort] {
      self->stopping_ = true;
      self->aborting_ = self->aborting_ || abort;
      if (!self->busy_ || self->aborting_) {
        boost::system::error_code ec;
        self->stream_.socket().cancel(ec);
      }
    });
  }

  std::uint64_t id_ = 0;  // set once by register_connection before the session starts
  const std::shared_ptr<http_connection> accepted_;  // from the listener, TLS already running
  lanrelay::session_stream& stream_;                  // accepted_->stream
  const tcp::endpoint peer_;
  bool busy_ = false;  // a request head has been read and its response is not yet sent
  bool stopping_ = false;
  bool aborting_ = false;
  bool too_slow_ = false;  // the last transfer was ended for reading below the rate floor
  // send_file's deadline: armed once and re-armed only after it fires (not per readiness wait).
  // When it fires during the transfer it was armed for (same generation), it sets the flag and
  // cancels the socket's wait for writability.
  net::steady_timer send_timer_;
  std::uint64_t send_generation_ = 0;
  bool send_timer_fired_ = false;
};

}  // namespace detail

server::server(private_tag, net::io_context& ioc, const relay_config& config,
               content_store& store, const catalog_signer* signer, mirror_service* mirrors,
               access_policy access, parent_chain* parents)
    : http_(config.http),
      shutdown_grace_(config.shutdown_grace),
      client_share_(config.client_share),
      slots_(config.max_peers, config.client_share.max_peers_per_client,
             config.client_share.client_ipv6_prefix),
      monitor_(store, counters_, slots_, config.role),
      handler_(store, slots_, counters_,
               handler_settings{config.retry_after, signer, std::move(access), &monitor_, mirrors,
                                parents}),
      control_(net::make_strand(ioc)),
      drain_timer_(control_),
      traffic_timer_(control_) {}

server::~server() = default;

result<std::shared_ptr<server>> server::create(net::io_context& ioc, const relay_config& config,
                                               content_store& store,
                                               const catalog_signer* signer,
                                               mirror_service* mirrors,
                                               std::shared_ptr<tls_server_context> tls,
                                               parent_chain* parents,
                                               io_pool* connections) {
  auto access = access_policy::from_config(config.admin);
  if (!access) {
    spdlog::error("event=config_error setting=admin.read_networks error=\"not a list of networks\"");
    return access.error();
  }
  auto srv = std::make_shared<server>(private_tag{}, ioc, config, store, signer, mirrors,
                                      std::move(*access), parents);
  auto listener =
      http_listener::open(ioc, listener_settings(config), std::move(tls), connections);
  if (!listener) {
    return listener.error();
  }
  srv->listener_ = std::move(*listener);
  return srv;
}

tcp::endpoint server::local_endpoint() const { return listener_->local_endpoint(); }

tcp::endpoint server::tls_local_endpoint() const { return listener_->tls_local_endpoint(); }

stats_snapshot server::stats() const noexcept { return take_snapshot(counters_, slots_); }

void server::start() {
  std::signal(SIGPIPE, SIG_IGN);
  // The listener holds the session function until stop(); a weak reference, so that the server
  // does not keep itself alive through its own listener. Each session holds the server.
  std::weak_ptr<server> weak = shared_from_this();
  listener_->start(
      [weak](std::shared_ptr<http_connection> accepted) -> net::awaitable<void> {
        auto self = weak.lock();
        return self ? self->run_session(self, std::move(accepted)) : nothing_to_run();
      },
      http_listener_events{
          [weak] {
            if (auto self = weak.lock()) {
              self->counters_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
            }
          },
          [weak] {
            if (auto self = weak.lock()) {
              self->counters_.connections_refused.fetch_add(1, std::memory_order_relaxed);
            }
          },
          [weak] {
            if (auto self = weak.lock()) {
              self->counters_.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
            }
          }});
  net::co_spawn(control_, traffic_loop(), [self = shared_from_this()](std::exception_ptr e) {
    log_failure("traffic history")(e);
  });
}

net::awaitable<void> server::traffic_loop() {
  while (!on_stopped_) {
    traffic_timer_.expires_after(traffic_record_interval);
    auto [ec] = co_await traffic_timer_.async_wait(use_tuple);
    monitor_.record_traffic(std::chrono::system_clock::now());
    if (ec) {
      co_return;  // cancelled by the shutdown sequence
    }
  }
}

void server::stop(std::function<void(bool)> on_stopped) {
  net::post(control_, [self = shared_from_this(), cb = std::move(on_stopped)]() mutable {
    if (self->on_stopped_) {
      return;  // already stopping
    }
    self->on_stopped_ = cb ? std::move(cb) : [](bool) {};
    net::co_spawn(self->control_, self->shutdown_sequence(), [self](std::exception_ptr e) {
      log_failure("shutdown")(e);
    });
  });
}

void server::abort() {
  net::post(control_, [self = shared_from_this()] {
    self->abort_requested_ = true;
    self->drain_timer_.cancel();
  });
}

bool server::register_connection(const std::shared_ptr<detail::connection>& conn) {
  std::lock_guard lock(registry_mutex_);
  if (stopping_) {
    return false;
  }
  conn->id_ = ++next_connection_id_;
  connections_.emplace(conn->id_, conn);
  counters_.active_connections.store(connections_.size(), std::memory_order_relaxed);
  return true;
}

void server::unregister_connection(std::uint64_t id) {
  bool last = false;
  {
    std::lock_guard lock(registry_mutex_);
    connections_.erase(id);
    counters_.active_connections.store(connections_.size(), std::memory_order_relaxed);
    last = stopping_ && connections_.empty();
  }
  if (last) {
    net::post(control_, [self = shared_from_this()] {
      self->all_done_ = true;
      self->drain_timer_.cancel();
    });
  }
}

net::awaitable<void> server::run_session(std::shared_ptr<server> /*keeps the server alive*/,
                                         std::shared_ptr<http_connection> accepted) {
  auto conn = std::make_shared<detail::connection>(std::move(accepted));
  if (!register_connection(conn)) {
    co_return;  // stopping: accepted (or its handshake done) just as stop() began
  }
  struct unregister_at_exit {
    server& srv;
    std::uint64_t id;
    ~unregister_at_exit() { srv.unregister_connection(id); }
  } const registration{*this, conn->id_};

  auto& stream = conn->stream_;
  beast::flat_buffer buffer;
  bool linger = false;  // we announced Connection: close; drain before closing
  for (;;) {
    if (conn->stopping_) {
      break;
    }
    http::request_parser<http::string_body> parser;
    parser.body_limit(request_handler::max_body_size);
    // A keep-alive connection waits http.idle_timeout for the next request to begin; its head
    // then has http.header_timeout, like the first request's head from accept.
    const auto head = co_await conn->accepted_->read_request_head(buffer, parser);
    if (head.idle_ended) {
      break;  // idle timeout, the peer closed, or shutdown
    }
    if (const auto ec = head.ec; ec) {
      if (ec == beast::error::timeout) {
        counters_.header_timeouts.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("event=header_timeout peer={}",
                      to_string(conn->peer_));
        break;
      }
      if (ec.category() != http::make_error_code(http::error::bad_target).category() ||
          ec == http::error::end_of_stream || ec == http::error::partial_message) {
        break;  // the peer closed, reset, or shutdown cancelled the read
      }
      counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
      http::status status = http::status::bad_request;
      if (ec == http::error::header_limit) {
        status = http::status::request_header_fields_too_large;
      } else if (ec == http::error::body_limit) {
        status = http::status::payload_too_large;
      }
      spdlog::debug("event=bad_request peer={} error=\"{}\"", to_string(conn->peer_), ec.message());
      response_plan plan = request_handler::error_response(status, 11, ec.message());
      co_await send_plan(*conn, plan);
      linger = true;
      break;
    }
    const parsed_target target = parse_request_target(parser.get().target());
    if (!parser.is_done() && request_handler::accepts_body(parser.get(), target) > 0) {
      // An admin endpoint's small argument; the head's deadline covers it too.
      auto [body_ec, body_n] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (body_ec && body_ec != http::error::body_limit) {
        break;
      }
    }
    if (!parser.is_done()) {
      counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
      response_plan plan = request_handler::error_response(
          http::status::payload_too_large, parser.get().version(), "requests have no body here");
      co_await send_plan(*conn, plan);
      linger = true;
      break;
    }
    if (conn->aborting_) {
      break;
    }

    conn->busy_ = true;
    request_context context{conn->accepted_->client, parser.get().body()};
    context.secure = stream.secure();
    response_plan plan = handler_.handle(parser.get(), target, context);
    if (auto* awaited = std::get_if<awaited_response>(&plan)) {
      std::optional<ready_plan> ready;
      auto work = produce_into(*awaited, ready);
      if (awaited->abandon_when_client_leaves) {
        using namespace net::experimental::awaitable_operators;
        auto hung_up = client_hung_up(stream.socket());
        co_await (std::move(work) || std::move(hung_up));
      } else {
        co_await std::move(work);
      }
      if (!ready) {
        conn->busy_ = false;
        break;  // the client hung up: nobody to answer
      }
      if (auto* response = std::get_if<small_response>(&*ready)) {
        plan = std::move(*response);
      } else {
        plan = std::move(std::get<file_transfer>(*ready));
      }
    }
    const bool keep_alive = co_await send_plan(*conn, plan);
    conn->busy_ = false;
    if (!keep_alive) {
      linger = !conn->aborting_;
      break;
    }
  }

  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (linger && !conn->aborting_ && stream.socket().is_open()) {
    stream.expires_after(lingering_close_timeout);
    std::array<char, 4096> sink{};
    for (;;) {
      auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), use_tuple);
      if (ec) {
        break;
      }
    }
  }
  stream.socket().close(ignored);
}

net::awaitable<bool> server::send_plan(detail::connection& conn, response_plan& plan) {
  auto& stream = conn.stream_;
  if (auto* response = std::get_if<small_response>(&plan)) {
    if (conn.stopping_) {
      response->keep_alive(false);
    }
    stream.expires_after(http_.send_timeout);
    auto [ec, n] = co_await http::async_write(stream, *response, use_tuple);
    co_return !ec && response->keep_alive();
  }

  auto& transfer = std::get<file_transfer>(plan);
  if (conn.stopping_) {
    transfer.head.keep_alive(false);
  }
  http::response_serializer<http::empty_body> serializer{transfer.head};
  const auto started = std::chrono::steady_clock::now();
  auto tracked = monitor_.transfers().begin(conn.accepted_->client.to_string(),
                                            transfer.item, transfer.offset, transfer.length);
  boost::system::error_code ec;
  if (!stream.secure()) {
    ec = send_head_corked(stream.socket(), serializer);
  }
  if (!ec && !serializer.is_header_done()) {
    // TLS, or the socket's buffer was full: the rest of the head the ordinary way.
    stream.expires_after(http_.send_timeout);
    auto [write_ec, n] = co_await http::async_write_header(stream, serializer, use_tuple);
    stream.expires_never();
    ec = write_ec;
  }
  if (!ec) {
    ec = co_await send_file(conn, transfer, tracked);
  }
  transfer.slot.release();  // the slot frees as soon as the transfer ends, however it ended
  transfer.file = item_file{};
  tracked = transfer_registry::handle{};
  const auto duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count();
  if (conn.too_slow_) {
    reset_slow_client(conn, transfer);
  }
  if (ec) {
    counters_.transfers_aborted.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("event=transfer_aborted peer={} item={} length={} duration_ms={} error=\"{}\"",
                  to_string(conn.peer_), transfer.item, transfer.length, duration_ms,
                  ec.message());
    co_return false;
  }
  counters_.transfers_completed.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("event=transfer_done peer={} item={} bytes={} duration_ms={}",
                to_string(conn.peer_), transfer.item, transfer.length, duration_ms);
  co_return transfer.head.keep_alive();
}

net::awaitable<boost::system::error_code> server::send_file(
    detail::connection& conn, file_transfer& transfer, transfer_registry::handle& tracked) {
  if (conn.stream_.secure()) {
    co_return co_await send_file_encrypted(conn, transfer, tracked);
  }
  auto& socket = conn.stream_.socket();
  boost::system::error_code ec;
  if (!socket.native_non_blocking()) {  // once per connection (an ioctl)
    socket.native_non_blocking(true, ec);
    if (ec) {
      co_return ec;
    }
  }
  // However the transfer ends, a deadline still armed for it has no effect any more.
  struct disarm_at_exit {
    detail::connection& conn;
    ~disarm_at_exit() {
      ++conn.send_generation_;
      conn.send_timer_fired_ = false;
      conn.send_timer_.cancel();
    }
  } const disarm{conn};
  bool armed = false;
  auto offset = static_cast<off_t>(transfer.offset);
  std::uint64_t remaining = transfer.length;
  std::uint64_t since_yield = 0;
  // The rate floor: the client must take floor_bytes in every client_rate_window, or the
  // transfer ends and its slot goes to someone else (a stalled reader otherwise holds it until
  // send_timeout, and a trickling one for ever).
  const auto window = client_share_.client_rate_window;
  const std::uint64_t floor_bytes = client_share_.min_client_rate *
                                    static_cast<std::uint64_t>(window.count()) / 1000;
  auto last_progress = std::chrono::steady_clock::now();
  auto window_end = last_progress + window;
  std::uint64_t window_bytes = 0;
  while (remaining > 0) {
    if (conn.aborting_) {
      co_return net::error::operation_aborted;
    }
    if (floor_bytes > 0) {
      if (const auto now = std::chrono::steady_clock::now(); now >= window_end) {
        if (window_bytes < floor_bytes) {
          conn.too_slow_ = true;
          co_return beast::error::timeout;
        }
        window_end = now + window;
        window_bytes = 0;
      }
    }
    const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, sendfile_chunk));
    const ssize_t sent = ::sendfile(socket.native_handle(), transfer.file.fd(), &offset, chunk);
    if (sent > 0) {
      remaining -= static_cast<std::uint64_t>(sent);
      since_yield += static_cast<std::uint64_t>(sent);
      window_bytes += static_cast<std::uint64_t>(sent);
      last_progress = std::chrono::steady_clock::now();
      counters_.bytes_served.fetch_add(static_cast<std::uint64_t>(sent), std::memory_order_relaxed);
      tracked.add_bytes(static_cast<std::uint64_t>(sent));
      if (since_yield >= fairness_quantum) {
        since_yield = 0;
        // Behind the handlers already queued, on this thread: deferred, not posted, which would
        // wake another thread to continue the transfer there.
        co_await net::defer(socket.get_executor(), net::use_awaitable);
      }
      continue;
    }
    if (sent == 0) {
      // The file is shorter than the store says: it was truncated behind the store's back.
      counters_.hash_mismatches.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("event=cached_file_short item={} etag={} at_byte={} hint=\"the cache "
                    "directory was modified by something else\"",
                    transfer.item, std::string_view(transfer.head[http::field::etag]),
                    static_cast<std::uint64_t>(offset));
      co_return make_error_code(errc::size_mismatch);
    }
    const int error = errno;
    if (error == EINTR) {
      continue;
    }
    if (error != EAGAIN && error != EWOULDBLOCK) {
      co_return boost::system::error_code(error, boost::system::system_category());
    }
    const auto stalled_at = last_progress + http_.send_timeout;
    if (conn.send_timer_fired_) {
      conn.send_timer_fired_ = false;
      armed = false;
      if (std::chrono::steady_clock::now() >= stalled_at) {
        co_return beast::error::timeout;  // no progress for http.send_timeout
      }
      if (floor_bytes > 0 && std::chrono::steady_clock::now() >= window_end) {
        continue;  // a rate window ended: judged at the top of the loop
      }
    }
    if (!armed) {
      // Armed at the earliest moment something is to be judged; progress since then only moves
      // those moments later, so a deadline that fires early costs one more turn of this loop.
      armed = true;
      conn.send_timer_.expires_at(floor_bytes > 0 ? std::min(stalled_at, window_end) : stalled_at);
      conn.send_timer_.async_wait([self = conn.shared_from_this(),
                                   generation = conn.send_generation_](boost::system::error_code e) {
        if (e || self->send_generation_ != generation) {
          return;  // cancelled, or the transfer it was armed for is over
        }
        self->send_timer_fired_ = true;
        boost::system::error_code ignored;
        self->stream_.socket().cancel(ignored);
      });
    }
    auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_write, use_tuple);
    if (wait_ec == net::error::operation_aborted && conn.send_timer_fired_ && !conn.aborting_) {
      continue;  // the deadline: judged above after one more try
    }
    if (wait_ec) {
      co_return wait_ec;
    }
    since_yield = 0;  // waiting was a turn for the others
  }
  co_return boost::system::error_code{};
}

void server::reset_slow_client(detail::connection& conn, const file_transfer& transfer) {
  counters_.slow_clients_reset.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("event=slow_client_reset peer={} item={} min_client_rate={} window_ms={} "
               "hint=\"the client read slower than peers.min_client_rate; its slot is free "
               "again\"",
               to_string(conn.peer_), transfer.item, client_share_.min_client_rate,
               client_share_.client_rate_window.count());
  // A reset, not a FIN: the client cannot mistake the cut body for a whole one, and the kernel
  // drops the unsent bytes at once.
  auto& socket = conn.stream_.socket();
  boost::system::error_code ignored;
  socket.set_option(net::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

net::awaitable<boost::system::error_code> server::send_file_encrypted(
    detail::connection& conn, file_transfer& transfer, transfer_registry::handle& tracked) {
  std::vector<char> chunk(static_cast<std::size_t>(
      std::min<std::uint64_t>(transfer.length, tls_file_chunk)));
  auto offset = static_cast<off_t>(transfer.offset);
  std::uint64_t remaining = transfer.length;
  // The same rate floor as send_file. A write still running when an unmet window ends is cut by
  // the stream's expiry; one that began after the window's floor was met may run past its end.
  const auto window = client_share_.client_rate_window;
  const std::uint64_t floor_bytes = client_share_.min_client_rate *
                                    static_cast<std::uint64_t>(window.count()) / 1000;
  auto window_end = std::chrono::steady_clock::now() + window;
  std::uint64_t window_bytes = 0;
  while (remaining > 0) {
    if (conn.aborting_) {
      co_return net::error::operation_aborted;
    }
    const auto now = std::chrono::steady_clock::now();
    if (floor_bytes > 0 && now >= window_end) {
      if (window_bytes < floor_bytes) {
        conn.too_slow_ = true;
        co_return beast::error::timeout;
      }
      window_end = now + window;
      window_bytes = 0;
    }
    const bool floor_pending = floor_bytes > 0 && window_bytes < floor_bytes;
    const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, chunk.size()));
    const ssize_t got = ::pread(transfer.file.fd(), chunk.data(), wanted, offset);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      co_return boost::system::error_code(errno, boost::system::system_category());
    }
    if (got == 0) {
      counters_.hash_mismatches.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("event=cached_file_short item={} at_byte={} hint=\"the cache directory was "
                    "modified by something else\"",
                    transfer.item, static_cast<std::uint64_t>(offset));
      co_return make_error_code(errc::size_mismatch);
    }
    const auto limit = floor_pending ? std::min<std::chrono::steady_clock::duration>(
                                           http_.send_timeout, window_end - now)
                                     : std::chrono::steady_clock::duration(http_.send_timeout);
    conn.stream_.expires_after(limit);
    auto [ec, n] = co_await net::async_write(
        conn.stream_, net::buffer(chunk.data(), static_cast<std::size_t>(got)), use_tuple);
    if (ec) {
      if (ec == beast::error::timeout && floor_pending &&
          std::chrono::steady_clock::now() >= window_end) {
        conn.too_slow_ = true;
      }
      co_return ec;
    }
    offset += got;
    remaining -= static_cast<std::uint64_t>(got);
    window_bytes += static_cast<std::uint64_t>(got);
    counters_.bytes_served.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_relaxed);
    tracked.add_bytes(static_cast<std::uint64_t>(got));
  }
  conn.stream_.expires_never();
  co_return boost::system::error_code{};
}

net::awaitable<void> server::wait_for_connections(std::chrono::steady_clock::time_point deadline,
                                                  bool interrupt_on_abort) {
  while (!all_done_ && !(interrupt_on_abort && abort_requested_) &&
         std::chrono::steady_clock::now() < deadline) {
    drain_timer_.expires_at(deadline);
    co_await drain_timer_.async_wait(use_tuple);
  }
}

net::awaitable<void> server::shutdown_sequence() {
  handler_.set_draining();
  listener_->stop();
  traffic_timer_.cancel();

  std::vector<std::shared_ptr<detail::connection>> open;
  {
    std::lock_guard lock(registry_mutex_);
    stopping_ = true;
    for (const auto& [id, weak] : connections_) {
      if (auto conn = weak.lock()) {
        open.push_back(std::move(conn));
      }
    }
    all_done_ = all_done_ || connections_.empty();
  }
  spdlog::info("event=draining transfers={} grace_ms={} hint=\"no new connections; idle ones "
               "closed\"",
               slots_.active(), shutdown_grace_.count());
  for (const auto& conn : open) {
    conn->request_stop(false);
  }
  open.clear();

  co_await wait_for_connections(std::chrono::steady_clock::now() + shutdown_grace_, true);
  if (!all_done_) {
    {
      std::lock_guard lock(registry_mutex_);
      for (const auto& [id, weak] : connections_) {
        if (auto conn = weak.lock()) {
          open.push_back(std::move(conn));
        }
      }
    }
    spdlog::warn("event=transfers_cancelled reason={} transfers={}",
                 abort_requested_ ? "second_signal" : "grace_period_over", slots_.active());
    for (const auto& conn : open) {
      conn->request_stop(true);
    }
    open.clear();
    co_await wait_for_connections(std::chrono::steady_clock::now() + cancel_wait, false);
  }
  if (!all_done_) {
    spdlog::error("event=stop_unclean wait_ms={} hint=\"some connections did not end after being "
                  "cancelled\"",
                  cancel_wait.count());
  }
  auto on_stopped = std::exchange(on_stopped_, [](bool) {});
  on_stopped(all_done_);
}

}  // namespace lanrelay::relay
