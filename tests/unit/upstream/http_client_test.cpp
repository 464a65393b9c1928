#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <unistd.h>

namespace lanrelay {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using namespace net::experimental::awaitable_operators;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t chunk_limit = 64 * 1024;  // the client's documented largest sink call

// ---------------------------------------------------------------------------------------------
// Throwaway PKI: a CA and a server certificate for DNS:localhost (and no IP address), made with
// the OpenSSL API so the test needs no openssl binary.

struct pkey_free {
  void operator()(EVP_PKEY* key) const { ::EVP_PKEY_free(key); }
};
struct x509_free {
  void operator()(X509* cert) const { ::X509_free(cert); }
};
struct bio_free {
  void operator()(BIO* bio) const { ::BIO_free(bio); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = ::X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (extension == nullptr) {
    throw std::runtime_error("X509V3_EXT_conf_nid failed");
  }
  ::X509_add_ext(cert, extension, -1);
  ::X509_EXTENSION_free(extension);
}

// `issuer` null: self-signed CA.
x509_ptr make_certificate(EVP_PKEY* key, const char* common_name, X509* issuer,
                          EVP_PKEY* issuer_key, long serial) {
  x509_ptr cert(::X509_new());
  ::X509_set_version(cert.get(), 2);
  ::ASN1_INTEGER_set(::X509_get_serialNumber(cert.get()), serial);
  ::X509_gmtime_adj(::X509_getm_notBefore(cert.get()), -3600);
  ::X509_gmtime_adj(::X509_getm_notAfter(cert.get()), 24 * 3600);
  ::X509_set_pubkey(cert.get(), key);
  X509_NAME* name = ::X509_get_subject_name(cert.get());
  ::X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  ::X509_set_issuer_name(cert.get(), ::X509_get_subject_name(signer));
  if (issuer == nullptr) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), signer, NID_subject_alt_name, "DNS:localhost");
    add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (::X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, ::EVP_sha256()) == 0) {
    throw std::runtime_error("X509_sign failed");
  }
  return cert;
}

