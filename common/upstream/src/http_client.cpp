#include "lanrelay/upstream/http_client.hpp"

#include "lanrelay/base/tls_identity.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/grammar/ci_string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace lanrelay {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace beast = boost::beast;
namespace urls = boost::urls;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

constexpr int max_redirects = 5;
// Body bytes handed to the sink per call; also what one read may buffer.
constexpr std::size_t body_chunk_size = 64 * 1024;
// Status line and fields together. Larger than Beast's 8 KiB default: CDNs in front of update
// servers send long cookie and cache headers.
constexpr std::uint32_t response_header_limit = 64 * 1024;
// Interim (1xx) heads skipped before the final response; more means a broken server.
constexpr int max_interim_responses = 8;
constexpr std::string_view user_agent = "lanrelay";

std::string http_message(http_errc value) {
  switch (value) {
    case http_errc::connect_timeout:
      return "could not connect in time (name resolution, TCP connect, proxy tunnel and TLS "
             "handshake); check that the server is up and reachable through firewalls";
    case http_errc::head_timeout:
      return "the server accepted the connection but sent no response in time; it may be "
             "overloaded";
    case http_errc::body_timeout:
      return "the download stalled: no data arrived within the idle timeout; it can be resumed";
    case http_errc::invalid_url:
      return "the URL has no usable host; use http://host[:port]/path or "
             "https://host[:port]/path";
    case http_errc::unsupported_scheme:
      return "unsupported URL scheme: use http:// or https:// (and an http:// proxy)";
    case http_errc::protocol_error:
      return "the server sent a malformed HTTP response (status line, header, chunk framing or "
             "Content-Range)";
    case http_errc::incomplete_response:
      return "the server closed the connection before the response was complete; it can be "
             "resumed";
    case http_errc::range_mismatch:
      return "the server answered a resume request with another byte range than the one asked "
             "for";
    case http_errc::too_large:
      return "the item is larger than the allowed maximum size; the download was stopped";
    case http_errc::redirect_loop:
      return "more than 5 redirects; the server's redirects probably loop";
    case http_errc::bad_redirect:
      return "the server sent a redirect without a valid Location";
    case http_errc::insecure_redirect:
      return "refused a redirect from https:// to plain http://; configure the https:// URL "
             "the server should use";
    case http_errc::proxy_refused:
      return "the proxy refused to open a tunnel (CONNECT); check the proxy address and "
             "credentials";
    case http_errc::certificate_untrusted:
      return "the server's TLS certificate is not trusted: it does not chain to a CA of the "
             "system store (or of the configured CA file), or it is expired";
    case http_errc::certificate_name_mismatch:
      return "the server's TLS certificate is for another host name or address; check the "
             "URL's host";
    case http_errc::bad_ca_file:
      return "the CA file cannot be read or holds no PEM certificate; check its path and "
             "permissions";
    case http_errc::proxy_auth_failed:
      return "the proxy rejected the credentials (or wants some): check the user name and "
             "password in the proxy URL (scheme://user:password@host:port)";
    case http_errc::proxy_auth_unsupported:
      return "the proxy accepts none of the offered authentication methods (this client logs in "
             "to HTTP proxies with Basic only; SOCKS5: put user:password in the proxy URL if it "
             "requires a login)";
    case http_errc::proxy_protocol_error:
      return "the proxy broke the SOCKS5 protocol; check that the proxy URL names a SOCKS5 "
             "proxy";
    case http_errc::socks_not_allowed:
      return "the SOCKS5 proxy's rules do not allow this connection; ask its administrator";
    case http_errc::socks_host_unreachable:
      return "the SOCKS5 proxy cannot reach the server (name not resolved, host or network "
             "unreachable)";
    case http_errc::socks_connection_refused:
      return "the server refused the SOCKS5 proxy's connection; check the URL's port";
    case http_errc::socks_failed:
      return "the SOCKS5 proxy could not open the connection (general failure)";
    case http_errc::certificate_not_pinned:
      return "the server's TLS certificate is not the one pinned for it (its SHA-256 "
             "fingerprint is not among those the relay's signed catalog lists): another "
             "machine may be answering at this address, or the relay's certificate changed; "
             "compare with `lanrelay key show` on the relay";
  }
  return "unknown lanrelay.http error " + std::to_string(static_cast<int>(value));
}

const boost::system::error_category& beast_http_category() {
  return http::make_error_code(http::error::end_of_stream).category();
}

// Maps a transport or parser failure to what the caller can act on. `timeout` says which deadline
// was running.
error_code classify(const error_code& ec, http_errc timeout) {
  if (ec == beast::error::timeout) {
    return timeout;
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == net::error::eof || ec == net::ssl::error::stream_truncated) {
    return http_errc::incomplete_response;
  }
  if (ec.category() == beast_http_category()) {
    spdlog::debug("event=http_response_rejected error=\"{}\"", ec.message());
    return http_errc::protocol_error;
  }
  return ec;
}

error_code last_ssl_error() {
  return {static_cast<int>(::ERR_get_error()), net::error::get_ssl_category()};
}

