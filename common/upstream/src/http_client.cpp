#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/grammar/ci_string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// The transfer itself is libcurl's (its multi interface, driven by the caller's io_context: the
// sockets libcurl wants watched are waited on with Asio, its timeouts run on an Asio timer, and
// nothing blocks a thread). What stays here is our contract around it: one redirect at a time
// (limit, https->http refusal, host_address only for the original host), the deadlines for the
// response head and an idle body, the shared rate limits (libcurl's receiving is paused while a
// limiter is in debt), size bounds, resume semantics and errors written for administrators.

namespace lanrelay {

namespace net = boost::asio;
namespace urls = boost::urls;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

constexpr int max_redirects = 5;
// Body bytes handed to the sink per call at most; libcurl's receive buffer is this size too.
constexpr std::size_t body_chunk_size = 64 * 1024;
constexpr std::string_view user_agent = "lanrelay";
constexpr std::uint16_t default_socks_port = 1080;
// RFC 1929 and RFC 1928 carry these in one length byte.
constexpr std::size_t max_socks_field = 255;

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
      return "the proxy rejected the login (or wants one): check the authentication scheme and "
             "the credentials, the user name and password in the proxy URL "
             "(scheme://user:password@host:port) or, for negotiate, the Kerberos keytab or "
             "credential cache";
    case http_errc::proxy_auth_unsupported:
      return "the proxy accepts none of the offered authentication methods (HTTP proxies: set "
             "the scheme it asks for, basic, digest, ntlm or negotiate; SOCKS5: put "
             "user:password in the proxy URL if it requires a login)";
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
    case http_errc::tls_handshake_failed:
      return "the TLS handshake failed (no common protocol version or cipher, or the server "
             "does not speak TLS on this port)";
    case http_errc::proxy_tls_failed:
      return "TLS to the https:// proxy failed: its certificate is for another name than the "
             "proxy URL's host, or the handshake failed (it may not speak TLS on this port)";
    case http_errc::proxy_certificate_untrusted:
      return "the https:// proxy's TLS certificate is not trusted: it does not chain to a CA of "
             "the proxy's CA file ([upstream_proxy] ca_file, --proxy-ca-file) or, without one, "
             "of the system store, or it is expired";
    case http_errc::bad_proxy_ca_file:
      return "the proxy's CA file ([upstream_proxy] ca_file, --proxy-ca-file) cannot be read or "
             "holds no PEM certificate; check its path and permissions";
  }
  return "unknown lanrelay.http error " + std::to_string(static_cast<int>(value));
}