std::string to_pem(X509* cert) {
  bio_ptr bio(::BIO_new(::BIO_s_mem()));
  ::PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

std::string to_pem(EVP_PKEY* key) {
  bio_ptr bio(::BIO_new(::BIO_s_mem()));
  ::PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

struct test_pki {
  std::string server_cert_pem;
  std::string server_key_pem;
  std::filesystem::path ca_file;

  ~test_pki() {
    std::error_code ignored;
    std::filesystem::remove(ca_file, ignored);
  }
};

const test_pki& pki() {
  static const test_pki instance = [] {
    pkey_ptr ca_key(EVP_EC_gen("P-256"));
    pkey_ptr server_key(EVP_EC_gen("P-256"));
    if (!ca_key || !server_key) {
      throw std::runtime_error("EVP_EC_gen failed");
    }
    const auto ca = make_certificate(ca_key.get(), "lanrelay test CA", nullptr, nullptr, 1);
    const auto server =
        make_certificate(server_key.get(), "localhost", ca.get(), ca_key.get(), 2);
    test_pki out;
    out.server_cert_pem = to_pem(server.get());
    out.server_key_pem = to_pem(server_key.get());
    out.ca_file = std::filesystem::temp_directory_path() /
                  ("lanrelay_http_client_test_ca_" + std::to_string(::getpid()) + ".pem");
    std::ofstream(out.ca_file) << to_pem(ca.get());
    return out;
  }();
  return instance;
}

std::shared_ptr<net::ssl::context> server_tls_context() {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  context->use_certificate_chain(net::buffer(pki().server_cert_pem));
  context->use_private_key(net::buffer(pki().server_key_pem), net::ssl::context::pem);
  return context;
}

// ---------------------------------------------------------------------------------------------
// In-test HTTP(S) server on 127.0.0.1, port 0, on its own thread. Each connection reads one
// request head, records it, and runs the test's handler, which writes whatever bytes it likes.

class test_connection {
 public:
  test_connection(tcp::socket socket, net::ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(std::move(socket), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  net::awaitable<bool> handshake() {
    if (!tls_) {
      co_return true;
    }
    auto [ec] = co_await tls_->async_handshake(net::ssl::stream_base::server, use_tuple);
    if (!ec) {
      const char* name = ::SSL_get_servername(tls_->native_handle(), TLSEXT_NAMETYPE_host_name);
      sni = name != nullptr ? name : "";
    }
    co_return !ec;
  }

  net::awaitable<bool> read_request() {
    boost::system::error_code ec;
    if (tls_) {
      std::tie(ec, std::ignore) = co_await http::async_read(*tls_, buffer, request, use_tuple);
    } else {
      std::tie(ec, std::ignore) = co_await http::async_read(*plain_, buffer, request, use_tuple);
    }
    co_return !ec;
  }

  // Errors are ignored: the client may have given up, which is what some tests want.
  net::awaitable<void> write(std::string_view bytes) {
    if (tls_) {
      co_await net::async_write(*tls_, net::buffer(bytes), use_tuple);
    } else {
      co_await net::async_write(*plain_, net::buffer(bytes), use_tuple);
    }
  }

  net::awaitable<void> pause(std::chrono::milliseconds duration) {
    net::steady_timer timer(socket().get_executor(), duration);
    co_await timer.async_wait(use_tuple);
  }

  // Until the client closes (or the server is destroyed).
  net::awaitable<void> wait_for_close() {
    std::array<char, 4096> discard;
    while (true) {
      auto [ec, n] = co_await socket().async_read_some(net::buffer(discard), use_tuple);
      if (ec) {
        co_return;
      }
    }
  }

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  http::request<http::string_body> request;
  beast::flat_buffer buffer;
  std::string sni;

 private:
  std::optional<tcp::socket> plain_;
  std::optional<net::ssl::stream<tcp::socket>> tls_;
};

using handler = std::function<net::awaitable<void>(test_connection&)>;

class test_server {
 public:
  explicit test_server(handler on_request, std::shared_ptr<net::ssl::context> tls = nullptr)
      : handler_(std::move(on_request)), tls_(std::move(tls)) {
    const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.bind(endpoint);
    acceptor_.listen();
    net::co_spawn(ioc_, accept_loop(), report_failure);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  ~test_server() {
    ioc_.stop();
    thread_.join();
  }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  std::string url(std::string_view path, std::string_view host = "127.0.0.1") const {
    return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" +
           std::to_string(port()) + std::string(path);
  }

  std::vector<http::request<http::string_body>> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  std::vector<std::string> sni_names() const {
    std::lock_guard lock(mutex_);
    return sni_names_;
  }

 private:
  static void report_failure(std::exception_ptr e) {
    if (!e) {
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "test server: " << ex.what();
    }
  }

  net::awaitable<void> accept_loop() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec) {
        co_return;
      }
      net::co_spawn(ioc_, serve(std::move(socket)), report_failure);
    }
  }

  net::awaitable<void> serve(tcp::socket socket) {
    test_connection connection(std::move(socket), tls_.get());
    if (!co_await connection.handshake()) {
      co_return;
    }
    if (!co_await connection.read_request()) {
      co_return;
    }
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(connection.request);
      if (tls_) {
        sni_names_.push_back(connection.sni);
      }
    }
    co_await handler_(connection);
    // Half-close and linger so that the client reads the whole response rather than a reset.
    boost::system::error_code ignored;
    connection.socket().shutdown(tcp::socket::shutdown_send, ignored);
    co_await connection.wait_for_close();
  }

  net::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  handler handler_;
  std::shared_ptr<net::ssl::context> tls_;
  mutable std::mutex mutex_;
  std::vector<http::request<http::string_body>> requests_;
  std::vector<std::string> sni_names_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Helpers

// Variadic rather than an initializer_list: GCC 12 miscompiles braced lists inside coroutines.
template <class... Fields>
std::string head(std::string_view status_line, const Fields&... fields) {
  std::string out = "HTTP/1.1 " + std::string(status_line) + "\r\n";
  ((out += std::string(fields) + "\r\n"), ...);
  return out + "\r\n";
}

std::string content_length(std::size_t size) { return "Content-Length: " + std::to_string(size); }

// Not periodic at any power of two, so that a misplaced chunk shows.
const std::string& big_body() {
  static const std::string body = [] {
    std::string out(6 * 1024 * 1024 + 12345, '\0');
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
    }
    return out;
  }();
  return body;
}

fetch_request get(std::string_view url) {
  fetch_request request;
  request.url = boost::urls::url(url);
  request.timeouts = {2s, 5s, 5s};
  return request;
}

struct collector {
  std::string bytes;
  int calls = 0;
  std::size_t largest = 0;

  body_sink sink() {
    return [this](std::span<const std::byte> data) -> result<void> {
      bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
      ++calls;
      largest = std::max(largest, data.size());
      return {};
    };
  }
};

std::optional<std::uint64_t> range_start(const http::request<http::string_body>& request) {
  const auto value = request[http::field::range];
  constexpr std::string_view prefix = "bytes=";
  if (!value.starts_with(prefix) || !value.ends_with("-")) {
    return std::nullopt;
  }
  return std::stoull(std::string(value.substr(prefix.size())));
}

handler serve_body(std::string body) {
  return [body = std::move(body)](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", content_length(body.size())) + body);
  };
}

std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP

TEST(http_client, streams_a_large_body_in_bounded_chunks) {
  test_server server(serve_body(big_body()));
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/pattern/lpt.zip")), out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(response->body_bytes, big_body().size());
  EXPECT_EQ(response->content_length, big_body().size());
  EXPECT_EQ(response->total_size, big_body().size());
  EXPECT_TRUE(response->range_honoured);
  EXPECT_EQ(response->peer, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(response->final_url.buffer(), server.url("/pattern/lpt.zip"));
  EXPECT_TRUE(out.bytes == big_body());
  EXPECT_GT(out.calls, 1);
  EXPECT_LE(out.largest, chunk_limit);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].method(), http::verb::get);
  EXPECT_EQ(requests[0].target(), "/pattern/lpt.zip");
  EXPECT_EQ(requests[0][http::field::host], "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(requests[0].count(http::field::range), 0U);
}

TEST(http_client, streams_a_chunked_body) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", "Transfer-Encoding: chunked"));
    co_await c.write("5\r\nhello\r\n");
    co_await c.pause(20ms);
    co_await c.write("6\r\n world\r\n0\r\n\r\n");
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/")), out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(out.bytes, "hello world");
  EXPECT_EQ(response->body_bytes, 11U);
  EXPECT_FALSE(response->content_length);
  EXPECT_FALSE(response->total_size);
}

TEST(http_client, resumes_with_a_range) {
  const std::string& body = big_body();
  test_server server([&body](test_connection& c) -> net::awaitable<void> {
    const auto first = range_start(c.request);
    if (!first || *first >= body.size()) {
      co_await c.write(head("400 Bad Request", content_length(0)));
      co_return;
    }
    const std::size_t length = body.size() - *first;
    const std::string range = "Content-Range: bytes " + std::to_string(*first) + "-" +
                              std::to_string(body.size() - 1) + "/" + std::to_string(body.size());
    co_await c.write(head("206 Partial Content", content_length(length), range, "ETag: \"v1\"") +
                     body.substr(*first));
  });
  auto request = get(server.url("/installer/agent-14.0.msi"));
  request.offset = 1'000'003;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 206U);
  EXPECT_TRUE(response->range_honoured);
  EXPECT_EQ(response->total_size, body.size());
  EXPECT_EQ(response->content_length, body.size() - request.offset);
  EXPECT_EQ(response->body_bytes, body.size() - request.offset);
  EXPECT_EQ(response->etag, "\"v1\"");
  EXPECT_TRUE(out.bytes == body.substr(request.offset));
  ASSERT_EQ(server.requests().size(), 1U);
  EXPECT_EQ(server.requests()[0][http::field::range], "bytes=1000003-");
}