std::string endpoint_text(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) {
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool has_control_characters(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(),
                                   [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// The parts of an http:// or https:// URL the client uses.
struct target {
  bool tls = false;
  std::string host;  // decoded; an IPv6 address without brackets
  bool host_is_address = false;
  std::uint16_t port = 0;
  std::string authority;  // Host header: host and explicit port as written in the URL
  std::string authority_with_port;  // CONNECT target: always with the port
  std::string origin_form;          // path and query
};

result<target> parse_authority(urls::url_view url, target t);

result<target> parse_target(urls::url_view url) {
  target t;
  switch (url.scheme_id()) {
    case urls::scheme::http:
      t.tls = false;
      break;
    case urls::scheme::https:
      t.tls = true;
      break;
    default:
      return http_errc::unsupported_scheme;
  }
  return parse_authority(url, t);
}

// Host, port and origin form of `url`, whose scheme the caller has checked; `t.tls` and, when the
// URL has no port, `t.port` are already set.
result<target> parse_authority(urls::url_view url, target t) {
  if (!url.has_authority() || url.encoded_host().empty()) {
    return http_errc::invalid_url;
  }
  switch (url.host_type()) {
    case urls::host_type::ipv4:
    case urls::host_type::ipv6:
      t.host_is_address = true;
      break;
    case urls::host_type::name:
      break;
    default:
      return http_errc::invalid_url;
  }
  t.host = url.host_address();
  if (has_control_characters(t.host)) {
    return http_errc::invalid_url;
  }
  const bool explicit_port = url.has_port() && !url.port().empty();
  if (explicit_port) {
    if (url.port_number() == 0) {
      return http_errc::invalid_url;
    }
    t.port = url.port_number();
  } else if (t.port == 0) {
    t.port = t.tls ? 443 : 80;
  }
  const std::string host_text(url.encoded_host());
  t.authority = explicit_port ? host_text + ":" + std::to_string(t.port) : host_text;
  t.authority_with_port = host_text + ":" + std::to_string(t.port);
  t.origin_form = url.encoded_target();
  if (t.origin_form.empty() || t.origin_form.front() != '/') {
    t.origin_form.insert(0, "/");
  }
  return t;
}

std::string absolute_form(const target& t) {
  return (t.tls ? "https://" : "http://") + t.authority + t.origin_form;
}

std::string basic_credentials(urls::url_view proxy) {
  if (!proxy.has_userinfo()) {
    return {};
  }
  const std::string plain = proxy.user() + ":" + proxy.password();
  std::string encoded(4 * ((plain.size() + 2) / 3) + 1, '\0');
  const int length =
      ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size()));
  encoded.resize(static_cast<std::size_t>(length));
  return "Basic " + encoded;
}

result<urls::url> resolve_location(const urls::url& base, std::string_view location) {
  if (location.empty()) {
    return http_errc::bad_redirect;
  }
  auto reference = urls::parse_uri_reference(location);
  if (!reference) {
    return http_errc::bad_redirect;
  }
  urls::url next;
  if (!urls::resolve(base, *reference, next)) {
    return http_errc::bad_redirect;
  }
  next.remove_fragment();
  return next;
}

enum class proxy_protocol { http, socks5 };

struct proxy_endpoint {
  proxy_protocol protocol = proxy_protocol::http;
  target hop;
  std::string authorization;  // http: "Basic ...", or empty
  bool has_credentials = false;  // socks5: authenticate with user and password (RFC 1929)
  std::string user;
  std::string password;
};

constexpr std::uint16_t default_socks_port = 1080;
// RFC 1929 and RFC 1928 carry these in one length byte.
constexpr std::size_t max_socks_field = 255;

result<proxy_endpoint> parse_proxy(const proxy_settings& settings) {
  const urls::url_view url = settings.proxy;
  proxy_endpoint p;
  const auto scheme = url.scheme();
  if (urls::grammar::ci_is_equal(scheme, "http")) {
    if (settings.auth != proxy_auth_scheme::basic) {
      return http_errc::proxy_auth_unsupported;
    }
    auto hop = parse_target(url);
    if (!hop) {
      return hop.error();
    }
    p.hop = std::move(*hop);
    p.authorization = basic_credentials(url);
    return p;
  }
  if (!urls::grammar::ci_is_equal(scheme, "socks5") &&
      !urls::grammar::ci_is_equal(scheme, "socks5h")) {
    return http_errc::unsupported_scheme;
  }
  target t;
  t.port = default_socks_port;
  auto hop = parse_authority(url, t);
  if (!hop) {
    return hop.error();
  }
  p.protocol = proxy_protocol::socks5;
  p.hop = std::move(*hop);
  if (url.has_userinfo()) {
    p.has_credentials = true;
    p.user = url.user();
    p.password = url.password();
    if (p.user.empty() || p.user.size() > max_socks_field ||
        p.password.size() > max_socks_field) {
      return http_errc::invalid_url;
    }
  }
  return p;
}

// How one hop reaches its target.
struct route {
  const proxy_endpoint* proxy = nullptr;   // when set, connect here instead of to the target
  std::optional<net::ip::address> pinned;  // connect to this instead of resolving the target
};

struct exchange_outcome {
  fetch_response response;
  std::string location;  // of a redirect
};

// Resolves with a deadline. The system resolver runs on a background thread and cannot be
// interrupted: on timeout its result is abandoned, not awaited. Must run on a strand, which the
// completion shares with the waiting coroutine.
net::awaitable<result<tcp::resolver::results_type>> resolve(
    const std::string& host, std::uint16_t port, std::chrono::steady_clock::time_point deadline) {
  struct resolution {
    explicit resolution(const net::any_io_executor& executor)
        : resolver(executor), timer(executor) {}
    tcp::resolver resolver;
    net::steady_timer timer;
    bool done = false;
    error_code ec;
    tcp::resolver::results_type endpoints;
  };
  auto state = std::make_shared<resolution>(co_await net::this_coro::executor);
  state->timer.expires_at(deadline);
  state->resolver.async_resolve(
      host, std::to_string(port),
      [state](const error_code& ec, tcp::resolver::results_type endpoints) {
        state->done = true;
        state->ec = ec;
        state->endpoints = std::move(endpoints);
        state->timer.cancel();
      });
  co_await state->timer.async_wait(use_tuple);
  if (!state->done) {
    state->resolver.cancel();
    co_return http_errc::connect_timeout;
  }
  if (state->ec) {
    co_return state->ec;
  }
  co_return state->endpoints;
}

// Connects `stream` to the next hop and leaves the connect deadline running on it.
net::awaitable<result<tcp::endpoint>> connect(beast::tcp_stream& stream, const target& hop,
                                              const std::optional<net::ip::address>& pinned,
                                              std::chrono::steady_clock::time_point deadline) {
  if (pinned) {
    const tcp::endpoint endpoint(*pinned, hop.port);
    stream.expires_at(deadline);
    auto [ec] = co_await stream.async_connect(endpoint, use_tuple);
    if (ec) {
      co_return classify(ec, http_errc::connect_timeout);
    }
    co_return endpoint;
  }
  auto endpoints = co_await resolve(hop.host, hop.port, deadline);
  if (!endpoints) {
    co_return endpoints.error();
  }
  stream.expires_at(deadline);
  auto [ec, endpoint] = co_await stream.async_connect(*endpoints, use_tuple);
  if (ec) {
    co_return classify(ec, http_errc::connect_timeout);
  }
  co_return endpoint;
}

// Asks the proxy on `stream` for a tunnel to `t`. Runs under the connect deadline.
net::awaitable<error_code> open_http_tunnel(beast::tcp_stream& stream, const target& t,
                                            const std::string& proxy_authorization) {
  http::request<http::empty_body> request{http::verb::connect, t.authority_with_port, 11};
  request.set(http::field::host, t.authority_with_port);
  request.set(http::field::user_agent, user_agent);
  if (!proxy_authorization.empty()) {
    request.set(http::field::proxy_authorization, proxy_authorization);
  }
  auto [write_ec, written] = co_await http::async_write(stream, request, use_tuple);
  if (write_ec) {
    co_return classify(write_ec, http_errc::connect_timeout);
  }
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(response_header_limit);
  parser.skip(true);  // a 2xx answer to CONNECT has no body; other answers are not read further
  auto [read_ec, read] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
  if (read_ec) {
    co_return classify(read_ec, http_errc::connect_timeout);
  }
  const unsigned status = parser.get().result_int();
  if (status / 100 != 2) {
    spdlog::debug("event=proxy_connect_refused target={} status={}", t.authority_with_port, status);
    // Only the proxy answers CONNECT: 401 (tinyproxy's answer) means the same as 407 here.
    co_return status == 407 || status == 401 ? http_errc::proxy_auth_failed
                                             : http_errc::proxy_refused;
  }
  if (buffer.size() != 0) {
    // The target speaks only after our ClientHello; anything here came from the proxy.
    co_return http_errc::protocol_error;
  }
  co_return error_code{};
}

net::awaitable<error_code> socks_write(beast::tcp_stream& stream,
                                       const std::vector<std::uint8_t>& bytes) {
  auto [ec, written] = co_await net::async_write(stream, net::buffer(bytes), use_tuple);
  co_return ec ? classify(ec, http_errc::connect_timeout) : error_code{};
}

// Reads exactly `into.size()` bytes. A proxy that hangs up mid-handshake broke the protocol.
net::awaitable<error_code> socks_read(beast::tcp_stream& stream, std::span<std::uint8_t> into) {
  auto [ec, read] =
      co_await net::async_read(stream, net::buffer(into.data(), into.size()), use_tuple);
  if (ec == net::error::eof) {
    co_return http_errc::proxy_protocol_error;
  }
  co_return ec ? classify(ec, http_errc::connect_timeout) : error_code{};
}

error_code socks_reply_error(std::uint8_t reply) {
  switch (reply) {
    case 0x02:
      return http_errc::socks_not_allowed;
    case 0x03:
    case 0x04:
    case 0x06:
      return http_errc::socks_host_unreachable;
    case 0x05:
      return http_errc::socks_connection_refused;
    default:
      return http_errc::socks_failed;
  }
}

// Asks the SOCKS5 proxy on `stream` for a connection to `t` (RFC 1928), authenticating with user
// name and password (RFC 1929) when the proxy URL has them. Host names go to the proxy unresolved.
// Runs under the connect deadline.
net::awaitable<error_code> open_socks_tunnel(beast::tcp_stream& stream, const target& t,
                                             const proxy_endpoint& proxy) {
  constexpr std::uint8_t version = 0x05;
  constexpr std::uint8_t no_authentication = 0x00;
  constexpr std::uint8_t username_password = 0x02;
  constexpr std::uint8_t no_acceptable_method = 0xff;
  std::vector<std::uint8_t> greeting{version, 1, no_authentication};
  if (proxy.has_credentials) {
    greeting = {version, 2, no_authentication, username_password};
  }
  if (auto ec = co_await socks_write(stream, greeting); ec) {
    co_return ec;
  }
  std::array<std::uint8_t, 2> choice{};
  if (auto ec = co_await socks_read(stream, choice); ec) {
    co_return ec;
  }
  if (choice[0] != version) {
    co_return http_errc::proxy_protocol_error;
  }
  if (choice[1] == no_acceptable_method) {
    co_return http_errc::proxy_auth_unsupported;
  }
  if (choice[1] == username_password && proxy.has_credentials) {
    std::vector<std::uint8_t> login{0x01, static_cast<std::uint8_t>(proxy.user.size())};
    login.insert(login.end(), proxy.user.begin(), proxy.user.end());
    login.push_back(static_cast<std::uint8_t>(proxy.password.size()));
    login.insert(login.end(), proxy.password.begin(), proxy.password.end());
    auto ec = co_await socks_write(stream, login);
    std::fill(login.begin(), login.end(), std::uint8_t{0});
    if (ec) {
      co_return ec;
    }
    std::array<std::uint8_t, 2> verdict{};
    if (auto read_ec = co_await socks_read(stream, verdict); read_ec) {
      co_return read_ec;
    }
    if (verdict[0] != 0x01) {
      co_return http_errc::proxy_protocol_error;
    }
    if (verdict[1] != 0x00) {
      co_return http_errc::proxy_auth_failed;
    }
  } else if (choice[1] != no_authentication) {
    co_return http_errc::proxy_protocol_error;  // a method we did not offer
  }

  constexpr std::uint8_t connect_command = 0x01;
  constexpr std::uint8_t ipv4 = 0x01;
  constexpr std::uint8_t domain_name = 0x03;
  constexpr std::uint8_t ipv6 = 0x04;
  std::vector<std::uint8_t> request{version, connect_command, 0x00};
  if (t.host_is_address) {
    const auto address = net::ip::make_address(t.host);
    if (address.is_v4()) {
      request.push_back(ipv4);
      const auto bytes = address.to_v4().to_bytes();
      request.insert(request.end(), bytes.begin(), bytes.end());
    } else {
      request.push_back(ipv6);
      const auto bytes = address.to_v6().to_bytes();
      request.insert(request.end(), bytes.begin(), bytes.end());
    }
  } else {
    if (t.host.size() > max_socks_field) {
      co_return http_errc::invalid_url;
    }
    request.push_back(domain_name);
    request.push_back(static_cast<std::uint8_t>(t.host.size()));
    request.insert(request.end(), t.host.begin(), t.host.end());
  }
  request.push_back(static_cast<std::uint8_t>(t.port >> 8));
  request.push_back(static_cast<std::uint8_t>(t.port & 0xff));
  if (auto ec = co_await socks_write(stream, request); ec) {
    co_return ec;
  }

  // VER REP RSV ATYP, then the bound address (ignored) and port.
  std::array<std::uint8_t, 4> reply{};
  if (auto ec = co_await socks_read(stream, reply); ec) {
    co_return ec;
  }
  if (reply[0] != version) {
    co_return http_errc::proxy_protocol_error;
  }
  if (reply[1] != 0x00) {
    spdlog::debug("event=socks_connect_refused target={} reply={}",
                  t.authority_with_port, reply[1]);
    co_return socks_reply_error(reply[1]);
  }
  std::size_t bound_length = 0;
  switch (reply[3]) {
    case ipv4:
      bound_length = 4;
      break;
    case ipv6:
      bound_length = 16;
      break;
    case domain_name: {
      std::array<std::uint8_t, 1> length{};
      if (auto ec = co_await socks_read(stream, length); ec) {
        co_return ec;
      }
      bound_length = length[0];
      break;
    }
    default:
      co_return http_errc::proxy_protocol_error;
  }
  std::vector<std::uint8_t> bound(bound_length + 2);
  co_return co_await socks_read(stream, bound);
}

// A pinned handshake: any certificate completes it, then only the pinned ones are accepted.
net::awaitable<error_code> pinned_handshake(net::ssl::stream<beast::tcp_stream>& stream,
                                            const target& t, const tls_options& options) {
  SSL* ssl = stream.native_handle();
  if (!t.host_is_address && ::SSL_set_tlsext_host_name(ssl, t.host.c_str()) != 1) {
    co_return last_ssl_error();
  }
  auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::client, use_tuple);
  if (ec) {
    co_return classify(ec, http_errc::connect_timeout);
  }
  const auto presented = peer_certificate_fingerprint(ssl);
  if (!presented || std::find(options.pinned_certificates.begin(),
                              options.pinned_certificates.end(),
                              *presented) == options.pinned_certificates.end()) {
    spdlog::debug("event=certificate_not_pinned peer={} sha256={}", t.authority_with_port,
                  presented ? to_hex(*presented) : std::string("none"));
    co_return http_errc::certificate_not_pinned;
  }
  co_return error_code{};
}

