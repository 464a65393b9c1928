#include "lanrelay/proxyhelper/pac_server.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/proxyhelper/pac.hpp"
#include "lanrelay/serving/admin_access.hpp"
#include "lanrelay/serving/session_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

namespace lanrelay::proxyhelper {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_header_bytes = 8192;
constexpr std::chrono::milliseconds send_timeout{10'000};
constexpr std::chrono::milliseconds accept_backoff{100};

std::string stats_json(const pac_context& context) {
  const auto& c = context.counters;
  json::object o;
  o["queries"] = c.queries.load();
  o["answers_sent"] = c.answers_sent.load();
  o["no_healthy_proxy"] = c.no_healthy_proxy.load();
  add_to_json(o, c);
  o["reply_too_large"] = c.reply_too_large.load();
  o["send_errors"] = c.send_errors.load();
  o["checks"] = c.checks.load();
  o["check_failures"] = c.check_failures.load();
  o["http_requests"] = c.http_requests.load();
  o["pac_served"] = c.pac_served.load();
  o["connections_refused"] = c.connections_refused.load();
  o["public_key"] = context.public_key;
  json::array proxies;
  for (const auto& s : context.health.snapshot()) {
    json::object p;
    p["url"] = s.spec.url;
    p["priority"] = s.spec.priority;
    p["checked"] = s.checked;
    p["healthy"] = s.healthy;
    p["last_result"] = s.last_result;
    p["last_elapsed_ms"] = s.last_elapsed.count();
    proxies.emplace_back(std::move(p));
  }
  o["proxies"] = std::move(proxies);
  return json::serialize(o);
}

// /, /-/status, /-/metrics and /-/stats: what loopback and [admin] read_networks may read.
bool is_monitoring(std::string_view target) {
  return target == "/" || target == "/-/status" || target == "/-/metrics" || target == "/-/stats";
}

}  // namespace

http::response<http::string_body> handle_request(const http::request<http::empty_body>& request,
                                                 const pac_context& context,
                                                 const request_origin& origin) {
  ++context.counters.http_requests;
  http::response<http::string_body> response;
  response.version(request.version());
  response.keep_alive(request.keep_alive());
  response.set(http::field::server, "proxyhelperd");
  const auto text = [&](http::status status, std::string body) {
    response.result(status);
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.body() = std::move(body);
  };
  const auto reloaded = context.live != nullptr ? context.live->get() : nullptr;
  const proxyhelper_config& running = reloaded ? *reloaded : context.config;
  std::optional<access_decision> refused;
  if (is_monitoring(request.target())) {
    // Validated by the loader; an entry that still fails to parse refuses everyone but loopback.
    const auto policy = access_policy::from_networks(running.read_networks);
    auto decision = (policy ? *policy : access_policy{})
                        .check(endpoint_access::read, origin.client, origin.secure, {});
    if (!decision.allowed) {
      refused = std::move(decision);
    }
  }
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    response.set(http::field::allow, "GET, HEAD");
    text(http::status::method_not_allowed, "only GET and HEAD\n");
  } else if (refused) {
    spdlog::info("event=access_refused client={} target={}",
                 origin.client ? origin.client->to_string() : "unknown",
                 std::string(request.target().substr(0, 64)));
    text(refused->status, refused->message + "\n");
  } else if (const auto target = request.target(); target == "/proxy.pac" || target == "/wpad.dat") {
    ++context.counters.pac_served;
    const proxyhelper_config& config = running;
    if (!config.pac_url.empty()) {
      response.result(http::status::found);
      response.set(http::field::location, config.pac_url);
    } else {
      response.result(http::status::ok);
      response.set(http::field::content_type, pac_content_type);
      // Health changes within a check interval; browsers should not keep a stale script longer.
      const auto max_age =
          std::chrono::duration_cast<std::chrono::seconds>(config.check_interval).count();
      response.set(http::field::cache_control, "max-age=" + std::to_string(max_age));
      response.body() = make_pac(context.health.healthy());
    }
  } else if (target == "/-/healthz") {
    text(http::status::ok, "ok\n");
  } else if (target == "/-/metrics" && context.metrics != nullptr) {
    response.result(http::status::ok);
    response.set(http::field::content_type, metrics::content_type);
    response.body() = context.metrics->render();
  } else if (target == "/-/status" && context.monitor != nullptr) {
    response.result(http::status::ok);
    response.set(http::field::content_type, "application/json");
    response.body() = status_json(*context.monitor, std::chrono::system_clock::now());
  } else if (target == "/" && context.monitor != nullptr) {
    response.result(http::status::ok);
    response.set(http::field::content_type, "text/html; charset=utf-8");
    response.body() = status_page(*context.monitor, std::chrono::system_clock::now());
  } else if (target == "/-/stats") {
    response.result(http::status::ok);
    response.set(http::field::content_type, "application/json");
    response.body() = stats_json(context);
  } else {
    text(http::status::not_found, "not found: proxyhelperd serves /proxy.pac, /wpad.dat, "
                                  "/-/healthz, /-/stats, /-/status, /-/metrics and /\n");
  }
  response.prepare_payload();
  if (request.method() == http::verb::head) {
    response.body().clear();  // Content-Length stays that of the GET
  }
  return response;
}