TEST(http_client, server_ignoring_the_range_sends_everything_and_the_client_skips) {
  const std::string body = big_body().substr(0, 300'000);
  test_server server(serve_body(body));
  auto request = get(server.url("/file"));
  request.offset = 100'000;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_FALSE(response->range_honoured);
  EXPECT_EQ(response->total_size, body.size());
  EXPECT_EQ(response->content_length, body.size());
  EXPECT_EQ(response->body_bytes, body.size() - request.offset);
  EXPECT_TRUE(out.bytes == body.substr(request.offset));
}

TEST(http_client, range_for_another_offset_is_refused) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(
        head("206 Partial Content", content_length(10), "Content-Range: bytes 0-9/10") +
        "0123456789");
  });
  auto request = get(server.url("/file"));
  request.offset = 5;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::range_mismatch);
  EXPECT_EQ(out.calls, 0);
}

TEST(http_client, unsatisfiable_range_reports_the_size) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(
        head("416 Range Not Satisfiable", content_length(0), "Content-Range: bytes */4096"));
  });
  auto request = get(server.url("/file"));
  request.offset = 4096;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 416U);
  EXPECT_EQ(response->total_size, 4096U);
  EXPECT_EQ(out.calls, 0);
}

TEST(http_client, not_modified_with_if_none_match) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    if (c.request[http::field::if_none_match] == "\"abc\"") {
      co_await c.write(head("304 Not Modified", "ETag: \"abc\""));
    } else {
      co_await c.write(head("200 OK", content_length(3), "ETag: \"abc\"") + "new");
    }
  });
  auto request = get(server.url("/pattern/index.ini"));
  request.if_none_match = "\"abc\"";
  request.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 304U);
  EXPECT_EQ(response->etag, "\"abc\"");
  EXPECT_EQ(response->body_bytes, 0U);
  EXPECT_EQ(out.calls, 0);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0][http::field::if_modified_since], "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(http_client, busy_server_returns_503_with_retry_after) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("503 Service Unavailable", content_length(4), "Retry-After: 7") +
                     "busy");
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/file")), out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 503U);
  EXPECT_EQ(response->retry_after, 7s);
  EXPECT_EQ(out.calls, 0);
}

TEST(http_client, follows_redirects_across_servers) {
  test_server target([](test_connection& c) -> net::awaitable<void> {
    if (c.request.target() == "/b") {
      co_await c.write(head("307 Temporary Redirect", "Location: c?x=1", content_length(0)));
    } else {
      co_await c.write(head("200 OK", content_length(5)) + "moved");
    }
  });
  const std::string next = target.url("/b");
  test_server origin([next](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("301 Moved Permanently", "Location: " + next, content_length(0)));
  });
  collector out;
  const auto response = http_fetch_blocking(get(origin.url("/a#fragment")), out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(out.bytes, "moved");
  EXPECT_EQ(response->final_url.buffer(), target.url("/c?x=1"));
  EXPECT_EQ(response->peer, "127.0.0.1:" + std::to_string(target.port()));
  ASSERT_EQ(origin.requests().size(), 1U);
  EXPECT_EQ(origin.requests()[0].target(), "/a");
  const auto requests = target.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[1].target(), "/c?x=1");
}

TEST(http_client, stops_a_redirect_loop) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    const std::string next = c.request.target() == "/a" ? "/b" : "/a";
    co_await c.write(head("302 Found", "Location: " + next, content_length(0)));
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/a")), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::redirect_loop);
  EXPECT_EQ(server.requests().size(), 6U);  // the request and 5 redirects
}

TEST(http_client, redirect_without_location_is_an_error) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("302 Found", content_length(0)));
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/a")), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::bad_redirect);
}

TEST(http_client, stalled_body_hits_the_idle_timeout) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", content_length(1 << 20)) + std::string(100'000, 'x'));
    co_await c.wait_for_close();
  });
  auto request = get(server.url("/file"));
  // The other deadlines are far away, so that only the 300 ms one can end the fetch before the
  // hang guard below, however busy the machine.
  request.timeouts = {60s, 60s, 300ms};
  collector out;
  const auto start = std::chrono::steady_clock::now();
  const auto response = http_fetch_blocking(request, out.sink());
  const auto took = elapsed_since(start);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::body_timeout);
  EXPECT_TRUE(is_timeout(response.error()));
  EXPECT_EQ(out.bytes.size(), 100'000U);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 30s);
}

TEST(http_client, slow_but_steady_body_does_not_time_out) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", content_length(10 * 100)));
    for (int i = 0; i < 10; ++i) {
      co_await c.pause(60ms);
      co_await c.write(std::string(100, static_cast<char>('a' + i)));
    }
  });
  auto request = get(server.url("/file"));
  request.timeouts.idle_body = 300ms;  // shorter than the whole transfer, longer than each gap
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(out.bytes.size(), 1000U);
  EXPECT_EQ(out.bytes.substr(900), std::string(100, 'j'));
}

TEST(http_client, silent_server_hits_the_response_head_timeout) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.wait_for_close();
  });
  auto request = get(server.url("/file"));
  request.timeouts = {60s, 300ms, 60s};
  collector out;
  const auto start = std::chrono::steady_clock::now();
  const auto response = http_fetch_blocking(request, out.sink());
  const auto took = elapsed_since(start);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::head_timeout);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 30s);
}

TEST(http_client, partial_head_hits_the_response_head_timeout) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write("HTTP/1.1 200 OK\r\nContent-Le");
    co_await c.wait_for_close();
  });
  auto request = get(server.url("/file"));
  request.timeouts.response_head = 300ms;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::head_timeout);
}

TEST(http_client, connection_refused) {
  // Bound but not listening: connecting gets a reset, and no other process can take the port.
  net::io_context ioc;
  tcp::socket placeholder(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const auto port = placeholder.local_endpoint().port();
  collector out;
  const auto response =
      http_fetch_blocking(get("http://127.0.0.1:" + std::to_string(port) + "/"), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), net::error::connection_refused);
}

TEST(http_client, sink_error_aborts_the_transfer) {
  test_server server(serve_body(big_body()));
  int calls = 0;
  const auto response = http_fetch_blocking(
      get(server.url("/file")), [&calls](std::span<const std::byte>) -> result<void> {
        ++calls;
        return make_error_code(errc::store_full);
      });
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), errc::store_full);
  EXPECT_EQ(calls, 1);
}