net::awaitable<error_code> handshake(net::ssl::stream<beast::tcp_stream>& stream, const target& t,
                                     const tls_options& options) {
  if (!options.pinned_certificates.empty()) {
    co_return co_await pinned_handshake(stream, t, options);
  }
  SSL* ssl = stream.native_handle();
  if (t.host_is_address) {
    if (::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl), t.host.c_str()) != 1) {
      co_return last_ssl_error();
    }
  } else {
    // SNI carries names only (RFC 6066 §3), never addresses.
    if (::SSL_set_tlsext_host_name(ssl, t.host.c_str()) != 1) {
      co_return last_ssl_error();
    }
    ::SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (::SSL_set1_host(ssl, t.host.c_str()) != 1) {
      co_return last_ssl_error();
    }
  }
  auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::client, use_tuple);
  if (!ec) {
    co_return error_code{};
  }
  const long verdict = ::SSL_get_verify_result(ssl);
  if (verdict != X509_V_OK) {
    spdlog::debug("event=certificate_rejected peer={} error=\"{}\"", t.authority_with_port,
                  ::X509_verify_cert_error_string(verdict));
    if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      co_return http_errc::certificate_name_mismatch;
    }
    co_return http_errc::certificate_untrusted;
  }
  co_return classify(ec, http_errc::connect_timeout);
}

