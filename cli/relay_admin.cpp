#include "relay_admin.hpp"

#include "command_error.hpp"

#include "lanrelay/base/tls_identity.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

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

// The request and its answer on an established stream (plain or TLS).
template <class Stream>
net::awaitable<void> send_and_read(Stream& stream, const relay_address& relay,
                                   std::string_view method, const std::string& target,
                                   const std::string& token, relay_reply& reply,
                                   boost::system::error_code& failure, std::string& step) {
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, relay.host);
  request.set(http::field::user_agent, "lanrelay");
  if (!token.empty()) {
    request.set(http::field::authorization, "Bearer " + token);
  }
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

// Fills `reply`, or `failure` and `step` (what was being done) when something went wrong.
net::awaitable<void> exchange(const relay_address& relay, std::string_view method,
                              std::string target, std::chrono::seconds timeout,
                              std::string token, relay_reply& reply,
                              boost::system::error_code& failure, std::string& step) {
  auto executor = co_await net::this_coro::executor;
  beast::tcp_stream stream(executor);
  net::ip::tcp::resolver resolver(executor);
  stream.expires_after(timeout);
  const bool secure = !relay.pinned_certificates.empty();
  auto [resolve_ec, endpoints] = co_await resolver.async_resolve(
      relay.host, secure ? relay.https_port : relay.port, use_tuple);
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
  if (!secure) {
    co_await send_and_read(stream, relay, method, target, token, reply, failure, step);
    co_return;
  }
  // Pinned: the certificate is trusted for its fingerprint alone (tls_options in http_client.hpp).
  net::ssl::context context(net::ssl::context::tls_client);
  ::SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  ::SSL_CTX_set_verify(context.native_handle(), SSL_VERIFY_PEER,
                       [](int, X509_STORE_CTX*) { return 1; });
  net::ssl::stream<beast::tcp_stream> tls(std::move(stream), context);
  auto [handshake_ec] = co_await tls.async_handshake(net::ssl::stream_base::client, use_tuple);
  if (handshake_ec) {
    failure = handshake_ec;
    step = "open TLS with";
    co_return;
  }
  const auto presented = peer_certificate_fingerprint(tls.native_handle());
  if (!presented || std::find(relay.pinned_certificates.begin(), relay.pinned_certificates.end(),
                              *presented) == relay.pinned_certificates.end()) {
    throw command_error("lanrelayd at " + relay.host + ":" + relay.https_port +
                        " presented a TLS certificate (sha256 " +
                        (presented ? fingerprint_text(*presented) : std::string("none")) +
                        ") that its catalog signed with the site key does not list: another "
                        "machine may be answering there; nothing was sent");
  }
  co_await send_and_read(tls, relay, method, target, token, reply, failure, step);
}

}  // namespace

public_key read_site_key(const std::string& value) {
  if (auto key = parse_public_key(value)) {
    return *key;
  }
  std::ifstream in(value);
  if (!in) {
    throw command_error("--site-key '" + value +
                        "' is neither a public key (lanrelay-ed25519:...) nor a readable file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r' ||
                              content.back() == ' ')) {
    content.pop_back();
  }
  auto key = parse_public_key(content);
  if (!key) {
    throw command_error("--site-key file " + value + ": " + key.error().message());
  }
  return *key;
}

std::string site_key_setting(const std::string& option) {
  if (!option.empty()) {
    return option;
  }
  const char* env = std::getenv("LANRELAY_SITE_KEY");
  return env != nullptr ? std::string(env) : std::string();
}

void use_site_key(relay_address& relay, const public_key& key, std::chrono::seconds timeout) {
  relay_address plain = relay;
  plain.pinned_certificates.clear();
  const auto reply = relay_request(plain, "GET", "/-/catalog.signed", timeout);
  const std::string where = relay.host + ":" + relay.port;
  if (reply.status != 200) {
    throw command_error("lanrelayd at " + where + " answered " + std::to_string(reply.status) +
                        " for its signed catalog; it needs its site key ([trust] site_key) to "
                        "be reached over pinned HTTPS");
  }
  auto verified = verify_catalog(reply.body, key, std::chrono::system_clock::now());
  if (!verified) {
    throw command_error("the catalog of lanrelayd at " + where + " was refused: " +
                        verified.error().message());
  }
  if (verified->tls_certificates.empty()) {
    throw command_error("lanrelayd at " + where + " lists no TLS certificate in its catalog: "
                        "is [https] enabled there?");
  }
  relay.pinned_certificates = verified->tls_certificates;
}

relay_address relay_for(std::string_view text, const std::string& site_key_option,
                        const std::string& https_port, std::chrono::seconds timeout) {
  auto relay = parse_relay_address(text);
  if (https_port.empty() || https_port.find_first_not_of("0123456789") != std::string::npos) {
    throw command_error("--https-port '" + https_port + "' is not a port number");
  }
  relay.https_port = https_port;
  if (const auto key = site_key_setting(site_key_option); !key.empty()) {
    use_site_key(relay, read_site_key(key), timeout);
  }
  return relay;
}

relay_reply relay_request(const relay_address& relay, std::string_view method,
                          std::string_view target, std::chrono::seconds timeout,
                          std::string_view admin_token) {
  net::io_context ioc;
  relay_reply reply;
  boost::system::error_code failure;
  std::string step;
  net::co_spawn(ioc,
                exchange(relay, method, std::string(target), timeout, std::string(admin_token),
                         reply, failure, step),
                [](std::exception_ptr e) {
                  if (e) {
                    std::rethrow_exception(e);
                  }
                });
  ioc.run();
  if (failure) {
    const auto& port = relay.pinned_certificates.empty() ? relay.port : relay.https_port;
    throw command_error("cannot " + step + " lanrelayd at " + relay.host + ":" + port +
                        ": " + failure.message() +
                        "; is lanrelayd running there (systemctl status lanrelayd)?");
  }
  return reply;
}

std::string admin_token(const std::string& token_file) {
  if (const char* env = std::getenv("LANRELAY_ADMIN_TOKEN"); env != nullptr && env[0] != '\0') {
    return env;
  }
  if (token_file.empty()) {
    return {};
  }
  std::ifstream in(token_file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw command_error("cannot read the admin token from " + token_file);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  return line;
}

}  // namespace lanrelay::cli