namespace {

result<tcp::acceptor> listen_on(net::io_context& ioc, const net::ip::address& address,
                                std::uint16_t port) {
  boost::system::error_code ec;
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec && address.is_v6()) {
    acceptor.set_option(net::ip::v6_only(false), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return ec;
  }
  return acceptor;
}

}  // namespace

result<std::shared_ptr<pac_server>> pac_server::create(net::io_context& ioc, pac_context context) {
  boost::system::error_code ec;
  const auto address = net::ip::make_address(context.config.http_listen, ec);
  if (ec) {
    spdlog::error("event=config_error setting=http.listen value=\"{}\" hint=\"not an IP address\"", context.config.http_listen);
    return ec;
  }
  auto acceptor = listen_on(ioc, address, context.config.http_port);
  if (!acceptor) {
    spdlog::error("event=listen_error endpoint={}:{} error=\"{}\" hint=\"free the port or set "
                  "http.port\"",
                  context.config.http_listen, context.config.http_port,
                  acceptor.error().message());
    return acceptor.error();
  }
  std::optional<tcp::acceptor> tls_acceptor;
  if (context.tls) {
    auto opened = listen_on(ioc, address, context.config.https.port);
    if (!opened) {
      spdlog::error("event=listen_error endpoint={}:{} error=\"{}\" hint=\"free the port or set "
                    "https.port\"",
                    context.config.http_listen, context.config.https.port,
                    opened.error().message());
      return opened.error();
    }
    tls_acceptor.emplace(std::move(*opened));
  }
  return std::make_shared<pac_server>(ioc, std::move(context), std::move(*acceptor),
                                      std::move(tls_acceptor));
}

pac_server::pac_server(net::io_context& ioc, pac_context context, tcp::acceptor acceptor,
                       std::optional<tcp::acceptor> tls_acceptor)
    : ioc_(ioc),
      context_(std::move(context)),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      tls_acceptor_(strand_) {
  // Moved onto the strand: the handle is released only after its protocol was read.
  const auto protocol = acceptor.local_endpoint().protocol();
  acceptor_.assign(protocol, acceptor.release());
  if (tls_acceptor) {
    const auto tls_protocol = tls_acceptor->local_endpoint().protocol();
    tls_acceptor_.assign(tls_protocol, tls_acceptor->release());
  }
}

tcp::endpoint pac_server::local_endpoint() const { return acceptor_.local_endpoint(); }

tcp::endpoint pac_server::tls_local_endpoint() const {
  boost::system::error_code ec;
  return tls_acceptor_.is_open() ? tls_acceptor_.local_endpoint(ec) : tcp::endpoint{};
}

void pac_server::start() {
  net::co_spawn(strand_, accept_loop(acceptor_, false), log_failure("pac server accept loop"));
  if (tls_acceptor_.is_open()) {
    net::co_spawn(strand_, accept_loop(tls_acceptor_, true),
                  log_failure("pac server https accept loop"));
  }
}

void pac_server::stop() {
  net::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->tls_acceptor_.close(ignored);
  });
}

net::awaitable<void> pac_server::accept_loop(tcp::acceptor& acceptor, bool tls) {
  auto self = shared_from_this();
  net::steady_timer backoff(strand_);
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor.async_accept(net::make_strand(ioc_), use_tuple);
    if (stopped_ || ec == net::error::operation_aborted) {
      co_return;
    }
    if (ec) {
      // EMFILE and friends: wait instead of spinning on an error that will repeat.
      spdlog::warn("event=accept_failed error=\"{}\" retry_ms={}", ec.message(),
                   accept_backoff.count());
      backoff.expires_after(accept_backoff);
      co_await backoff.async_wait(use_tuple);
      continue;
    }
    if (connections_.load() >= context_.config.max_connections) {
      ++context_.counters.connections_refused;
      continue;  // the socket closes as it goes out of scope
    }
    ++connections_;
    auto executor = socket.get_executor();
    net::co_spawn(executor,
                  serve(std::move(socket), tls ? context_.tls->current() : nullptr),
                  [self](std::exception_ptr e) {
                    --self->connections_;
                    log_failure("pac server connection", e);
                  });
  }
}

net::awaitable<void> pac_server::serve(
    tcp::socket socket, std::shared_ptr<const tls_server_context::snapshot> tls) {
  boost::system::error_code peer_ec;
  const auto peer = socket.remote_endpoint(peer_ec);
  request_origin origin;
  if (!peer_ec) {
    origin.client = unmapped(peer.address());
  }
  session_stream stream(std::move(socket));
  if (tls) {
    if (auto ec = co_await stream.start_tls(tls->context, context_.config.https.handshake_timeout);
        ec) {
      spdlog::debug("event=tls_handshake_failed error=\"{}\"", ec.message());
      boost::system::error_code ignored;
      stream.socket().close(ignored);
      co_return;
    }
    origin.secure = true;
  }
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(max_header_bytes);
    stream.expires_after(context_.config.header_timeout);
    auto [read_ec, read_bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_ec) {
      break;  // closed, timed out or malformed: nothing worth answering
    }
    const auto request = parser.release();
    auto response = handle_request(request, context_, origin);
    stream.expires_after(send_timeout);
    auto [write_ec, written] = co_await http::async_write(stream, response, use_tuple);
    if (write_ec || !response.keep_alive()) {
      break;
    }
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace lanrelay::proxyhelper