error_code configure_tls(net::ssl::context& context, const tls_options& options) {
  if (::SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION) != 1) {
    return last_ssl_error();
  }
  if (!options.pinned_certificates.empty()) {
    // The chain is not what is trusted here: the handshake accepts any certificate and
    // pinned_handshake then compares it with the pins.
    ::SSL_CTX_set_verify(context.native_handle(), SSL_VERIFY_PEER,
                         [](int, X509_STORE_CTX*) { return 1; });
    return {};
  }
  error_code ec;
  context.set_verify_mode(net::ssl::verify_peer, ec);
  if (ec) {
    return ec;
  }
  if (options.ca_file) {
    context.load_verify_file(options.ca_file->string(), ec);
    if (ec) {
      spdlog::debug("event=ca_file_error path={} error=\"{}\"", options.ca_file->string(),
                    ec.message());
      return http_errc::bad_ca_file;
    }
    return {};
  }
  context.set_default_verify_paths(ec);
  return ec;
}

// Under a rate limit, reads are small enough (about a tenth of a second of the slowest limit,
// at least 4 KiB) that the transfer flows evenly instead of in bursts and long pauses.
std::size_t chunk_size_for(const std::vector<std::shared_ptr<rate_limiter>>& limits) {
  std::uint64_t size = body_chunk_size;
  for (const auto& limit : limits) {
    if (limit) {
      size = std::min(size, std::max<std::uint64_t>(limit->bytes_per_second() / 10, 4096));
    }
  }
  return static_cast<std::size_t>(size);
}