bool is_redirect(long status) {
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

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

// The parts of an http:// or https:// URL (or of a proxy URL) the client uses.
struct target {
  bool tls = false;
  std::string host;  // decoded; an IPv6 address without brackets
  bool host_is_address = false;
  bool host_is_v6 = false;
  std::uint16_t port = 0;
};

result<target> parse_authority(urls::url_view url, target t) {
  if (!url.has_authority() || url.encoded_host().empty()) {
    return http_errc::invalid_url;
  }
  switch (url.host_type()) {
    case urls::host_type::ipv4:
      t.host_is_address = true;
      break;
    case urls::host_type::ipv6:
      t.host_is_address = true;
      t.host_is_v6 = true;
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
  if (url.has_port() && !url.port().empty()) {
    if (url.port_number() == 0) {
      return http_errc::invalid_url;
    }
    t.port = url.port_number();
  } else if (t.port == 0) {
    t.port = t.tls ? 443 : 80;
  }
  return t;
}

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

// "host:port", "[v6]:port".
std::string host_port(std::string_view host, bool v6, std::uint16_t port) {
  return v6 ? "[" + std::string(host) + "]:" + std::to_string(port)
            : std::string(host) + ":" + std::to_string(port);
}

std::string host_port(const target& t) { return host_port(t.host, t.host_is_v6, t.port); }

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

enum class proxy_kind { http, https, socks5 };

struct proxy_endpoint {
  proxy_kind kind = proxy_kind::http;
  target hop;
  std::string curl_url;  // scheme://host:port, without the credentials
  bool has_credentials = false;
  std::string user;
  std::string password;
  proxy_auth_scheme auth = proxy_auth_scheme::basic;
  std::optional<std::filesystem::path> ca_file;  // https:// proxies
};

result<proxy_endpoint> parse_proxy(const proxy_settings& settings) {
  const urls::url_view url = settings.proxy;
  proxy_endpoint p;
  p.auth = settings.auth;
  p.ca_file = settings.ca_file;
  const auto scheme = url.scheme();
  target t;
  if (urls::grammar::ci_is_equal(scheme, "http")) {
    p.kind = proxy_kind::http;
    t.port = 80;
  } else if (urls::grammar::ci_is_equal(scheme, "https")) {
    p.kind = proxy_kind::https;
    t.tls = true;
    t.port = 443;
  } else if (urls::grammar::ci_is_equal(scheme, "socks5") ||
             urls::grammar::ci_is_equal(scheme, "socks5h")) {
    p.kind = proxy_kind::socks5;
    t.port = default_socks_port;
  } else {
    return http_errc::unsupported_scheme;
  }
  auto hop = parse_authority(url, t);
  if (!hop) {
    return hop.error();
  }
  p.hop = std::move(*hop);
  // Both SOCKS spellings let the proxy resolve names (curl's socks5h).
  const std::string scheme_text = p.kind == proxy_kind::http    ? "http://"
                                  : p.kind == proxy_kind::https ? "https://"
                                                                : "socks5h://";
  p.curl_url = scheme_text + host_port(p.hop);
  if (settings.address) {
    // A proxy learned by its address (a link-local one with the scope id of the interface it was
    // learned on): connect there. libcurl reads a numeric zone in the URL as the scope id.
    std::string host = settings.address->to_string();
    if (settings.address->is_v6()) {
      auto bare = settings.address->to_v6();
      const auto scope = bare.scope_id();
      bare.scope_id(0);
      host = "[" + bare.to_string() + (scope != 0 ? "%25" + std::to_string(scope) : "") + "]";
    }
    p.curl_url = scheme_text + host + ":" + std::to_string(p.hop.port);
  }
  if (url.has_userinfo()) {
    p.has_credentials = true;
    p.user = url.user();
    p.password = url.password();
    if (p.user.empty() && p.kind == proxy_kind::socks5) {
      return http_errc::invalid_url;
    }
    if (p.kind == proxy_kind::socks5 &&
        (p.user.size() > max_socks_field || p.password.size() > max_socks_field)) {
      return http_errc::invalid_url;
    }
  }
  return p;
}

// Which part of the way a failure belongs to, for describe_fetch_error.
enum class hop { proxy_connect, proxy_login, proxy_tls, tunnel, origin_connect, origin_tls, origin };

// ---------------------------------------------------------------------------------------------
// libcurl

void global_init() {
  static const bool initialised = [] {
    if (const auto rc = ::curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      spdlog::error("event=curl_init_failed error=\"{}\"", ::curl_easy_strerror(rc));
      std::terminate();
    }
    return true;
  }();
  (void)initialised;
}

struct easy_cleanup {
  void operator()(CURL* easy) const noexcept { ::curl_easy_cleanup(easy); }
};
struct multi_cleanup {
  void operator()(CURLM* multi) const noexcept { ::curl_multi_cleanup(multi); }
};
struct slist_free {
  void operator()(curl_slist* list) const noexcept { ::curl_slist_free_all(list); }
};
using easy_ptr = std::unique_ptr<CURL, easy_cleanup>;
using multi_ptr = std::unique_ptr<CURLM, multi_cleanup>;
using slist_ptr = std::unique_ptr<curl_slist, slist_free>;

slist_ptr append(slist_ptr list, const std::string& line) {
  curl_slist* grown = ::curl_slist_append(list.get(), line.c_str());
  if (grown == nullptr) {
    throw std::bad_alloc();
  }
  (void)list.release();
  return slist_ptr(grown);
}

// The PEM file tls_options::ca_file names must hold at least one certificate; libcurl would only
// say that the handshake failed.
bool readable_ca_file(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    return false;
  }
  X509* cert = ::PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  ::ERR_clear_error();
  if (cert == nullptr) {
    return false;
  }
  ::X509_free(cert);
  return true;
}

// The fields of one response head the client reads (the last head libcurl passes is the final
// response's: interim 1xx and a proxy's 407 before a retry come first).
struct response_head {
  long status = 0;
  bool complete = false;
  std::optional<std::uint64_t> content_length;
  std::string content_range;
  std::string etag;
  std::string last_modified;
  std::string location;
  std::optional<std::string> retry_after;
};

struct socket_watch {
  socket_watch(const net::any_io_executor& executor, int duplicate, ino_t socket_inode)
      : descriptor(executor, duplicate), inode(socket_inode) {}
  // A duplicate of libcurl's descriptor: libcurl may close its own at any time (its resolver's
  // socket pair, a failed connect) and reuse the number; the duplicate stays the same socket.
  net::posix::stream_descriptor descriptor;
  ino_t inode;
  int wanted = CURL_POLL_NONE;  // what libcurl waits for
  bool reading = false;         // an async_wait is outstanding
  bool writing = false;
  std::uint64_t generation = 0;
};

ino_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// One fetch: a multi handle of its own with one easy handle per hop of a redirect chain, all on
// the fetch's strand. Asynchronous handlers hold a shared_ptr and do nothing once `closed`.
class transfer : public std::enable_shared_from_this<transfer> {
 public:
  using clock = std::chrono::steady_clock;

  transfer(net::any_io_executor strand, const fetch_request& request, body_sink& sink,
           const std::optional<proxy_endpoint>& proxy)
      : strand_(std::move(strand)),
        request_(request),
        sink_(sink),
        proxy_(proxy),
        curl_timer_(strand_),
        deadline_timer_(strand_),
        pace_timer_(strand_),
        signal_(strand_),
        multi_(::curl_multi_init()) {
    if (!multi_) {
      throw std::bad_alloc();
    }
    ::curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &transfer::on_socket);
    ::curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this);
    ::curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &transfer::on_timer);
    ::curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this);
    chunk_ = body_chunk_size;
    for (const auto& limit : request_.rate_limits) {
      if (limit) {
        // About a tenth of a second of the slowest limit per receive: the transfer flows evenly.
        // An unlimited one (0, for now: bandwidth windows may limit it later) leaves it.
        const auto rate = limit->bytes_per_second();
        chunk_ = rate == 0 ? chunk_
                           : std::min<std::size_t>(chunk_, static_cast<std::size_t>(
                                                               std::max<std::uint64_t>(rate / 10, 4096)));
      }
    }
  }

  transfer(const transfer&) = delete;
  transfer& operator=(const transfer&) = delete;

  ~transfer() { close(); }

  struct hop_result {
    error_code error;
    response_head head;
    std::uint64_t body_bytes = 0;
    bool range_honoured = true;
    std::optional<std::uint64_t> total_size;
    std::string peer;
  };

  // One request to `url` (no redirect followed); `pin` connects there instead of resolving.
  // `same_host`: the URL's host is the original request's.
  net::awaitable<hop_result> run(const urls::url& url, const target& t,
                                 const std::optional<net::ip::address>& pin, bool same_host) {
    reset_hop(t);
    if (auto ec = configure(url, t, pin, same_host); ec) {
      result_.error = ec;
      co_return std::move(result_);
    }
    if (::curl_multi_add_handle(multi_.get(), easy_.get()) != CURLM_OK) {
      result_.error = make_error_code(boost::system::errc::not_enough_memory);
      co_return std::move(result_);
    }
    added_ = true;
    phase_ = phase::connecting;
    // libcurl asks for its first timeout (0: start now) from curl_multi_add_handle.
    while (!finished_) {
      // Wakes when the hop finishes (signal_ cancelled) or the caller cancels the fetch.
      (void)co_await signal_.async_wait(use_tuple);
      if (finished_) {
        break;
      }
      auto state = co_await net::this_coro::cancellation_state;
      if (state.cancelled() != net::cancellation_type::none) {
        spdlog::debug("event=http_fetch_cancelled url={}", url.buffer());
        close();
        result_.error = net::error::operation_aborted;
        co_return std::move(result_);
      }
    }
    co_return std::move(result_);
  }

  // Removes every handle and stops every wait; the multi handle can no longer be used.
  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    remove_easy();
    for (auto& [fd, watch] : watches_) {
      (void)fd;
      error_code ignored;
      watch->descriptor.close(ignored);
    }
    watches_.clear();
    curl_timer_.cancel();
    deadline_timer_.cancel();
    pace_timer_.cancel();
    signal_.cancel();
    multi_.reset();
  }

 private:
  enum class phase { connecting, head, body, done };

  void reset_hop(const target& t) {
    remove_easy();
    origin_ = t;
    result_ = hop_result{};
    finished_ = false;
    paused_ = false;
    pacing_ = false;
    resume_at_ = clock::time_point{};
    position_ = 0;
    skip_ = 0;
    body_allowed_ = false;
    pin_rejected_ = false;
    head_ = response_head{};
    signal_.expires_at(clock::time_point::max());
  }

  void remove_easy() {
    if (easy_ && added_ && multi_) {
      ::curl_multi_remove_handle(multi_.get(), easy_.get());
    }
    added_ = false;
    easy_.reset();
    headers_.reset();
    connect_to_.reset();
  }

  error_code configure(const urls::url& url, const target& t,
                       const std::optional<net::ip::address>& pin, bool same_host) {
    easy_.reset(::curl_easy_init());
    if (!easy_) {
      return make_error_code(boost::system::errc::not_enough_memory);
    }
    CURL* e = easy_.get();
    error_buffer_[0] = '\0';
    const std::string text(url.buffer());
    ::curl_easy_setopt(e, CURLOPT_URL, text.c_str());
    ::curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    ::curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    ::curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    ::curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_buffer_.data());
    ::curl_easy_setopt(e, CURLOPT_USERAGENT, std::string(user_agent).c_str());
    ::curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    ::curl_easy_setopt(e, CURLOPT_BUFFERSIZE, static_cast<long>(chunk_));
    ::curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                       static_cast<long>(std::max<std::int64_t>(request_.timeouts.connect.count(), 1)));
    ::curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    ::curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    ::curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    ::curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &transfer::on_header);
    ::curl_easy_setopt(e, CURLOPT_HEADERDATA, this);
    ::curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &transfer::on_write);
    ::curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
    ::curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &transfer::on_prereq);
    ::curl_easy_setopt(e, CURLOPT_PREREQDATA, this);
    if (request_.offset > 0 || (request_.range_length && *request_.range_length > 0)) {
      // CURLOPT_RANGE, not RESUME_FROM: a server that ignores the range is not an error here.
      const std::string range =
          std::to_string(request_.offset) + "-" +
          (request_.range_length && *request_.range_length > 0
               ? std::to_string(request_.offset + *request_.range_length - 1)
               : std::string());
      ::curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());
    }
    slist_ptr headers;
    headers = append(std::move(headers), "Accept-Encoding: identity");
    if (request_.if_none_match) {
      headers = append(std::move(headers), "If-None-Match: " + *request_.if_none_match);
    }
    if (request_.if_modified_since) {
      headers = append(std::move(headers), "If-Modified-Since: " + *request_.if_modified_since);
    }
    if (request_.bearer_token && same_host) {
      headers = append(std::move(headers), "Authorization: Bearer " + *request_.bearer_token);
    }
    if (request_.post) {
      ::curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
      ::curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
    }
    headers_ = std::move(headers);
    ::curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_.get());

    if (auto ec = configure_tls(e, t); ec) {
      return ec;
    }
    if (proxy_) {
      if (auto ec = configure_proxy(e); ec) {
        return ec;
      }
    } else {
      // Never a proxy from the environment (http_proxy, https_proxy): only configured ones.
      ::curl_easy_setopt(e, CURLOPT_PROXY, "");
      if (pin) {
        std::string address = pin->to_string();
        long scope = 0;
        if (pin->is_v6()) {
          auto v6 = pin->to_v6();
          scope = static_cast<long>(v6.scope_id());
          v6.scope_id(0);
          address = "[" + v6.to_string() + "]";
        }
        const std::string rule = host_port(t.host, t.host_is_v6, t.port) + ":" + address + ":" +
                                 std::to_string(t.port);
        connect_to_ = append(nullptr, rule);
        ::curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to_.get());
        if (scope != 0) {
          ::curl_easy_setopt(e, CURLOPT_ADDRESS_SCOPE, scope);
        }
      }
    }
    return {};
  }

  error_code configure_tls(CURL* e, const target& t) {
    ::curl_easy_setopt(e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    const auto& tls = request_.tls;
    if (!tls.pinned_certificates.empty()) {
      // Trusted for what it is: the fingerprint is the whole check (verify_pinned), done in the
      // handshake, before a request byte is sent. No session reuse: a resumed session would
      // skip the check.
      ::curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
      ::curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
      ::curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
      ::curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &transfer::on_ssl_context);
      ::curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, this);
    } else {
      ::curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
      ::curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
      if (!proxy_ || proxy_->kind != proxy_kind::https) {
        // OpenSSL checks the name (or address) too, so that a mismatch has its own verdict;
        // libcurl's check follows. (Not with an https:// proxy: its TLS uses this context too.)
        ::curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &transfer::on_ssl_context);
        ::curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, this);
      }
      if (tls.ca_file && t.tls) {
        if (!readable_ca_file(*tls.ca_file)) {
          spdlog::debug("event=ca_file_error path={}", tls.ca_file->string());
          return http_errc::bad_ca_file;
        }
        ::curl_easy_setopt(e, CURLOPT_CAINFO, tls.ca_file->c_str());
        ::curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
      }
    }
    return {};
  }

  error_code configure_proxy(CURL* e) {
    const proxy_endpoint& p = *proxy_;
    ::curl_easy_setopt(e, CURLOPT_PROXY, p.curl_url.c_str());
    ::curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    switch (p.kind) {
      case proxy_kind::http:
        ::curl_easy_setopt(e, CURLOPT_PROXYTYPE, static_cast<long>(CURLPROXY_HTTP));
        break;
      case proxy_kind::https:
        ::curl_easy_setopt(e, CURLOPT_PROXYTYPE, static_cast<long>(CURLPROXY_HTTPS));
        ::curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
        ::curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
        ::curl_easy_setopt(e, CURLOPT_PROXY_SSLVERSION,
                           static_cast<long>(CURL_SSLVERSION_TLSv1_2));
        if (p.ca_file) {
          if (!readable_ca_file(*p.ca_file)) {
            spdlog::debug("event=proxy_ca_file_error path={}", p.ca_file->string());
            return http_errc::bad_proxy_ca_file;
          }
          ::curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, p.ca_file->c_str());
          ::curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, nullptr);
        }
        break;
      case proxy_kind::socks5:
        ::curl_easy_setopt(e, CURLOPT_PROXYTYPE, static_cast<long>(CURLPROXY_SOCKS5_HOSTNAME));
        ::curl_easy_setopt(e, CURLOPT_SOCKS5_AUTH,
                           p.has_credentials ? CURLAUTH_BASIC : CURLAUTH_NONE);
        if (p.has_credentials) {
          ::curl_easy_setopt(e, CURLOPT_PROXYUSERNAME, p.user.c_str());
          ::curl_easy_setopt(e, CURLOPT_PROXYPASSWORD, p.password.c_str());
        }
        return {};
    }
    // Tunnel https:// targets with CONNECT; http:// ones are asked for in absolute form.
    switch (p.auth) {
      case proxy_auth_scheme::basic:
        ::curl_easy_setopt(e, CURLOPT_PROXYAUTH, CURLAUTH_BASIC);
        break;
      case proxy_auth_scheme::digest:
        ::curl_easy_setopt(e, CURLOPT_PROXYAUTH, CURLAUTH_DIGEST);
        break;
      case proxy_auth_scheme::ntlm:
        ::curl_easy_setopt(e, CURLOPT_PROXYAUTH, CURLAUTH_NTLM);
        break;
      case proxy_auth_scheme::negotiate:
        // Kerberos from the process's credentials (KRB5_CLIENT_KTNAME's keytab or the cache):
        // libcurl needs a (blank) user name to try it at all.
        ::curl_easy_setopt(e, CURLOPT_PROXYAUTH, CURLAUTH_NEGOTIATE);
        ::curl_easy_setopt(e, CURLOPT_PROXYUSERPWD, ":");
        return {};
    }
    if (p.has_credentials) {
      ::curl_easy_setopt(e, CURLOPT_PROXYUSERNAME, p.user.c_str());
      ::curl_easy_setopt(e, CURLOPT_PROXYPASSWORD, p.password.c_str());
    }
    return {};
  }

  // ------------------------------------------------------------------ libcurl's callbacks

  static CURLcode on_ssl_context(CURL*, void* ssl_ctx, void* self_ptr) {
    auto* self = static_cast<transfer*>(self_ptr);
    auto* context = static_cast<SSL_CTX*>(ssl_ctx);
    if (!self->request_.tls.pinned_certificates.empty()) {
      // Replaces the chain verification: the leaf certificate must be one of the pins.
      ::SSL_CTX_set_cert_verify_callback(context, &transfer::verify_pinned, self);
      return CURLE_OK;
    }
    X509_VERIFY_PARAM* param = ::SSL_CTX_get0_param(context);
    const std::string& host = self->origin_.host;
    if (self->origin_.host_is_address) {
      if (::X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
        return CURLE_SSL_CONNECT_ERROR;
      }
    } else {
      ::X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (::X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1) {
        return CURLE_SSL_CONNECT_ERROR;
      }
    }
    return CURLE_OK;
  }

  static int verify_pinned(X509_STORE_CTX* store, void* self_ptr) {
    auto* self = static_cast<transfer*>(self_ptr);
    X509* leaf = ::X509_STORE_CTX_get0_cert(store);
    std::optional<sha256_digest> presented;
    if (leaf != nullptr) {
      unsigned char* der = nullptr;
      const int length = ::i2d_X509(leaf, &der);
      if (length > 0) {
        presented = sha256_of(std::as_bytes(std::span(der, static_cast<std::size_t>(length))));
        ::OPENSSL_free(der);
      }
    }
    const auto& pins = self->request_.tls.pinned_certificates;
    if (presented && std::find(pins.begin(), pins.end(), *presented) != pins.end()) {
      ::X509_STORE_CTX_set_error(store, X509_V_OK);
      return 1;
    }
    spdlog::debug("event=certificate_not_pinned peer={} sha256={}", host_port(self->origin_),
                  presented ? to_hex(*presented) : std::string("none"));
    self->pin_rejected_ = true;
    ::X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
  }

  static int on_prereq(void* self_ptr, char*, char*, int, int) {
    auto* self = static_cast<transfer*>(self_ptr);
    // Connected (and tunnelled, and TLS done): the response head deadline starts.
    self->phase_ = phase::head;
    self->arm_deadline(self->request_.timeouts.response_head);
    return CURL_PREREQFUNC_OK;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<transfer*>(self_ptr);
    const std::size_t length = size * count;
    if (!self->header_line(std::string_view(data, length))) {
      return 0;
    }
    return length;
  }

  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<transfer*>(self_ptr);
    const std::size_t length = size * count;
    switch (self->body(std::as_bytes(std::span(data, length)))) {
      case taken::all:
        return length;
      case taken::later:
        return CURL_WRITEFUNC_PAUSE;  // libcurl keeps the bytes and offers them again
      case taken::failed:
        break;
    }
    return 0;  // CURLE_WRITE_ERROR; the reason is in result_.error
  }

  static int on_socket(CURL*, curl_socket_t fd, int what, void* self_ptr, void*) {
    static_cast<transfer*>(self_ptr)->watch(fd, what);
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* self_ptr) {
    static_cast<transfer*>(self_ptr)->schedule(timeout_ms);
    return 0;
  }

  // ------------------------------------------------------------------ the response

  bool header_line(std::string_view line) {
    if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
      // A new head (interim, a proxy's 407 before libcurl retries with credentials, the final).
      head_ = response_head{};
      const auto space = line.find(' ');
      if (space != std::string_view::npos) {
        head_.status = static_cast<long>(
            parse_decimal(trim(line.substr(space + 1, 3))).value_or(0));
      }
      return true;
    }
    const std::string_view bare = trim(line);
    if (bare.empty()) {
      head_.complete = true;
      if (head_.status >= 200) {
        return final_head();
      }
      return true;
    }
    const auto colon = bare.find(':');
    if (colon == std::string_view::npos) {
      return true;
    }
    const std::string_view name = bare.substr(0, colon);
    const std::string_view value = trim(bare.substr(colon + 1));
    const auto is = [&name](std::string_view field) {
      return urls::grammar::ci_is_equal(name, field);
    };
    if (is("content-length")) {
      head_.content_length = parse_decimal(value);
    } else if (is("content-range")) {
      head_.content_range = std::string(value);
    } else if (is("etag")) {
      head_.etag = std::string(value);
    } else if (is("last-modified")) {
      head_.last_modified = std::string(value);
    } else if (is("location")) {
      head_.location = std::string(value);
    } else if (is("retry-after")) {
      head_.retry_after = std::string(value);
    }
    return true;
  }

  // The end of a head with a final status: decides what becomes of the body.
  bool final_head() {
    const long status = head_.status;
    body_allowed_ = false;
    position_ = 0;
    skip_ = 0;
    result_.range_honoured = true;
    result_.total_size.reset();
    if (status == 416) {
      if (const auto range = detail::parse_content_range(head_.content_range)) {
        result_.total_size = range->complete_length;
      }
      return true;
    }
    if (status != 200 && status != 206) {
      body_allowed_ = request_.every_status_body && !is_redirect(status) &&
                      !(status == 407 && proxy_);
      return true;
    }
    std::optional<std::uint64_t> expected_body;
    if (status == 206) {
      const auto range = detail::parse_content_range(head_.content_range);
      if (!range || !range->has_range) {
        return fail(http_errc::protocol_error);
      }
      if (range->first != request_.offset) {
        return fail(http_errc::range_mismatch);
      }
      expected_body = range->last - range->first + 1;
      if (head_.content_length && *head_.content_length != *expected_body) {
        return fail(http_errc::protocol_error);
      }
      result_.total_size = range->complete_length;
      position_ = request_.offset;
    } else {
      result_.total_size = head_.content_length;
      result_.range_honoured = request_.offset == 0;
      skip_ = request_.offset;
    }
    const std::optional<std::uint64_t> announced =
        result_.total_size ? result_.total_size
        : expected_body    ? std::optional<std::uint64_t>(request_.offset + *expected_body)
                           : std::nullopt;
    if (request_.max_bytes && announced && *announced > *request_.max_bytes) {
      return fail(http_errc::too_large);
    }
    body_allowed_ = true;
    phase_ = phase::body;
    arm_deadline(request_.timeouts.idle_body);
    return true;
  }

  enum class taken { all, later, failed };

  taken body(std::span<const std::byte> data) {
    if (!body_allowed_) {
      return taken::all;  // the body of a redirect, an error page or a 304: not the caller's
    }
    if (clock::now() < resume_at_) {
      // The rate limits are in debt: libcurl pauses receiving until resume_at_ (after_action).
      paused_ = true;
      return taken::later;
    }
    position_ += data.size();
    if (request_.max_bytes && position_ > *request_.max_bytes) {
      fail(http_errc::too_large);
      return taken::failed;
    }
    const std::size_t got = data.size();
    if (skip_ > 0) {
      const auto dropped = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, got));
      skip_ -= dropped;
      data = data.subspan(dropped);
    }
    while (!data.empty()) {
      const auto piece = data.first(std::min(data.size(), body_chunk_size));
      if (auto sunk = sink_(piece); !sunk) {
        fail(sunk.error());
        return taken::failed;
      }
      result_.body_bytes += piece.size();
      data = data.subspan(piece.size());
    }
    idle_deadline_ = clock::now() + request_.timeouts.idle_body;
    std::chrono::nanoseconds wait{0};
    for (const auto& limit : request_.rate_limits) {
      if (limit) {
        wait = std::max(wait, limit->take(got));
      }
    }
    if (wait > std::chrono::nanoseconds::zero()) {
      resume_at_ = clock::now() + wait;
    }
    return taken::all;
  }

  bool fail(error_code ec) {
    if (!result_.error) {
      result_.error = ec;
    }
    return false;
  }

  // ------------------------------------------------------------------ driving libcurl

  void watch(curl_socket_t fd, int what) {
    if (closed_) {
      return;
    }
    auto it = watches_.find(fd);
    if (what == CURL_POLL_REMOVE) {
      if (it != watches_.end()) {
        error_code ignored;
        it->second->descriptor.close(ignored);
        watches_.erase(it);
      }
      return;
    }
    const ino_t inode = inode_of(fd);
    if (it != watches_.end() && it->second->inode != inode) {
      // libcurl closed the socket it had under this number and opened another.
      error_code ignored;
      it->second->descriptor.close(ignored);
      watches_.erase(it);
      it = watches_.end();
    }
    if (it == watches_.end()) {
      const int duplicate = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (duplicate < 0) {
        spdlog::warn("event=http_socket_dup_failed error=\"{}\"", std::strerror(errno));
        return;
      }
      auto created = std::make_unique<socket_watch>(strand_, duplicate, inode);
      created->generation = ++generations_;
      it = watches_.emplace(fd, std::move(created)).first;
    }
    it->second->wanted = what;
    arm(fd, *it->second);
  }

  void arm(curl_socket_t fd, socket_watch& w) {
    const bool want_read = (w.wanted & CURL_POLL_IN) != 0;
    const bool want_write = (w.wanted & CURL_POLL_OUT) != 0;
    if (want_read && !w.reading) {
      w.reading = true;
      w.descriptor.async_wait(
          net::posix::descriptor_base::wait_read,
          [self = shared_from_this(), fd, generation = w.generation](const error_code& ec) {
            self->on_ready(fd, generation, CURL_CSELECT_IN, ec);
          });
    }
    if (want_write && !w.writing) {
      w.writing = true;
      w.descriptor.async_wait(
          net::posix::descriptor_base::wait_write,
          [self = shared_from_this(), fd, generation = w.generation](const error_code& ec) {
            self->on_ready(fd, generation, CURL_CSELECT_OUT, ec);
          });
    }
  }

  void on_ready(curl_socket_t fd, std::uint64_t generation, int event, const error_code& ec) {
    if (closed_) {
      return;
    }
    auto it = watches_.find(fd);
    if (it == watches_.end() || it->second->generation != generation) {
      return;  // a wait of a socket libcurl no longer has
    }
    if (event == CURL_CSELECT_IN) {
      it->second->reading = false;
    } else {
      it->second->writing = false;
    }
    if (ec == net::error::operation_aborted) {
      return;
    }
    act(fd, ec ? CURL_CSELECT_ERR : event);
    // libcurl still wants this socket: wait again.
    it = watches_.find(fd);
    if (!closed_ && it != watches_.end() && it->second->generation == generation) {
      arm(fd, *it->second);
    }
  }

  void schedule(long timeout_ms) {
    if (closed_) {
      return;
    }
    if (timeout_ms < 0) {
      curl_timer_.cancel();
      return;
    }
    // Never from inside libcurl's call: from the strand, after it returns.
    curl_timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    curl_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec && !self->closed_) {
        self->act(CURL_SOCKET_TIMEOUT, 0);
      }
    });
  }

  void act(curl_socket_t fd, int events) {
    int running = 0;
    ::curl_multi_socket_action(multi_.get(), fd, events, &running);
    after_action();
  }

  // After libcurl ran: a finished transfer, or a pause the rate limits owe.
  void after_action() {
    if (closed_ || finished_) {
      return;
    }
    int queued = 0;
    while (CURLMsg* message = ::curl_multi_info_read(multi_.get(), &queued)) {
      if (message->msg == CURLMSG_DONE && message->easy_handle == easy_.get()) {
        finish(message->data.result);
        return;
      }
    }
    if (paused_ && !pacing_ && added_) {
      // Our write callback paused the transfer: the rate limits are in debt until resume_at_.
      pacing_ = true;
      pace_timer_.expires_at(resume_at_);
      pace_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (ec || self->closed_ || self->finished_ || !self->paused_) {
          return;
        }
        self->pacing_ = false;
        self->paused_ = false;
        // The idle deadline did not run while paused.
        self->idle_deadline_ = clock::now() + self->request_.timeouts.idle_body;
        // Offers the held bytes again right away (and may pause anew).
        ::curl_easy_pause(self->easy_.get(), CURLPAUSE_CONT);
        self->after_action();
      });
    }
  }

  // Our deadlines (libcurl's own covers connecting): the response head, then the idle body.
  // Body bytes only move idle_deadline_ on; the wait re-checks it when it fires.
  void arm_deadline(std::chrono::milliseconds after) {
    idle_deadline_ = clock::now() + after;
    wait_deadline(idle_deadline_);
  }

  void wait_deadline(clock::time_point at) {
    deadline_timer_.expires_at(at);  // cancels the previous wait
    deadline_timer_.async_wait(
        [self = shared_from_this()](const error_code& ec) { self->on_deadline(ec); });
  }

  void on_deadline(const error_code& ec) {
    if (ec || closed_ || finished_) {
      return;
    }
    if (paused_) {
      // The rate limits hold the transfer: the idle deadline restarts when they release it.
      wait_deadline(clock::now() + request_.timeouts.idle_body);
      return;
    }
    if (clock::now() < idle_deadline_) {
      wait_deadline(idle_deadline_);
      return;
    }
    const http_errc which =
        phase_ == phase::body ? http_errc::body_timeout : http_errc::head_timeout;
    spdlog::debug("event=http_deadline origin={} error=\"{}\"", host_port(origin_),
                  make_error_code(which).message());
    result_.error = which;
    complete();
  }

  void finish(CURLcode code) {
    CURL* e = easy_.get();
    char* ip = nullptr;
    long port = 0;
    if (::curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr &&
        ip[0] != '\0') {
      ::curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &port);
      const std::string_view address(ip);
      result_.peer = host_port(address, address.find(':') != std::string_view::npos,
                               static_cast<std::uint16_t>(port));
    }
    if (code != CURLE_OK) {
      if (!result_.error || (code != CURLE_WRITE_ERROR && code != CURLE_ABORTED_BY_CALLBACK)) {
        classify(code);
      }
    } else if (proxy_ && proxy_->kind != proxy_kind::socks5 && !origin_.tls &&
               head_.status == 407) {
      // The proxy answered an absolute-form request itself: it wants (other) credentials.
      result_.error = http_errc::proxy_auth_failed;
    }
    result_.head = std::move(head_);
    complete();
  }

  void complete() {
    finished_ = true;
    phase_ = phase::done;
    remove_easy();
    deadline_timer_.cancel();
    pace_timer_.cancel();
    curl_timer_.cancel();
    signal_.cancel();
  }

  error_code os_error(CURL* e, error_code otherwise) {
    long os = 0;
    ::curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os);
    return os != 0 ? error_code(static_cast<int>(os), boost::system::system_category())
                   : otherwise;
  }

  // What libcurl's failure means for the caller, and at which hop.
  void classify(CURLcode code) {
    CURL* e = easy_.get();
    spdlog::debug("event=http_transfer_failed origin={} curl_code={} error=\"{}\"",
                  host_port(origin_), static_cast<int>(code),
                  error_buffer_[0] != '\0' ? error_buffer_.data() : ::curl_easy_strerror(code));
    const bool via_proxy = proxy_.has_value();
    long connect_code = 0;
    ::curl_easy_getinfo(e, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    error_code ec;
    if (connect_code != 0 && connect_code / 100 != 2) {
      // The proxy answered CONNECT with something else than 2xx. Only the proxy answers
      // CONNECT: 401 (tinyproxy's answer) means the same as 407 here.
      spdlog::debug("event=proxy_connect_refused target={} status={}", host_port(origin_),
                    connect_code);
      result_.error = connect_code == 407 || connect_code == 401
                          ? http_errc::proxy_auth_failed
                          : http_errc::proxy_refused;
      return;
    }
    switch (code) {
      case CURLE_COULDNT_RESOLVE_PROXY:
        ec = net::error::host_not_found;
        break;
      case CURLE_COULDNT_RESOLVE_HOST:
        ec = net::error::host_not_found;
        break;
      case CURLE_COULDNT_CONNECT:
        ec = os_error(e, net::error::connection_refused);
        break;
      case CURLE_OPERATION_TIMEDOUT:
        ec = phase_ == phase::body   ? error_code(http_errc::body_timeout)
             : phase_ == phase::head ? error_code(http_errc::head_timeout)
                                     : error_code(http_errc::connect_timeout);
        break;
      case CURLE_PROXY:
        ec = socks_error(e);
        break;
      case CURLE_AUTH_ERROR:
      case CURLE_LOGIN_DENIED:
        ec = via_proxy ? http_errc::proxy_auth_failed : http_errc::protocol_error;
        break;
      case CURLE_SSL_CACERT_BADFILE:
        ec = http_errc::bad_ca_file;
        break;
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
        tls_error(e, code, ec);
        break;
      case CURLE_PARTIAL_FILE:
      case CURLE_GOT_NOTHING:
        ec = http_errc::incomplete_response;
        break;
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
        ec = os_error(e, http_errc::incomplete_response);
        if (phase_ == phase::connecting && via_proxy) {
        }
        break;
      case CURLE_WRITE_ERROR:
      case CURLE_ABORTED_BY_CALLBACK:
        ec = result_.error ? result_.error : error_code(http_errc::protocol_error);
        break;
      case CURLE_URL_MALFORMAT:
        ec = http_errc::invalid_url;
        break;
      case CURLE_UNSUPPORTED_PROTOCOL:  // also an HTTP/0.9 answer (no status line)
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_BAD_CONTENT_ENCODING:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_HTTP3:
      case CURLE_RANGE_ERROR:
      case CURLE_TOO_MANY_REDIRECTS:
        ec = http_errc::protocol_error;
        if (phase_ == phase::connecting && via_proxy) {
        }
        break;
      case CURLE_OUT_OF_MEMORY:
        ec = make_error_code(boost::system::errc::not_enough_memory);
        break;
      default:
        ec = http_errc::protocol_error;
        break;
    }
    result_.error = ec;
  }

  void tls_error(CURL* e, CURLcode code, error_code& ec) {
    if (pin_rejected_) {
      ec = http_errc::certificate_not_pinned;
      return;
    }
    const bool proxy_tls = proxy_ && proxy_->kind == proxy_kind::https;
    long connect_code = 0;
    ::curl_easy_getinfo(e, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    if (proxy_tls && connect_code == 0 && (!origin_.tls || phase_ == phase::connecting)) {
      long proxy_verdict = X509_V_OK;
      ::curl_easy_getinfo(e, CURLINFO_PROXY_SSL_VERIFYRESULT, &proxy_verdict);
      // Not through the proxy yet: the failure is the proxy's TLS.
      if (proxy_verdict != X509_V_OK || code != CURLE_PEER_FAILED_VERIFICATION ||
          !origin_.tls) {
        ec = proxy_verdict != X509_V_OK && proxy_verdict != X509_V_ERR_HOSTNAME_MISMATCH &&
                     proxy_verdict != X509_V_ERR_IP_ADDRESS_MISMATCH
                 ? http_errc::proxy_certificate_untrusted
                 : http_errc::proxy_tls_failed;
        return;
      }
    }
    long verdict = X509_V_OK;
    ::curl_easy_getinfo(e, CURLINFO_SSL_VERIFYRESULT, &verdict);
    if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      ec = http_errc::certificate_name_mismatch;
    } else if (verdict != X509_V_OK) {
      ec = http_errc::certificate_untrusted;
    } else if (code == CURLE_PEER_FAILED_VERIFICATION) {
      // The chain is trusted; libcurl's own host name check failed.
      ec = http_errc::certificate_name_mismatch;
    } else {
      ec = http_errc::tls_handshake_failed;
    }
  }

  static error_code socks_error(CURL* e) {
    long detail = CURLPX_OK;
    ::curl_easy_getinfo(e, CURLINFO_PROXY_ERROR, &detail);
    switch (static_cast<CURLproxycode>(detail)) {
      case CURLPX_NO_AUTH:
        return http_errc::proxy_auth_unsupported;
      case CURLPX_USER_REJECTED:
        return http_errc::proxy_auth_failed;
      case CURLPX_REPLY_NOT_ALLOWED:
        return http_errc::socks_not_allowed;
      case CURLPX_REPLY_HOST_UNREACHABLE:
      case CURLPX_REPLY_NETWORK_UNREACHABLE:
      case CURLPX_REPLY_TTL_EXPIRED:
        return http_errc::socks_host_unreachable;
      case CURLPX_REPLY_CONNECTION_REFUSED:
        return http_errc::socks_connection_refused;
      case CURLPX_REPLY_GENERAL_SERVER_FAILURE:
      case CURLPX_REPLY_COMMAND_NOT_SUPPORTED:
      case CURLPX_REPLY_ADDRESS_TYPE_NOT_SUPPORTED:
      case CURLPX_REPLY_UNASSIGNED:
      case CURLPX_REQUEST_FAILED:
        return http_errc::socks_failed;
      case CURLPX_LONG_HOSTNAME:
      case CURLPX_LONG_PASSWD:
      case CURLPX_LONG_USER:
        return http_errc::invalid_url;
      case CURLPX_RESOLVE_HOST:
        return net::error::host_not_found;
      default:
        return http_errc::proxy_protocol_error;
    }
  }

  net::any_io_executor strand_;
  const fetch_request& request_;
  body_sink& sink_;
  const std::optional<proxy_endpoint>& proxy_;
  net::steady_timer curl_timer_;      // libcurl's timeout
  net::steady_timer deadline_timer_;  // ours: response head, idle body
  net::steady_timer pace_timer_;      // the end of a rate-limit pause
  net::steady_timer signal_;          // cancelled when the hop is finished
  multi_ptr multi_;
  easy_ptr easy_;
  slist_ptr headers_;
  slist_ptr connect_to_;
  std::array<char, CURL_ERROR_SIZE> error_buffer_{};
  std::map<curl_socket_t, std::unique_ptr<socket_watch>> watches_;
  std::uint64_t generations_ = 0;
  target origin_;
  hop_result result_;
  response_head head_;
  phase phase_ = phase::connecting;
  std::size_t chunk_ = body_chunk_size;
  bool added_ = false;
  bool finished_ = false;
  bool closed_ = false;
  bool paused_ = false;
  bool body_allowed_ = false;
  bool pin_rejected_ = false;
  bool pacing_ = false;              // pace_timer_ runs until resume_at_
  clock::time_point resume_at_{};    // the rate limits' debt is paid then
  clock::time_point idle_deadline_{};
  std::uint64_t position_ = 0;  // in the item, of the next body byte
  std::uint64_t skip_ = 0;      // bytes of a 200 the sink must not see
};