TEST(http_client, announced_size_over_max_bytes_is_refused_before_the_sink) {
  test_server server(serve_body(std::string(100'000, 'x')));
  auto request = get(server.url("/file"));
  request.max_bytes = 99'999;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::too_large);
  EXPECT_EQ(out.calls, 0);
}

TEST(http_client, unannounced_body_over_max_bytes_is_stopped) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", "Transfer-Encoding: chunked"));
    for (int i = 0; i < 100; ++i) {
      co_await c.write("400\r\n" + std::string(1024, 'x') + "\r\n");
    }
    co_await c.write("0\r\n\r\n");
  });
  auto request = get(server.url("/file"));
  request.max_bytes = 10'000;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::too_large);
  EXPECT_LE(out.bytes.size(), 10'000U);
}

TEST(http_client, truncated_body_is_incomplete) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("200 OK", content_length(1000)) + std::string(500, 'x'));
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/file")), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::incomplete_response);
  EXPECT_EQ(out.bytes.size(), 500U);
}

TEST(http_client, garbage_is_a_protocol_error) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  collector out;
  const auto response = http_fetch_blocking(get(server.url("/file")), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::protocol_error);
}

TEST(http_client, unsupported_scheme_is_refused_without_connecting) {
  collector out;
  const auto response = http_fetch_blocking(get("ftp://127.0.0.1/file"), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::unsupported_scheme);
}

TEST(http_client, header_values_with_line_breaks_are_refused) {
  auto request = get("http://127.0.0.1:9/file");
  request.if_none_match = "\"a\"\r\nX-Injected: 1";
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), boost::system::errc::invalid_argument);
}

TEST(http_client, concurrent_fetches_on_a_threaded_context) {
  test_server server(serve_body(big_body().substr(0, 500'000)));
  net::io_context ioc;
  constexpr int fetches = 4;
  std::array<collector, fetches> outs;
  std::atomic<int> succeeded = 0;
  for (auto& out : outs) {
    net::co_spawn(ioc, http_fetch(get(server.url("/file")), out.sink()),
                  [&succeeded](std::exception_ptr e, result<fetch_response> r) {
                    if (!e && r && r->status == 200) {
                      ++succeeded;
                    }
                  });
  }
  std::thread helper([&ioc] { ioc.run(); });
  ioc.run();
  helper.join();
  EXPECT_EQ(succeeded, fetches);
  for (const auto& out : outs) {
    EXPECT_TRUE(out.bytes == big_body().substr(0, 500'000));
  }
}

TEST(http_client, cancellation_stops_a_fetch) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.wait_for_close();
  });
  net::io_context ioc;
  net::steady_timer shutdown(ioc, 200ms);
  auto request = get(server.url("/file"));
  request.timeouts = {60s, 60s, 60s};
  collector out;
  std::optional<std::variant<result<fetch_response>, std::monostate>> outcome;
  const auto start = std::chrono::steady_clock::now();
  // No temporaries in the co_await expression: GCC 12 destroys some of them twice.
  auto race = [&]() -> net::awaitable<void> {
    auto fetch = http_fetch(request, out.sink());
    auto stop = shutdown.async_wait(net::use_awaitable);
    outcome = co_await (std::move(fetch) || std::move(stop));
  };
  net::co_spawn(ioc, race(), [](std::exception_ptr e) {
    if (e) {
      std::rethrow_exception(e);
    }
  });
  ioc.run();
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->index(), 1U);
  EXPECT_LT(elapsed_since(start), 30s);  // far below the 60 s response_head timeout
}

// ---------------------------------------------------------------------------------------------
// HTTPS

fetch_request get_localhost(const test_server& server, std::string_view path) {
  auto request = get(server.url(path, "localhost"));
  request.host_address = net::ip::make_address("127.0.0.1");
  return request;
}

TEST(http_client_tls, verifies_against_the_ca_file_and_host_name) {
  test_server server(serve_body("secure pattern"), server_tls_context());
  auto request = get_localhost(server, "/pattern/lpt.zip");
  request.tls.ca_file = pki().ca_file;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(out.bytes, "secure pattern");
  EXPECT_EQ(response->peer, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_EQ(server.sni_names().size(), 1U);
  EXPECT_EQ(server.sni_names()[0], "localhost");
  EXPECT_EQ(server.requests()[0][http::field::host],
            "localhost:" + std::to_string(server.port()));
}

TEST(http_client_tls, streams_a_large_body) {
  test_server server(serve_body(big_body()), server_tls_context());
  auto request = get_localhost(server, "/installer");
  request.tls.ca_file = pki().ca_file;
  request.offset = 77;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_FALSE(response->range_honoured);
  EXPECT_TRUE(out.bytes == big_body().substr(77));
  EXPECT_LE(out.largest, chunk_limit);
}

TEST(http_client_tls, test_ca_is_not_in_the_system_store) {
  test_server server(serve_body("secure"), server_tls_context());
  collector out;
  const auto response = http_fetch_blocking(get_localhost(server, "/"), out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::certificate_untrusted);
  EXPECT_TRUE(server.requests().empty());
}

TEST(http_client_tls, wrong_host_name_is_refused) {
  test_server server(serve_body("secure"), server_tls_context());
  // relay.invalid can never resolve; host_address sends the connection to 127.0.0.1.
  auto request = get(server.url("/", "relay.invalid"));
  request.host_address = net::ip::make_address("127.0.0.1");
  request.tls.ca_file = pki().ca_file;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::certificate_name_mismatch);
  EXPECT_TRUE(server.requests().empty());
}

TEST(http_client_tls, address_not_in_the_certificate_is_refused) {
  test_server server(serve_body("secure"), server_tls_context());
  auto request = get(server.url("/", "127.0.0.1"));  // the certificate names localhost only
  request.tls.ca_file = pki().ca_file;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::certificate_name_mismatch);
}

TEST(http_client_tls, unreadable_ca_file_is_reported) {
  auto request = get("https://localhost:9/");
  request.host_address = net::ip::make_address("127.0.0.1");
  request.tls.ca_file = std::filesystem::temp_directory_path() / "lanrelay-no-such-ca.pem";
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::bad_ca_file);
}