// Accounts `bytes` with every limiter and waits as long as the strictest one asks. The wait is
// outside the idle-body deadline, which restarts at the next read.
net::awaitable<error_code> pace(const std::vector<std::shared_ptr<rate_limiter>>& limits,
                                std::size_t bytes) {
  std::chrono::nanoseconds wait{0};
  for (const auto& limit : limits) {
    if (limit) {
      wait = std::max(wait, limit->take(bytes));
    }
  }
  if (wait <= std::chrono::nanoseconds::zero()) {
    co_return error_code{};
  }
  net::steady_timer timer(co_await net::this_coro::executor, wait);
  auto [ec] = co_await timer.async_wait(use_tuple);
  co_return ec;
}

beast::tcp_stream& transport_of(beast::tcp_stream& stream) { return stream; }
beast::tcp_stream& transport_of(net::ssl::stream<beast::tcp_stream>& stream) {
  return stream.next_layer();
}

// Sends the GET and reads the response on an established connection (plain, or TLS after the
// handshake). The body is read only for 200 and 206.
template <class Stream>
net::awaitable<result<exchange_outcome>> exchange(Stream& stream, const fetch_request& request,
                                                  const target& t, const route& via,
                                                  body_sink& sink) {
  beast::tcp_stream& transport = transport_of(stream);
  const bool absolute = via.proxy != nullptr && via.proxy->protocol == proxy_protocol::http && !t.tls;

  http::request<http::empty_body> get{http::verb::get, absolute ? absolute_form(t) : t.origin_form,
                                      11};
  get.set(http::field::host, t.authority);
  get.set(http::field::user_agent, user_agent);
  get.set(http::field::accept_encoding, "identity");
  get.set(http::field::connection, "close");
  if (request.offset > 0) {
    get.set(http::field::range, "bytes=" + std::to_string(request.offset) + "-");
  }
  if (request.if_none_match) {
    get.set(http::field::if_none_match, *request.if_none_match);
  }
  if (request.if_modified_since) {
    get.set(http::field::if_modified_since, *request.if_modified_since);
  }
  if (absolute && !via.proxy->authorization.empty()) {
    get.set(http::field::proxy_authorization, via.proxy->authorization);
  }

  transport.expires_after(request.timeouts.response_head);
  auto [write_ec, written] = co_await http::async_write(stream, get, use_tuple);
  if (write_ec) {
    co_return classify(write_ec, http_errc::head_timeout);
  }

  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::buffer_body>> parser;
  for (int interim = 0;; ++interim) {
    parser.emplace();
    parser->header_limit(response_header_limit);
    parser->body_limit(boost::none);  // max_bytes is enforced below, on the item's size
    auto [ec, read] = co_await http::async_read_header(stream, buffer, *parser, use_tuple);
    if (ec) {
      co_return classify(ec, http_errc::head_timeout);
    }
    const unsigned status = parser->get().result_int();
    if (status >= 200 || status == 101) {
      break;
    }
    if (interim == max_interim_responses) {
      co_return http_errc::protocol_error;
    }
  }

  const auto& head = parser->get();
  exchange_outcome outcome;
  fetch_response& response = outcome.response;
  response.status = head.result_int();
  if (const auto length = parser->content_length()) {
    response.content_length = *length;
  }
  response.etag = std::string(head[http::field::etag]);
  response.last_modified = std::string(head[http::field::last_modified]);
  if (const auto it = head.find(http::field::retry_after); it != head.end()) {
    response.retry_after =
        detail::parse_retry_after(it->value(), std::chrono::system_clock::now());
  }

  if (absolute && response.status == 407) {
    co_return http_errc::proxy_auth_failed;
  }
  if (is_redirect(response.status)) {
    outcome.location = std::string(head[http::field::location]);
    co_return outcome;
  }
  if (response.status == 416) {
    if (const auto range = detail::parse_content_range(head[http::field::content_range])) {
      response.total_size = range->complete_length;
    }
    co_return outcome;
  }
  if (response.status != 200 && response.status != 206) {
    co_return outcome;
  }

  // Position in the item of the next body byte, and bytes of a 200 the sink must not see.
  std::uint64_t position = 0;
  std::uint64_t skip = 0;
  std::optional<std::uint64_t> expected_body;
  if (response.status == 206) {
    const auto range = detail::parse_content_range(head[http::field::content_range]);
    if (!range || !range->has_range) {
      // Includes multipart/byteranges, which a single open-ended range never asks for.
      co_return http_errc::protocol_error;
    }
    if (range->first != request.offset) {
      co_return http_errc::range_mismatch;
    }
    expected_body = range->last - range->first + 1;
    if (response.content_length && *response.content_length != *expected_body) {
      co_return http_errc::protocol_error;
    }
    response.total_size = range->complete_length;
    position = request.offset;
  } else {
    response.total_size = response.content_length;
    response.range_honoured = request.offset == 0;
    skip = request.offset;
  }
  // A 206 with "/*" still announces where its range ends.
  const std::optional<std::uint64_t> announced_size =
      response.total_size ? response.total_size
      : expected_body     ? std::optional<std::uint64_t>(request.offset + *expected_body)
                          : std::nullopt;
  if (request.max_bytes && announced_size && *announced_size > *request.max_bytes) {
    co_return http_errc::too_large;
  }

  std::vector<std::byte> chunk(chunk_size_for(request.rate_limits));
  // Beast reads as much as the buffer's free capacity (at least 512 bytes); after a small
  // response head that would be a few hundred bytes per read system call.
  buffer.reserve(chunk.size());
  std::uint64_t received = 0;
  while (!parser->is_done()) {
    auto& body = parser->get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    transport.expires_after(request.timeouts.idle_body);
    auto [ec, read] = co_await http::async_read_some(stream, buffer, *parser, use_tuple);
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    if (ec) {
      co_return classify(ec, http_errc::body_timeout);
    }
    const std::size_t got = chunk.size() - parser->get().body().size;
    received += got;
    position += got;
    if (request.max_bytes && position > *request.max_bytes) {
      co_return http_errc::too_large;
    }
    std::span<const std::byte> data(chunk.data(), got);
    if (skip > 0) {
      const auto dropped = static_cast<std::size_t>(std::min<std::uint64_t>(skip, got));
      skip -= dropped;
      data = data.subspan(dropped);
    }
    if (!data.empty()) {
      if (auto sunk = sink(data); !sunk) {
        co_return sunk.error();
      }
      response.body_bytes += data.size();
    }
    if (auto paced = co_await pace(request.rate_limits, got); paced) {
      co_return paced;
    }
  }
  if (expected_body && received != *expected_body) {
    co_return http_errc::protocol_error;
  }
  co_return outcome;
}