// The caller's header values go into the request as they are; a line break would inject fields.
bool header_values_are_safe(const fetch_request& request) {
  const auto safe = [](const std::optional<std::string>& value) {
    return !value || !has_control_characters(*value);
  };
  return safe(request.if_none_match) && safe(request.if_modified_since) &&
         safe(request.bearer_token);
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
  global_init();
  auto state = std::make_shared<transfer>(co_await net::this_coro::executor, request, sink, proxy);
  // The transfer refers to this frame's request and sink: however the frame ends (an exception
  // from the sink included), nothing of it may run afterwards.
  struct closer {
    transfer& t;
    ~closer() { t.close(); }
  } close_on_exit{*state};
  urls::url url = request.url;
  url.remove_fragment();
  for (int redirects = 0;; ++redirects) {
    const auto t = parse_target(url);
    if (!t) {
      co_return t.error();
    }
    const bool same_host = t->host == original->host;
    std::optional<net::ip::address> pin;
    if (!proxy && request.host_address && same_host) {
      pin = request.host_address;
    }
    auto outcome = co_await state->run(url, *t, pin, same_host);
    if (outcome.error) {
      co_return outcome.error;
    }
    const long status = outcome.head.status;
    if (!is_redirect(status)) {
      fetch_response response;
      response.status = static_cast<unsigned>(status);
      response.body_bytes = outcome.body_bytes;
      response.content_length = outcome.head.content_length;
      response.total_size = outcome.total_size;
      response.etag = std::move(outcome.head.etag);
      response.last_modified = std::move(outcome.head.last_modified);
      if (outcome.head.retry_after) {
        response.retry_after = detail::parse_retry_after(*outcome.head.retry_after,
                                                         std::chrono::system_clock::now());
      }
      response.range_honoured = outcome.range_honoured;
      response.peer = std::move(outcome.peer);
      response.final_url = std::move(url);
      co_return response;
    }
    if (redirects == max_redirects) {
      co_return http_errc::redirect_loop;
    }
    auto next = resolve_location(url, outcome.head.location);
    if (!next) {
      co_return next.error();
    }
    if (t->tls && next->scheme_id() == urls::scheme::http) {
      co_return http_errc::insecure_redirect;
    }
    spdlog::debug("event=http_redirect status={} from={} to={}", status, url.buffer(),
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

hop hop_of(const fetch_request& request, const error_code& ec) {
  const bool via_proxy = request.proxy.has_value();
  if (ec == http_errc::proxy_auth_failed || ec == http_errc::proxy_auth_unsupported) {
    return hop::proxy_login;
  }
  if (ec == http_errc::proxy_tls_failed || ec == http_errc::proxy_certificate_untrusted ||
      ec == http_errc::bad_proxy_ca_file) {
    return hop::proxy_tls;
  }
  if (ec == http_errc::proxy_refused || ec == http_errc::proxy_protocol_error ||
      ec == http_errc::socks_not_allowed || ec == http_errc::socks_host_unreachable ||
      ec == http_errc::socks_connection_refused || ec == http_errc::socks_failed) {
    return hop::tunnel;
  }
  if (ec == http_errc::certificate_untrusted || ec == http_errc::certificate_name_mismatch ||
      ec == http_errc::certificate_not_pinned || ec == http_errc::tls_handshake_failed ||
      ec == http_errc::bad_ca_file) {
    return hop::origin_tls;
  }
  if (ec.category() != http_category() || ec == http_errc::connect_timeout) {
    // Socket-level (refused, unreachable, name not found) and the connect deadline: with a proxy
    // the only connection this machine opens is to the proxy.
    return via_proxy ? hop::proxy_connect : hop::origin_connect;
  }
  return hop::origin;
}

}  // namespace

namespace {

double burst_for(std::uint64_t rate, std::uint64_t fixed) {
  return static_cast<double>(fixed > 0 ? fixed : std::max<std::uint64_t>(rate / 10, 16 * 1024));
}

}  // namespace

rate_limiter::rate_limiter(std::uint64_t bytes_per_second, std::uint64_t burst)
    : rate_(bytes_per_second),
      fixed_burst_(burst),
      burst_(burst_for(bytes_per_second, burst)),
      tokens_(burst_),
      last_(clock::now()) {}

void rate_limiter::set_rate(std::uint64_t bytes_per_second) {
  const std::lock_guard lock(mutex_);
  const bool was_unlimited = rate_.load(std::memory_order_relaxed) == 0;
  rate_.store(bytes_per_second, std::memory_order_relaxed);
  burst_ = burst_for(bytes_per_second, fixed_burst_);
  tokens_ = was_unlimited ? burst_ : std::min(tokens_, burst_);
}

std::chrono::nanoseconds rate_limiter::take(std::uint64_t bytes) {
  return take(bytes, clock::now());
}

std::chrono::nanoseconds rate_limiter::take(std::uint64_t bytes, clock::time_point now) {
  const std::lock_guard lock(mutex_);
  const auto rate = rate_.load(std::memory_order_relaxed);
  const std::chrono::duration<double> elapsed = std::max(now - last_, clock::duration::zero());
  last_ = std::max(last_, now);
  if (rate == 0) {
    tokens_ = burst_;  // unlimited: no debt, and a full bucket when a limit comes back
    return std::chrono::nanoseconds::zero();
  }
  tokens_ = std::min(burst_, tokens_ + elapsed.count() * static_cast<double>(rate));
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) {
    return std::chrono::nanoseconds::zero();
  }
  const std::chrono::duration<double> debt(-tokens_ / static_cast<double>(rate));
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

std::string describe_fetch_error(const fetch_request& request,
                                 const boost::system::error_code& ec) {
  std::string origin = "the server";
  if (const auto t = parse_target(request.url)) {
    origin = host_port(*t);
  }
  std::string proxy = "the proxy";
  std::string login = "";
  if (request.proxy) {
    if (const auto p = parse_proxy(*request.proxy)) {
      proxy = "the proxy at " + host_port(p->hop);
      login = p->kind == proxy_kind::socks5 ? std::string("SOCKS5 username/password")
                                            : std::string(to_string(p->auth));
    }
  }
  const std::string message = ec.message();
  switch (hop_of(request, ec)) {
    case hop::proxy_connect:
      return "connecting to " + proxy + " failed: " + message;
    case hop::proxy_login:
      return proxy + " refused the login (" + login + "): " + message;
    case hop::proxy_tls:
      return "TLS to " + proxy + " failed: " + message;
    case hop::tunnel:
      return proxy + " could not open a tunnel to " + origin + ": " + message;
    case hop::origin_connect:
      return "connecting to " + origin + " failed: " + message;
    case hop::origin_tls:
      return "TLS to " + origin + " failed: " + message;
    case hop::origin:
      break;
  }
  return origin + ": " + message;
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
