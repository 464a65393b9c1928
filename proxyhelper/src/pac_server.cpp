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
    auto decision = (policy ? *policy : access_policy{}).monitoring(origin);
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

http_listener_settings listener_settings(const proxyhelper_config& config) {
  http_listener_settings s;
  s.address = config.http_listen;
  s.port = config.http_port;
  s.tls_port = config.https.port;
  s.max_connections = config.max_connections;
  s.max_header_bytes = config.max_header_bytes;
  s.header_timeout = config.header_timeout;
  s.idle_timeout = config.idle_timeout;
  s.handshake_timeout = config.https.handshake_timeout;
  return s;
}

result<std::shared_ptr<pac_server>> pac_server::create(net::io_context& ioc, pac_context context) {
  auto listener = http_listener::open(ioc, listener_settings(context.config), context.tls);
  if (!listener) {
    return listener.error();  // logged by the listener
  }
  return std::make_shared<pac_server>(std::move(context), std::move(*listener));
}

pac_server::pac_server(pac_context context, std::shared_ptr<http_listener> listener)
    : context_(std::move(context)), listener_(std::move(listener)) {}

tcp::endpoint pac_server::local_endpoint() const { return listener_->local_endpoint(); }

tcp::endpoint pac_server::tls_local_endpoint() const { return listener_->tls_local_endpoint(); }

namespace {
net::awaitable<void> nothing_to_run() { co_return; }
}  // namespace

void pac_server::start() {
  // Weak: the listener holds the session function until stop(); each session holds the server.
  std::weak_ptr<pac_server> weak = shared_from_this();
  auto* counters = &context_.counters;
  listener_->start(
      [weak](std::shared_ptr<http_connection> connection) -> net::awaitable<void> {
        auto self = weak.lock();
        return self ? self->serve(self, std::move(connection)) : nothing_to_run();
      },
      http_listener_events{{}, [counters] { ++counters->connections_refused; }, {}});
}

void pac_server::stop() { listener_->stop(); }

net::awaitable<void> pac_server::serve(std::shared_ptr<pac_server> /*keeps the server alive*/,
                                       std::shared_ptr<http_connection> connection) {
  const request_origin origin{connection->client, connection->stream.secure()};
  auto& stream = connection->stream;
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::empty_body> parser;
    const auto head = co_await connection->read_request_head(buffer, parser);
    if (head.ec || !parser.is_done()) {
      break;  // closed, timed out, malformed, or a body: nothing worth answering
    }
    const auto request = parser.release();
    auto response = handle_request(request, context_, origin);
    stream.expires_after(context_.config.send_timeout);
    auto [write_ec, written] = co_await http::async_write(stream, response, use_tuple);
    if (write_ec || !response.keep_alive()) {
      break;
    }
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace lanrelay::proxyhelper