TEST(http_client_tls, http_may_redirect_to_https) {
  test_server secure(serve_body("upgraded"), server_tls_context());
  const std::string next = secure.url("/x", "localhost");
  test_server plain([next](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("308 Permanent Redirect", "Location: " + next, content_length(0)));
  });
  auto request = get(plain.url("/x", "localhost"));
  request.host_address = net::ip::make_address("127.0.0.1");  // pins localhost on every port
  request.tls.ca_file = pki().ca_file;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(out.bytes, "upgraded");
  EXPECT_EQ(response->final_url.buffer(), next);
}

TEST(http_client_tls, https_never_redirects_to_http) {
  test_server plain(serve_body("downgraded"));
  const std::string next = plain.url("/x");
  test_server secure(
      [next](test_connection& c) -> net::awaitable<void> {
        co_await c.write(head("302 Found", "Location: " + next, content_length(0)));
      },
      server_tls_context());
  auto request = get_localhost(secure, "/x");
  request.tls.ca_file = pki().ca_file;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::insecure_redirect);
  EXPECT_TRUE(plain.requests().empty());
}

// ---------------------------------------------------------------------------------------------
// Proxy

net::awaitable<void> pipe(tcp::socket& from, tcp::socket& to) {
  std::array<char, 16 * 1024> data;
  while (true) {
    auto [read_ec, n] = co_await from.async_read_some(net::buffer(data), use_tuple);
    if (read_ec) {
      break;
    }
    auto [write_ec, written] = co_await net::async_write(to, net::buffer(data, n), use_tuple);
    if (write_ec) {
      break;
    }
  }
  boost::system::error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

// A CONNECT proxy that only ever tunnels to 127.0.0.1, whatever host the request names.
net::awaitable<void> tunnel(test_connection& c) {
  if (c.request.method() != http::verb::connect) {
    co_await c.write(head("200 OK", content_length(12)) + "proxy origin");
    co_return;
  }
  const std::string authority(c.request.target());
  const auto colon = authority.rfind(':');
  const std::string host = authority.substr(0, colon);
  if (colon == std::string::npos || (host != "localhost" && host != "127.0.0.1")) {
    co_await c.write(head("403 Forbidden", content_length(0)));
    co_return;
  }
  const auto port = static_cast<std::uint16_t>(std::stoul(authority.substr(colon + 1)));
  tcp::socket upstream(c.socket().get_executor());
  auto [ec] = co_await upstream.async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), port), use_tuple);
  if (ec) {
    co_await c.write(head("502 Bad Gateway", content_length(0)));
    co_return;
  }
  co_await c.write("HTTP/1.1 200 Connection established\r\n\r\n");
  co_await (pipe(c.socket(), upstream) && pipe(upstream, c.socket()));
}

TEST(http_client_proxy, tunnels_https_with_basic_credentials) {
  test_server origin(serve_body("through the tunnel"), server_tls_context());
  test_server proxy(tunnel);
  auto request = get(origin.url("/pattern/lpt.zip", "localhost"));
  request.tls.ca_file = pki().ca_file;
  request.proxy = proxy_settings{
      boost::urls::url("http://relay%20user:p%40ss@127.0.0.1:" + std::to_string(proxy.port()))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(out.bytes, "through the tunnel");
  EXPECT_EQ(response->peer, "127.0.0.1:" + std::to_string(proxy.port()));

  const auto proxied = proxy.requests();
  ASSERT_EQ(proxied.size(), 1U);
  EXPECT_EQ(proxied[0].method(), http::verb::connect);
  EXPECT_EQ(proxied[0].target(), "localhost:" + std::to_string(origin.port()));
  // base64("relay user:p@ss")
  EXPECT_EQ(proxied[0][http::field::proxy_authorization], "Basic cmVsYXkgdXNlcjpwQHNz");

  const auto served = origin.requests();
  ASSERT_EQ(served.size(), 1U);
  EXPECT_EQ(served[0].target(), "/pattern/lpt.zip");
  EXPECT_EQ(served[0].count(http::field::proxy_authorization), 0U);
  EXPECT_EQ(origin.sni_names()[0], "localhost");
}

TEST(http_client_proxy, http_targets_use_the_absolute_form) {
  test_server proxy(tunnel);
  auto request = get("http://127.0.0.1:8/item?kind=pattern");
  request.proxy = proxy_settings{
      boost::urls::url("http://agent:secret@127.0.0.1:" + std::to_string(proxy.port()))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(out.bytes, "proxy origin");
  const auto proxied = proxy.requests();
  ASSERT_EQ(proxied.size(), 1U);
  EXPECT_EQ(proxied[0].target(), "http://127.0.0.1:8/item?kind=pattern");
  EXPECT_EQ(proxied[0][http::field::host], "127.0.0.1:8");
  EXPECT_EQ(proxied[0][http::field::proxy_authorization], "Basic YWdlbnQ6c2VjcmV0");
}

TEST(http_client_proxy, refused_tunnel_is_an_error) {
  test_server proxy([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("407 Proxy Authentication Required", content_length(0),
                          "Proxy-Authenticate: Basic realm=\"proxy\""));
  });
  auto request = get("https://localhost:9/");
  request.tls.ca_file = pki().ca_file;
  request.proxy =
      proxy_settings{boost::urls::url("http://127.0.0.1:" + std::to_string(proxy.port()))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::proxy_auth_failed);
  ASSERT_EQ(proxy.requests().size(), 1U);
  EXPECT_EQ(proxy.requests()[0].count(http::field::proxy_authorization), 0U);
}

TEST(http_client_proxy, forbidden_tunnel_is_refused) {
  test_server proxy([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("403 Forbidden", content_length(0)));
  });
  auto request = get("https://localhost:9/");
  request.tls.ca_file = pki().ca_file;
  request.proxy =
      proxy_settings{boost::urls::url("http://127.0.0.1:" + std::to_string(proxy.port()))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::proxy_refused);
}

