#pragma once

// The download client: one HTTP/1.1 GET, streamed into a caller's sink, from a LAN peer or the
// relay (plain http://) or from the upstream update server (https://, certificate and host name
// verified), directly or through an HTTP, HTTPS or SOCKS5 proxy (Basic, Digest, NTLM or
// Negotiate login to HTTP proxies), optionally under shared download rate limits. Used by the
// agent to fetch items, by the relay to mirror an ActiveUpdate tree, by proxyhelperd's health
// checks and by the CLI's admin calls.
//
// Built on libcurl's multi interface, driven by the caller's io_context: libcurl's sockets are
// waited on with Asio and its timers are Asio timers, so no thread blocks per transfer (libcurl
// resolves names on a thread of its own). libcurl does the protocol work (HTTP/1.1, TLS,
// CONNECT and SOCKS5 tunnels, proxy authentication); this client keeps the contract below.
//
// Retries are the caller's: one http_fetch is one attempt (redirects aside). The mirror retries a
// file with exponential backoff and jitter and resumes it with `offset` (relay/mirror.hpp);
// agent::fetch moves to the next holder and resumes there (agent/fetch.hpp).
//
// Each fetch opens its own connection (no keep-alive) and closes it when done. Every network step
// has a deadline from `http_timeouts`. The body is never buffered whole: it goes to the sink in
// chunks of at most 64 KiB as it arrives.
//
// Threading: http_fetch runs on a strand of the caller's executor that it makes for itself; the
// sink is called on that strand, one call at a time. The request is copied when http_fetch is
// called, so the caller's fetch_request need not outlive the returned awaitable.
//
// Cancellation: cancelling the awaiting operation (`co_await (http_fetch(...) || stop_timer)`,
// a cancellation slot) aborts the transfer and closes the connection. Name resolution that
// outlasts the connect deadline is abandoned, not interrupted: libcurl's resolver thread
// finishes in the background.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/system/error_code.hpp>
#include <boost/url/url.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay {

// Failures of an HTTP exchange. An HTTP status, even 4xx or 5xx, is not an error: it is returned
// in fetch_response::status. Socket-level failures (connection refused, host unreachable, name
// not found) keep their system or netdb error codes.
enum class http_errc {
  connect_timeout = 1,       // resolve, connect, proxy CONNECT and TLS handshake took too long
  head_timeout,              // connected, but no complete response head in time
  body_timeout,              // the body stopped making progress
  invalid_url,               // no host, or a URL the client cannot use
  unsupported_scheme,        // neither http:// nor https:// (or a proxy that is neither http://,
                             // socks5:// nor socks5h://)
  protocol_error,            // malformed status line, header, chunk or Content-Range
  incomplete_response,       // the server closed the connection before the response was complete
  range_mismatch,            // a 206 for another range than the one asked for
  too_large,                 // the item is larger than fetch_request::max_bytes
  redirect_loop,             // more than 5 redirects
  bad_redirect,              // a redirect without a usable Location
  insecure_redirect,         // a redirect from https:// to http://
  proxy_refused,             // the proxy answered CONNECT with a non-2xx status
  certificate_untrusted,     // the server's certificate does not chain to a trusted CA
  certificate_name_mismatch, // the certificate is valid but for another host name or address
  bad_ca_file,               // tls_options::ca_file cannot be read as PEM certificates
  proxy_auth_failed,         // the proxy wants (other) credentials: HTTP 407, or SOCKS5
                             // username/password rejected
  proxy_auth_unsupported,    // the SOCKS5 proxy accepts none of the offered methods (no
                             // authentication; username/password when the URL has credentials)
  proxy_protocol_error,      // the SOCKS5 proxy broke the protocol (RFC 1928/1929)
  socks_not_allowed,         // SOCKS5 reply 2: the proxy's rules forbid this connection
  socks_host_unreachable,    // SOCKS5 replies 3, 4, 6: the proxy cannot reach the target (or
                             // cannot resolve its name)
  socks_connection_refused,  // SOCKS5 reply 5: the target refused the proxy's connection
  socks_failed,              // any other SOCKS5 failure reply
  certificate_not_pinned,    // tls_options::pinned_certificates is set and the server presented
                             // another certificate
  tls_handshake_failed,      // TLS with the server failed for another reason than its
                             // certificate (protocol version, ciphers, not TLS at all)
  proxy_tls_failed,          // TLS with an https:// proxy failed: its certificate is for
                             // another name, or the handshake failed
  proxy_certificate_untrusted,  // the https:// proxy's certificate does not chain to a CA of
                                // proxy_settings::ca_file (or of the system store), or expired
  bad_proxy_ca_file,         // proxy_settings::ca_file cannot be read as PEM certificates
};