// One request on a new connection: connect (through the proxy when set), tunnel and handshake
// for https://, then exchange.
net::awaitable<result<exchange_outcome>> fetch_once(const fetch_request& request, const target& t,
                                                    const route& via,
                                                    net::ssl::context* tls_context,
                                                    body_sink& sink) {
  const auto deadline = std::chrono::steady_clock::now() + request.timeouts.connect;
  beast::tcp_stream transport(co_await net::this_coro::executor);
  const target& hop = via.proxy != nullptr ? via.proxy->hop : t;
  auto peer = co_await connect(transport, hop, via.pinned, deadline);
  if (!peer) {
    co_return peer.error();
  }
  if (via.proxy != nullptr && via.proxy->protocol == proxy_protocol::socks5) {
    if (auto ec = co_await open_socks_tunnel(transport, t, *via.proxy); ec) {
      co_return ec;
    }
  }

  result<exchange_outcome> outcome;
  if (!t.tls) {
    outcome = co_await exchange(transport, request, t, via, sink);
  } else {
    if (via.proxy != nullptr && via.proxy->protocol == proxy_protocol::http) {
      if (auto ec = co_await open_http_tunnel(transport, t, via.proxy->authorization); ec) {
        co_return ec;
      }
    }
    net::ssl::stream<beast::tcp_stream> secure(std::move(transport), *tls_context);
    if (auto ec = co_await handshake(secure, t, request.tls); ec) {
      co_return ec;
    }
    outcome = co_await exchange(secure, request, t, via, sink);
  }
  if (outcome) {
    outcome->response.peer = endpoint_text(*peer);
  }
  co_return outcome;
}