// A scripted SOCKS5 proxy for byte-level checks: accepts one connection on a thread, records what
// the client sends in each step and answers with the given bytes. After a successful CONNECT
// reply it serves `http_response` as the tunnelled target.
class scripted_socks {
 public:
  struct script {
    std::string method_choice;       // answer to the greeting
    std::string auth_verdict;        // answer to RFC 1929 credentials; empty: not expected
    std::string connect_reply;       // answer to CONNECT; empty: close after the greeting step
    std::string http_response;
  };

  explicit scripted_socks(script s) : script_(std::move(s)) {
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_socks() { done(); }

  // Waits for the proxy's side to finish; its records may be read afterwards.
  scripted_socks& done() {
    if (thread_.joinable()) {
      boost::system::error_code ignored;
      acceptor_.cancel(ignored);
      thread_.join();
    }
    return *this;
  }

  std::string url(std::string_view userinfo = {}) const {
    return "socks5h://" + std::string(userinfo) + (userinfo.empty() ? "" : "@") + "127.0.0.1:" +
           std::to_string(acceptor_.local_endpoint().port());
  }

  std::string greeting, credentials, connect_request;

 private:
  // One read per step: the client sends each step in one write, which loopback delivers whole.
  static std::string read_some(tcp::socket& socket) {
    std::array<char, 512> buffer;
    boost::system::error_code ec;
    const auto n = socket.read_some(net::buffer(buffer), ec);
    return ec ? std::string() : std::string(buffer.data(), n);
  }

  void serve() {
    boost::system::error_code ec;
    tcp::socket socket(ioc_);
    acceptor_.accept(socket, ec);
    if (ec) {
      return;
    }
    greeting = read_some(socket);
    net::write(socket, net::buffer(script_.method_choice), ec);
    if (!script_.auth_verdict.empty()) {
      credentials = read_some(socket);
      net::write(socket, net::buffer(script_.auth_verdict), ec);
    }
    if (script_.connect_reply.empty()) {
      return;
    }
    connect_request = read_some(socket);
    net::write(socket, net::buffer(script_.connect_reply), ec);
    if (!script_.http_response.empty()) {
      read_some(socket);
      net::write(socket, net::buffer(script_.http_response), ec);
      socket.shutdown(tcp::socket::shutdown_send, ec);
      read_some(socket);
    }
  }

  script script_;
  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) {
    out.push_back(static_cast<char>(v));
  }
  return out;
}

TEST(http_client_socks, wire_format_with_credentials_and_a_host_name) {
  // Bound address given as a domain name (ATYP 3), which the client must skip correctly.
  scripted_socks proxy({.method_choice = bytes({5, 2}),
                        .auth_verdict = bytes({1, 0}),
                        .connect_reply = bytes({5, 0, 0, 3, 4}) + "host" + bytes({0x10, 0x92}),
                        .http_response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"});
  auto request = get("http://update.example.com:8080/x");
  request.proxy = proxy_settings{boost::urls::url(proxy.url("agent:p%40ss"))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(out.bytes, "hello");
  proxy.done();
  EXPECT_EQ(proxy.greeting, bytes({5, 2, 0, 2}));
  EXPECT_EQ(proxy.credentials, bytes({1, 5}) + "agent" + bytes({4}) + "p@ss");
  EXPECT_EQ(proxy.connect_request,
            bytes({5, 1, 0, 3, 18}) + "update.example.com" + bytes({0x1f, 0x90}));
}

TEST(http_client_socks, addresses_are_sent_as_addresses) {
  scripted_socks v4({.method_choice = bytes({5, 0}),
                     .connect_reply = bytes({5, 0, 0, 1, 10, 0, 0, 1, 0, 80}),
                     .http_response = "HTTP/1.1 204 No Content\r\n\r\n"});
  auto request = get("http://192.0.2.7/x");
  request.proxy = proxy_settings{boost::urls::url(v4.url())};
  collector out;
  ASSERT_TRUE(http_fetch_blocking(request, out.sink()));
  v4.done();
  EXPECT_EQ(v4.greeting, bytes({5, 1, 0}));
  EXPECT_EQ(v4.connect_request, bytes({5, 1, 0, 1, 192, 0, 2, 7, 0, 80}));

  scripted_socks v6({.method_choice = bytes({5, 0}),
                     .connect_reply = bytes({5, 0, 0, 1, 10, 0, 0, 1, 0, 80}),
                     .http_response = "HTTP/1.1 204 No Content\r\n\r\n"});
  request.url = boost::urls::url("http://[2001:db8::1]:8080/x");
  request.proxy = proxy_settings{boost::urls::url(v6.url())};
  ASSERT_TRUE(http_fetch_blocking(request, out.sink()));
  v6.done();
  EXPECT_EQ(v6.connect_request, bytes({5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 1, 0x1f, 0x90}));
}

TEST(http_client_socks, broken_or_refusing_proxies_give_their_errors) {
  struct scripted_case {
    scripted_socks::script script;
    std::string userinfo;
    http_errc expected;
  };
  const scripted_case cases[] = {
      {{.method_choice = bytes({4, 0})}, "", http_errc::proxy_protocol_error},
      {{.method_choice = bytes({5, 0xff})}, "", http_errc::proxy_auth_unsupported},
      {{.method_choice = bytes({5, 2})}, "", http_errc::proxy_protocol_error},  // not offered
      {{.method_choice = bytes({5, 2}), .auth_verdict = bytes({1, 1})}, "u:p",
       http_errc::proxy_auth_failed},
      {{.method_choice = bytes({5, 0}), .connect_reply = bytes({5, 2, 0, 1, 0, 0, 0, 0, 0, 0})}, "",
       http_errc::socks_not_allowed},
      {{.method_choice = bytes({5, 0}), .connect_reply = bytes({5, 4, 0, 1, 0, 0, 0, 0, 0, 0})}, "",
       http_errc::socks_host_unreachable},
      {{.method_choice = bytes({5, 0}), .connect_reply = bytes({5, 5, 0, 1, 0, 0, 0, 0, 0, 0})}, "",
       http_errc::socks_connection_refused},
      {{.method_choice = bytes({5, 0}), .connect_reply = bytes({5, 1, 0, 1, 0, 0, 0, 0, 0, 0})}, "",
       http_errc::socks_failed},
      {{.method_choice = bytes({5, 0}), .connect_reply = bytes({5, 0, 0, 9, 0, 0})}, "",
       http_errc::proxy_protocol_error},
  };
  for (const auto& c : cases) {
    scripted_socks proxy(c.script);
    auto request = get("http://update.example.com/x");
    request.timeouts.connect = std::chrono::milliseconds(2'000);
    request.proxy = proxy_settings{boost::urls::url(proxy.url(c.userinfo))};
    collector out;
    const auto response = http_fetch_blocking(request, out.sink());
    ASSERT_FALSE(response) << make_error_code(c.expected).message();
    EXPECT_EQ(response.error(), c.expected) << response.error().message();
  }
}

TEST(http_client_proxy, bad_proxy_urls_fail_before_connecting) {
  // (https:// proxies are supported since the client is libcurl's: TLS to the proxy itself.)
  for (const auto* proxy : {"ftp://127.0.0.1:3128", "socks4://127.0.0.1:1080",
                            "socks5://:password@127.0.0.1:1080", "socks5://"}) {
    auto request = get("http://127.0.0.1:9/");
    request.proxy = proxy_settings{boost::urls::url(proxy)};
    collector out;
    const auto response = http_fetch_blocking(request, out.sink());
    ASSERT_FALSE(response) << proxy;
    EXPECT_TRUE(response.error() == http_errc::unsupported_scheme ||
                response.error() == http_errc::invalid_url)
        << proxy << ": " << response.error().message();
  }
}

// Errors name the hop that failed: with the proxy down, the proxy, not the vendor's server.
TEST(http_client_proxy, a_refused_proxy_is_named_in_the_error) {
  net::io_context ioc;
  tcp::socket placeholder(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const auto port = std::to_string(placeholder.local_endpoint().port());
  auto request = get("http://au.example.com/activeupdate/server.ini");
  request.proxy = proxy_settings{boost::urls::url("http://127.0.0.1:" + port),
                                 proxy_auth_scheme::ntlm};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), net::error::connection_refused);
  const auto text = describe_fetch_error(request, response.error());
  EXPECT_NE(text.find("proxy at 127.0.0.1:" + port), std::string::npos) << text;
  EXPECT_EQ(text.find("au.example.com"), std::string::npos) << text;

  test_server proxy([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("407 Proxy Authentication Required", content_length(0),
                          "Proxy-Authenticate: Basic realm=\"proxy\""));
  });
  request.proxy = proxy_settings{
      boost::urls::url("http://u:p@127.0.0.1:" + std::to_string(proxy.port()))};
  const auto refused = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), http_errc::proxy_auth_failed);
  const auto login = describe_fetch_error(request, refused.error());
  EXPECT_NE(login.find("proxy at 127.0.0.1:" + std::to_string(proxy.port()) +
                       " refused the login (basic)"),
            std::string::npos)
      << login;
}