const boost::system::error_category& http_category() noexcept;

inline boost::system::error_code make_error_code(http_errc e) noexcept {
  return {static_cast<int>(e), http_category()};
}

// True for the three deadline errors above.
bool is_timeout(const boost::system::error_code& ec) noexcept;

struct fetch_request;

// A failure of http_fetch in words for an administrator, naming the hop that failed and its
// address: "connecting to the proxy at 10.0.0.1:3128 failed: Connection refused", "the proxy at
// proxy.corp:8080 refused the login (ntlm): ...", "the proxy at ... could not open a tunnel to
// au.example.com:443: ...", "TLS to au.example.com:443 failed: ...", "au.example.com:443: the
// download stalled ...". Through a proxy, socket-level failures and the connect deadline are the
// proxy's: it is the only host this machine connects to. (An HTTP status is not a failure; the
// caller words it.)
std::string describe_fetch_error(const fetch_request& request,
                                 const boost::system::error_code& ec);

// Deadlines, each restarted at its step. `connect` covers name resolution, TCP connect, a proxy's
// CONNECT exchange and the TLS handshake together; `response_head` covers sending the request and
// receiving the status line and headers; `idle_body` is the longest wait for the next body bytes,
// so a slow but steady transfer of any size never times out.
struct http_timeouts {
  std::chrono::milliseconds connect{10'000};
  std::chrono::milliseconds response_head{30'000};
  std::chrono::milliseconds idle_body{30'000};
};

// https:// is verified against the system CA store (OpenSSL's default paths), or against
// `ca_file` alone (PEM, one or more certificates) when set. The host name is checked against the
// certificate (or the IP address, for an IP-literal URL) and sent as SNI. There is no switch to
// turn verification off.
//
// Pinning: with `pinned_certificates`, the server's certificate must be one of them (SHA-256 of its
// DER encoding) and that is the whole check: no CA, host name or dates, since a pinned
// certificate is trusted for what it is (a relay's self-signed certificate, its fingerprint read
// from a catalog signed with the pinned site key). Any other certificate fails the handshake's
// result with certificate_not_pinned before a request byte is sent.
struct tls_options {
  std::optional<std::filesystem::path> ca_file;
  std::vector<sha256_digest> pinned_certificates;
};

// The proxy between us and the targets:
// - `http://[user:password@]host:port`: an HTTP proxy. https:// targets go through a CONNECT
//   tunnel (TLS is end to end); http:// targets are requested in absolute form. Userinfo, when
//   present, is the login of the `auth` scheme below and is sent nowhere else. A 407 answer, to
//   CONNECT or to a request, that the login cannot satisfy fails with proxy_auth_failed.
// - `https://[user:password@]host:port`: the same with TLS to the proxy itself, verified
//   against proxy_settings::ca_file when set, else the system CA store, and the proxy's host
//   name. tls_options::ca_file does not apply to the proxy: the proxy and the origin are
//   different parties, often with different CAs (a company's own CA for its proxy, a public one
//   for the vendor). tls_options::pinned_certificates are for LAN relays reached directly; with
//   an https:// proxy they would be asked of the proxy's certificate too (libcurl gives both
//   handshakes the same context callback), so do not combine them.
// - `socks5://[user:password@]host:port` or `socks5h://…`: a SOCKS5 proxy (RFC 1928), username
//   and password authentication (RFC 1929) when the URL has userinfo (each at most 255 bytes),
//   no authentication otherwise. Both spellings let the proxy resolve host names (ATYP domain
//   name, curl's socks5h semantics): the machine behind a proxy often cannot resolve outside
//   names. IP-literal targets are sent as addresses. Every target, http:// or https://, goes
//   through the tunnel as if connected directly. The port defaults to 1080.
// The proxy's own host name is resolved here. Its handshake runs under the connect deadline.
// Proxies from the environment (http_proxy, https_proxy, no_proxy) are never used.
//
// How the client logs in to an HTTP proxy (`auth`): `basic` sends the URL's userinfo as Basic
// Proxy-Authorization; `digest` and `ntlm` answer the proxy's 407 challenge with the URL's user
// and password (an NTLM user may be `DOMAIN\\user`, percent-encoded in the URL); `negotiate` logs in
// with Kerberos from the process's credentials (the keytab named by KRB5_CLIENT_KTNAME, or the
// credential cache) and needs no userinfo. SOCKS5 proxies use their own username/password
// method whatever `auth` says.
enum class proxy_auth_scheme { basic, digest, ntlm, negotiate };

// "basic", "digest", "ntlm", "negotiate": as in configuration files, logs and the proxy answer.
std::string_view to_string(proxy_auth_scheme scheme) noexcept;
// Case-insensitive; nullopt for any other word.
std::optional<proxy_auth_scheme> parse_proxy_auth_scheme(std::string_view text) noexcept;

struct proxy_settings {
  boost::urls::url proxy;
  proxy_auth_scheme auth = proxy_auth_scheme::basic;
  // Connect to the proxy at this address instead of resolving the proxy URL's host: a
  // link-local proxy's address with the scope id of the interface it was learned on (a URL
  // carries no zone).
  std::optional<boost::asio::ip::address> address;
  // The CA certificates (PEM) an https:// proxy's certificate must chain to, instead of the
  // system store. Ignored for other proxies. Unreadable or without a certificate: the fetch
  // fails with bad_proxy_ca_file before connecting.
  std::optional<std::filesystem::path> ca_file;
};

// A download rate limit in bytes per second, shared by any number of fetches at once (hold it in
// a shared_ptr and put it in each fetch_request::rate_limits): together they receive at most
// `bytes_per_second` on average, plus a burst of at most `burst` bytes after a quiet time.
// A token bucket that may go into debt: take() always succeeds and returns how long the caller
// must wait before reading on, so concurrent takers queue up fairly in arrival order.
// The rate may change at any time (set_rate: bandwidth windows, rate_windows.hpp); fetches
// holding the limiter go on at the new rate. A rate of 0 is unlimited: take() never waits.
// Thread-safe: the bucket is guarded by a mutex; any thread may call take() at any time.
class rate_limiter {
 public:
  // bytes_per_second 0: unlimited. burst 0 means 100 ms worth of the rate, at least 16 KiB.
  explicit rate_limiter(std::uint64_t bytes_per_second, std::uint64_t burst = 0);

  // Accounts `bytes` just received (or about to be) and returns the wait before the next read.
  std::chrono::nanoseconds take(std::uint64_t bytes);
  // The same at a given time, so tests can check the arithmetic without a clock. A `now` earlier
  // than the previous call's refills nothing.
  std::chrono::nanoseconds take(std::uint64_t bytes, std::chrono::steady_clock::time_point now);

  std::uint64_t bytes_per_second() const noexcept { return rate_.load(std::memory_order_relaxed); }
  // From the next take() on; a debt already owed is paid at the new rate. 0: unlimited.
  void set_rate(std::uint64_t bytes_per_second);

 private:
  using clock = std::chrono::steady_clock;

  std::atomic<std::uint64_t> rate_;
  const std::uint64_t fixed_burst_;  // 0: 100 ms of the rate
  std::mutex mutex_;
  double burst_;             // guarded by mutex_
  double tokens_;            // guarded by mutex_; negative while in debt
  clock::time_point last_;   // guarded by mutex_: when tokens_ was last refilled
};

struct fetch_request {
  boost::urls::url url;
  // GET, or POST with an empty body (the CLI's admin calls); redirects repeat the method.
  bool post = false;
  // Sent as `Authorization: Bearer <token>` (the relay's admin endpoints), to the URL's host
  // only: not after a redirect to another host. A control character fails like the fields below.
  std::optional<std::string> bearer_token;
  // The sink also gets the body of a final status other than 200 and 206 (an admin answer's
  // error text). Resume and size bounds apply to 200 and 206 only.
  bool every_status_body = false;
  // > 0: ask for the bytes from `offset` on (Range: bytes=offset-) to resume a partial download.
  std::uint64_t offset = 0;
  // Set: ask for exactly [offset, offset + range_length) (Range: bytes=offset-last), e.g. one piece
  // of an item. A 206 must start at `offset`; the sink may end a longer body itself.
  std::optional<std::uint64_t> range_length;
  // Sent as they are; a control character (CR, LF...) fails the fetch with
  // boost::system::errc::invalid_argument before connecting.
  std::optional<std::string> if_none_match;      // e.g. "\"<etag>\""
  std::optional<std::string> if_modified_since;  // an HTTP-date
  http_timeouts timeouts;
  // Refuse items larger than this many bytes (whole item, not only the requested range): when the
  // response announces a larger size the sink is never called; when an unannounced body runs past
  // it the transfer stops with too_large.
  std::optional<std::uint64_t> max_bytes;
  tls_options tls;
  std::optional<proxy_settings> proxy;
  // Connect to this address instead of resolving the URL's host (like curl --resolve). The Host
  // header, SNI and certificate checks still use the URL's host. Applies to that host on any
  // port; a redirect to another host is resolved normally. Not used with a proxy.
  std::optional<boost::asio::ip::address> host_address;
  // Every limiter here is applied to the body: e.g. the mirror's per-source limit and its total
  // limit. The wait is the longest any of them asks for. Empty: as fast as the network goes.
  std::vector<std::shared_ptr<rate_limiter>> rate_limits;
};

struct fetch_response {
  unsigned status = 0;
  // Bytes handed to the sink. They always start at request.offset of the item: when the server
  // ignores the Range (200), the client skips the first `offset` bytes itself.
  std::uint64_t body_bytes = 0;
  std::optional<std::uint64_t> content_length;  // the response's Content-Length header
  // Size of the whole item: from Content-Range ("bytes a-b/total", or "bytes */total" on a 416),
  // else from Content-Length of a 200.
  std::optional<std::uint64_t> total_size;
  std::string etag;
  std::string last_modified;
  std::optional<std::chrono::seconds> retry_after;  // delay-seconds or an HTTP-date, from now
  // False when offset > 0 and the server sent the whole item (200) rather than the range (206):
  // the bytes before `offset` crossed the network again. True otherwise.
  bool range_honoured = true;
  std::string peer;             // "ip:port" the final response came from (the proxy when used)
  boost::urls::url final_url;   // the URL after redirects
};

// Receives body bytes in order. Returning an error aborts the transfer; http_fetch returns it.
using body_sink = std::function<result<void>(std::span<const std::byte>)>;

// GETs request.url, following up to 5 redirects (301, 302, 303, 307, 308) within the same scheme
// or from http:// to https://. The sink is called only for a 200 or 206 body.
boost::asio::awaitable<result<fetch_response>> http_fetch(const fetch_request& request,
                                                          body_sink sink);

// The same, run to completion on a private io_context; for command-line tools, not daemons.
result<fetch_response> http_fetch_blocking(const fetch_request& request, body_sink sink);

namespace detail {

// Header parsers of the client, free of sockets for unit tests and fuzzing.

// Content-Range (RFC 9110 §14.4): "bytes first-last/length", "bytes first-last/*" or, on a 416,
// "bytes */length".
struct content_range {
  bool has_range = false;  // false for "bytes */length"
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::optional<std::uint64_t> complete_length;  // absent for "/*"

  bool operator==(const content_range&) const = default;
};
std::optional<content_range> parse_content_range(std::string_view value) noexcept;

// Retry-After (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate, as a delay from `now`
// (0 for a date in the past).
std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept;

}  // namespace detail

}  // namespace lanrelay

template <>
struct boost::system::is_error_code_enum<lanrelay::http_errc> : std::true_type {};
