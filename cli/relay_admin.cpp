#include "relay_admin.hpp"

#include "command_error.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace lanrelay::cli {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

relay_address parse_relay_address(std::string_view text) {
  relay_address out;
  if (text.empty()) {
    return out;
  }
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || (close + 1 < text.size() && text[close + 1] != ':')) {
      throw command_error("'" + std::string(text) + "' is not HOST, HOST:PORT or [IPv6]:PORT");
    }
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      out.port = std::string(text.substr(close + 2));
    }
  } else if (const auto colon = text.rfind(':');
             colon != std::string_view::npos && text.find(':') == colon) {
    out.host = std::string(text.substr(0, colon));
    out.port = std::string(text.substr(colon + 1));
  } else {
    out.host = std::string(text);
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    throw command_error("'" + std::string(text) + "' is not HOST, HOST:PORT or [IPv6]:PORT");
  }
  return out;
}

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// Fills `reply`, or `failure` and `step` (what was being done) when something went wrong.
net::awaitable<void> exchange(const relay_address& relay, std::string_view method,
                              std::string target, std::chrono::seconds timeout, relay_reply& reply,
                              boost::system::error_code& failure, std::string& step) {
  auto executor = co_await net::this_coro::executor;
  beast::tcp_stream stream(executor);
  net::ip::tcp::resolver resolver(executor);
  stream.expires_after(timeout);
  auto [resolve_ec, endpoints] = co_await resolver.async_resolve(relay.host, relay.port, use_tuple);
  if (resolve_ec) {
    failure = resolve_ec;
    step = "resolve";
    co_return;
  }
  auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, use_tuple);
  if (connect_ec) {
    failure = connect_ec;
    step = "connect to";
    co_return;
  }
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, relay.host);
  request.set(http::field::user_agent, "lanrelay");
  request.prepare_payload();
  auto [write_ec, written] = co_await http::async_write(stream, request, use_tuple);
  if (write_ec) {
    failure = write_ec;
    step = "send to";
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16U << 20);
  auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (read_ec) {
    failure = read_ec;
    step = "read the answer of";
    co_return;
  }
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
}

}  // namespace

relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout) {
  net::io_context ioc;
  relay_reply reply;
  boost::system::error_code failure;
  std::string step;
  net::co_spawn(ioc, exchange(relay, method, std::string(target), timeout, reply, failure, step),
                [](std::exception_ptr e) {
                  if (e) {
                    std::rethrow_exception(e);
                  }
                });
  ioc.run();
  if (failure) {
    throw command_error("cannot " + step + " lanrelayd at " + relay.host + ":" + relay.port +
                        ": " + failure.message() +
                        "; is lanrelayd running there (systemctl status lanrelayd)?");
  }
  return reply;
}

}  // namespace lanrelay::cli