TEST(http_client, posts_with_a_bearer_token_and_reads_any_status_body) {
  test_server server([](test_connection& c) -> net::awaitable<void> {
    co_await c.write(head("403 Forbidden", content_length(6)) + "denied");
  });
  auto request = get(server.url("/-/mirror/sync?name=vendor"));
  request.post = true;
  request.bearer_token = "s3cret";
  request.every_status_body = true;
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 403U);
  EXPECT_EQ(out.bytes, "denied");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].method(), http::verb::post);
  EXPECT_EQ(requests[0][http::field::authorization], "Bearer s3cret");
  EXPECT_EQ(requests[0][http::field::content_length], "0");
}

// ---------------------------------------------------------------------------------------------
// Rate limiter (the paced transfers themselves are measured in integration/upstream_proxy_test)

// The limiter is given the time, so the arithmetic is checked, not the machine's speed. Within a
// microsecond: the bucket counts in doubles.
bool about(std::chrono::nanoseconds got, std::chrono::nanoseconds want) {
  return std::chrono::abs(got - want) <= std::chrono::microseconds(1);
}

TEST(rate_limiter_test, burst_is_free_then_debt_is_paid_in_time) {
  rate_limiter limit(1'000'000, 100'000);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(limit.take(100'000, t0), std::chrono::nanoseconds::zero());
  // 500 b more at 1 MB/s: half a second.
  EXPECT_TRUE(about(limit.take(500'000, t0), std::chrono::milliseconds(500)));
  // Debt accumulates: the next taker queues behind the first.
  EXPECT_TRUE(about(limit.take(250'000, t0), std::chrono::milliseconds(750)));
  // Time pays the debt at the rate, and no faster.
  EXPECT_TRUE(about(limit.take(0, t0 + std::chrono::milliseconds(700)),
                    std::chrono::milliseconds(50)));
  EXPECT_TRUE(about(limit.take(0, t0 + std::chrono::milliseconds(750)),
                    std::chrono::nanoseconds::zero()));
  // A quiet time refills the burst, not more.
  EXPECT_EQ(limit.take(100'000, t0 + std::chrono::seconds(10)), std::chrono::nanoseconds::zero());
  EXPECT_TRUE(about(limit.take(1'000, t0 + std::chrono::seconds(10)),
                    std::chrono::milliseconds(1)));
}

TEST(rate_limiter_test, default_burst_is_a_tenth_of_a_second_at_least_16_kib) {
  const auto t0 = std::chrono::steady_clock::now();
  rate_limiter fast(10'000'000);
  EXPECT_EQ(fast.take(1'000'000, t0), std::chrono::nanoseconds::zero());
  EXPECT_TRUE(about(fast.take(1'000'000, t0), std::chrono::milliseconds(100)));
  rate_limiter slow(1'000);
  EXPECT_EQ(slow.take(16 * 1024, t0), std::chrono::nanoseconds::zero());
  EXPECT_TRUE(about(slow.take(1'000, t0), std::chrono::seconds(1)));
}

TEST(rate_limiter_test, a_time_before_the_last_refills_nothing) {
  rate_limiter limit(1'000'000, 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(about(limit.take(1'001, t0), std::chrono::milliseconds(1)));
  EXPECT_TRUE(about(limit.take(1'000, t0 - std::chrono::seconds(5)),
                    std::chrono::milliseconds(2)));
}

// Concurrent takers share one budget: the waits they are given add up to the bytes at the rate.
// Each takes at the same instant, so the total is exact; the clock-driven take() is the same code.
TEST(rate_limiter_test, many_threads_together_get_the_rate) {
  const auto limit = std::make_shared<rate_limiter>(1'000'000, 1);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> takers;
  std::vector<std::chrono::nanoseconds> waits(4);
  for (std::size_t i = 0; i < waits.size(); ++i) {
    takers.emplace_back([&, i] {
      for (int n = 0; n < 1000; ++n) {
        waits[i] = std::max(waits[i], limit->take(250, t0));
      }
    });
  }
  for (auto& t : takers) {
    t.join();
  }
  // 4 x 1000 x 250 bytes = 1 MB at 1 MB/s, less the 1-byte burst: the last taker waits a second.
  const auto longest = *std::max_element(waits.begin(), waits.end());
  EXPECT_GT(longest, std::chrono::milliseconds(999));
  EXPECT_LE(longest, std::chrono::seconds(1));
}

// ---------------------------------------------------------------------------------------------
// Header parsers

TEST(http_client_parse, content_range) {
  using detail::content_range;
  using detail::parse_content_range;
  EXPECT_EQ(parse_content_range("bytes 10-19/100"), (content_range{true, 10, 19, 100}));
  EXPECT_EQ(parse_content_range("bytes 0-0/*"), (content_range{true, 0, 0, std::nullopt}));
  EXPECT_EQ(parse_content_range("BYTES 5-9/10"), (content_range{true, 5, 9, 10}));
  EXPECT_EQ(parse_content_range("bytes */4096"), (content_range{false, 0, 0, 4096}));
  EXPECT_FALSE(parse_content_range(""));
  EXPECT_FALSE(parse_content_range("bytes */*"));
  EXPECT_FALSE(parse_content_range("bytes 10-9/100"));
  EXPECT_FALSE(parse_content_range("bytes 0-100/100"));
  EXPECT_FALSE(parse_content_range("bytes 0-9"));
  EXPECT_FALSE(parse_content_range("bytes -5-9/100"));
  EXPECT_FALSE(parse_content_range("bytes 0-9/100x"));
  EXPECT_FALSE(parse_content_range("items 0-9/100"));
  EXPECT_FALSE(parse_content_range("bytes 0-99999999999999999999/*"));
}

TEST(http_client_parse, retry_after) {
  using detail::parse_retry_after;
  const auto now = std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h;
  EXPECT_EQ(parse_retry_after("120", now), 120s);
  EXPECT_EQ(parse_retry_after(" 5 ", now), 5s);
  EXPECT_EQ(parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now), 30s);
  EXPECT_EQ(parse_retry_after("Tue, 30 Apr 2024 12:00:00 GMT", now), 0s);
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("-5", now));
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("Wed, 31 Apr 2024 12:00:30 GMT", now));
  EXPECT_FALSE(parse_retry_after("Wed, 01 May 2024 25:00:30 GMT", now));
  // A huge number or a far-future date is clamped to a day, not overflowed (UBSan in the debug
  // preset), and the result converts to milliseconds and adds to a clock safely.
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), 24h);
  EXPECT_EQ(parse_retry_after("18446744073709551615", now), 24h);
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), 24h);
  EXPECT_EQ(parse_retry_after("Thu, 02 May 2024 12:00:00 GMT", now), 86400s);
  EXPECT_EQ(parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT", now), 0s);
  const auto far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).value();
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(far).count(), 86'400'000);
  EXPECT_GT(std::chrono::steady_clock::now() + far, std::chrono::steady_clock::now());
  EXPECT_FALSE(parse_retry_after("Wednesday, 01-May-24 12:00:30 GMT", now));
}

TEST(http_client_parse, errors_have_messages_and_timeouts_are_recognised) {
  for (int e = 1; e <= static_cast<int>(http_errc::bad_proxy_ca_file); ++e) {
    const auto message = make_error_code(static_cast<http_errc>(e)).message();
    EXPECT_EQ(message.find("unknown"), std::string::npos) << e;
  }
  EXPECT_TRUE(is_timeout(http_errc::connect_timeout));
  EXPECT_TRUE(is_timeout(http_errc::head_timeout));
  EXPECT_TRUE(is_timeout(http_errc::body_timeout));
  EXPECT_FALSE(is_timeout(http_errc::protocol_error));
  EXPECT_FALSE(is_timeout(make_error_code(boost::system::errc::timed_out)));
}

}  // namespace
}  // namespace lanrelay

namespace lanrelay {
namespace {

// SHA-256 of the DER encoding of the test server's certificate: what a catalog would list.
sha256_digest test_server_fingerprint() {
  BIO* bio = BIO_new_mem_buf(pki().server_cert_pem.data(),
                             static_cast<int>(pki().server_cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  const auto digest = sha256_of(std::as_bytes(std::span(der, static_cast<std::size_t>(length))));
  OPENSSL_free(der);
  X509_free(cert);
  return digest;
}

TEST(http_client_pinning, a_pinned_certificate_is_trusted_without_ca_or_host_name) {
  test_server server(serve_body("pinned bytes"), server_tls_context());
  // 127.0.0.1 is not in the certificate and its CA is not trusted: the pin is all that counts.
  auto request = get(server.url("/", "127.0.0.1"));
  request.tls.pinned_certificates = {sha256_of(std::as_bytes(std::span("other", 5))),
                                     test_server_fingerprint()};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(out.bytes, "pinned bytes");
}

TEST(http_client_pinning, another_certificate_is_refused_before_the_request_is_sent) {
  test_server server(serve_body("secure"), server_tls_context());
  auto request = get_localhost(server, "/");
  request.tls.ca_file = pki().ca_file;  // it would chain fine: pinning overrides the CA check
  request.tls.pinned_certificates = {sha256_of(std::as_bytes(std::span("another", 7)))};
  collector out;
  const auto response = http_fetch_blocking(request, out.sink());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::certificate_not_pinned);
  EXPECT_NE(response.error().message().find("pinned"), std::string::npos);
  EXPECT_TRUE(server.requests().empty());
}

}  // namespace
}  // namespace lanrelay