// The caller's header values go into the request as they are; a line break would inject fields.
bool header_values_are_safe(const fetch_request& request) {
  const auto safe = [](const std::optional<std::string>& value) {
    return !value || !has_control_characters(*value);
  };
  return safe(request.if_none_match) && safe(request.if_modified_since);
}

net::awaitable<result<fetch_response>> fetch_following_redirects(fetch_request request,
                                                                 body_sink sink) {
  if (!header_values_are_safe(request)) {
    co_return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  }
  const auto original = parse_target(request.url);
  if (!original) {
    co_return original.error();
  }
  std::optional<proxy_endpoint> proxy;
  if (request.proxy) {
    auto parsed = parse_proxy(*request.proxy);
    if (!parsed) {
      co_return parsed.error();
    }
    proxy = std::move(*parsed);
  }

  std::optional<net::ssl::context> tls_context;
  urls::url url = request.url;
  url.remove_fragment();
  for (int redirects = 0;; ++redirects) {
    const auto t = parse_target(url);
    if (!t) {
      co_return t.error();
    }
    if (t->tls && !tls_context) {
      tls_context.emplace(net::ssl::context::tls_client);
      if (auto ec = configure_tls(*tls_context, request.tls); ec) {
        co_return ec;
      }
    }
    route via;
    if (proxy) {
      via.proxy = &*proxy;
      via.pinned = request.proxy->address;
    } else if (request.host_address && t->host == original->host) {
      via.pinned = request.host_address;
    }
    auto outcome =
        co_await fetch_once(request, *t, via, tls_context ? &*tls_context : nullptr, sink);
    if (!outcome) {
      co_return outcome.error();
    }
    if (!is_redirect(outcome->response.status)) {
      outcome->response.final_url = std::move(url);
      co_return std::move(outcome->response);
    }
    if (redirects == max_redirects) {
      co_return http_errc::redirect_loop;
    }
    auto next = resolve_location(url, outcome->location);
    if (!next) {
      co_return next.error();
    }
    if (t->tls && next->scheme_id() == urls::scheme::http) {
      co_return http_errc::insecure_redirect;
    }
    spdlog::debug("event=http_redirect status={} from={} to={}", outcome->response.status, url.buffer(),
                  next->buffer());
    url = std::move(*next);
  }
}

// Takes its arguments by value so that they live in the coroutine frame.
net::awaitable<result<fetch_response>> fetch_on_own_strand(fetch_request request, body_sink sink) {
  auto strand = net::make_strand(co_await net::this_coro::executor);
  co_return co_await net::co_spawn(
      strand, fetch_following_redirects(std::move(request), std::move(sink)), net::use_awaitable);
}

}  // namespace

rate_limiter::rate_limiter(std::uint64_t bytes_per_second, std::uint64_t burst)
    : rate_(std::max<std::uint64_t>(bytes_per_second, 1)),
      burst_(static_cast<double>(burst > 0 ? burst
                                           : std::max<std::uint64_t>(rate_ / 10, 16 * 1024))),
      tokens_(burst_),
      last_(clock::now()) {}

std::chrono::nanoseconds rate_limiter::take(std::uint64_t bytes) {
  return take(bytes, clock::now());
}

std::chrono::nanoseconds rate_limiter::take(std::uint64_t bytes, clock::time_point now) {
  const std::lock_guard lock(mutex_);
  const std::chrono::duration<double> elapsed = std::max(now - last_, clock::duration::zero());
  last_ = std::max(last_, now);
  tokens_ = std::min(burst_, tokens_ + elapsed.count() * static_cast<double>(rate_));
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) {
    return std::chrono::nanoseconds::zero();
  }
  const std::chrono::duration<double> debt(-tokens_ / static_cast<double>(rate_));
  return std::chrono::duration_cast<std::chrono::nanoseconds>(debt);
}

const boost::system::error_category& http_category() noexcept {
  static const error_category_of<http_errc> category(
      "lanrelay.http", 0x6c616e72656c6168ULL, http_message);
  return category;
}

std::string_view to_string(proxy_auth_scheme scheme) noexcept {
  switch (scheme) {
    case proxy_auth_scheme::basic:
      return "basic";
    case proxy_auth_scheme::digest:
      return "digest";
    case proxy_auth_scheme::ntlm:
      return "ntlm";
    case proxy_auth_scheme::negotiate:
      return "negotiate";
  }
  return "basic";
}

std::optional<proxy_auth_scheme> parse_proxy_auth_scheme(std::string_view text) noexcept {
  for (const auto scheme : {proxy_auth_scheme::basic, proxy_auth_scheme::digest,
                            proxy_auth_scheme::ntlm, proxy_auth_scheme::negotiate}) {
    if (urls::grammar::ci_is_equal(text, to_string(scheme))) {
      return scheme;
    }
  }
  return std::nullopt;
}

bool is_timeout(const boost::system::error_code& ec) noexcept {
  return ec == http_errc::connect_timeout || ec == http_errc::head_timeout ||
         ec == http_errc::body_timeout;
}

net::awaitable<result<fetch_response>> http_fetch(const fetch_request& request, body_sink sink) {
  return fetch_on_own_strand(request, std::move(sink));
}

result<fetch_response> http_fetch_blocking(const fetch_request& request, body_sink sink) {
  net::io_context ioc;
  std::optional<result<fetch_response>> outcome;
  std::exception_ptr failure;
  net::co_spawn(ioc, http_fetch(request, std::move(sink)),
                [&](std::exception_ptr e, result<fetch_response> r) {
                  failure = e;
                  outcome.emplace(std::move(r));
                });
  ioc.run();
  if (failure) {
    std::rethrow_exception(failure);
  }
  return std::move(*outcome);
}

namespace detail {

std::optional<content_range> parse_content_range(std::string_view value) noexcept {
  constexpr std::string_view unit = "bytes ";
  if (value.size() < unit.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < unit.size(); ++i) {
    const char c = value[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != unit[i]) {
      return std::nullopt;
    }
  }
  value.remove_prefix(unit.size());
  const auto slash = value.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const auto range_part = value.substr(0, slash);
  const auto length_part = value.substr(slash + 1);

  content_range out;
  if (length_part != "*") {
    out.complete_length = parse_decimal(length_part);
    if (!out.complete_length) {
      return std::nullopt;
    }
  }
  if (range_part == "*") {
    if (!out.complete_length) {
      return std::nullopt;
    }
    return out;
  }
  const auto dash = range_part.find('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  const auto first = parse_decimal(range_part.substr(0, dash));
  const auto last = parse_decimal(range_part.substr(dash + 1));
  if (!first || !last || *first > *last ||
      (out.complete_length && *last >= *out.complete_length)) {
    return std::nullopt;
  }
  out.has_range = true;
  out.first = *first;
  out.last = *last;
  return out;
}

// At most a day: a server's huge number or far-future date cannot overflow a caller's arithmetic
// (the delay is added to clocks and made milliseconds).
constexpr std::chrono::seconds max_retry_after{24 * 3600};

std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  if (!value.empty() && std::all_of(value.begin(), value.end(),
                                    [](char c) { return c >= '0' && c <= '9'; })) {
    // delay-seconds; more digits than 64 bits hold is "very long" too.
    constexpr auto most = static_cast<std::uint64_t>(max_retry_after.count());
    const auto delay = parse_decimal(value).value_or(most);
    return std::chrono::seconds(static_cast<std::int64_t>(std::min(delay, most)));
  }
  // IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". The obsolete forms are not accepted.
  if (value.size() != 29 || value.substr(3, 2) != ", " || value[7] != ' ' || value[11] != ' ' ||
      value[16] != ' ' || value[19] != ':' || value[22] != ':' || value.substr(25) != " GMT") {
    return std::nullopt;
  }
  constexpr std::array<std::string_view, 7> day_names{"Mon", "Tue", "Wed", "Thu",
                                                      "Fri", "Sat", "Sun"};
  if (std::find(day_names.begin(), day_names.end(), value.substr(0, 3)) == day_names.end()) {
    return std::nullopt;
  }
  constexpr std::array<std::string_view, 12> month_names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto month_it = std::find(month_names.begin(), month_names.end(), value.substr(8, 3));
  if (month_it == month_names.end()) {
    return std::nullopt;
  }
  const auto day = parse_decimal(value.substr(5, 2));
  const auto year = parse_decimal(value.substr(12, 4));
  const auto hour = parse_decimal(value.substr(17, 2));
  const auto minute = parse_decimal(value.substr(20, 2));
  const auto second = parse_decimal(value.substr(23, 2));
  if (!day || !year || !hour || !minute || !second || *hour > 23 || *minute > 59 ||
      *second > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{
      std::chrono::year{static_cast<int>(*year)},
      std::chrono::month{static_cast<unsigned>(month_it - month_names.begin() + 1)},
      std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) {
    return std::nullopt;
  }
  // In seconds throughout: a date in year 9999 is far beyond what the clock's nanoseconds hold.
  const std::chrono::sys_seconds when = std::chrono::sys_days{date} + std::chrono::hours{*hour} +
                                        std::chrono::minutes{*minute} +
                                        std::chrono::seconds{*second};
  const auto delay = when - std::chrono::floor<std::chrono::seconds>(now);
  return std::clamp(delay, std::chrono::seconds{0}, max_retry_after);
}

}  // namespace detail

}  // namespace lanrelay
