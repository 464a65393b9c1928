#pragma once

// How an agent reaches a server on the internet: directly, through the proxy the machine is
// configured with, or through a proxy the segment's proxyhelperd advertises. The order the
// vendor agents follow (issue 5):
//   1. The system's settings (system_proxy.hpp): https_proxy/http_proxy/no_proxy, else a
//      configured PAC script (pac_script.hpp), else direct; each route they give is checked by
//      reaching the target (reachability.hpp), and the first that works decides.
//   2. Only when step 1 found nothing that works: ask proxyhelperd (proxy_query.hpp). Answers
//      that do not pass the trust rules (pinned key, expiry) are ignored.
//   3. Check the advertised proxies in their order; the first that reaches the target decides.
//      A proxy that needs credentials is skipped unless the configured credentials are bound
//      to it (a Negotiate proxy excepted: the process's Kerberos credentials log in); one whose
//      bypass list covers the target is skipped (that means direct, which step 1 found broken).
//      The scheme the answer names for a proxy is used for its check and kept in the resolution
//      (resolution::auth), so the download logs in the same way.
// Credentials (proxy_credentials) go only to the one proxy they were configured for, by host and
// port: never to a proxy a PAC script or the segment names unless it is that proxy. A PAC script
// fetched over plain HTTP or a forged segment answer cannot collect them.
// A decided route is cached per target (scheme, host, port) until forget() — called on every
// change of the machine's IP addresses by watch_addresses() — or the end of the process.
//
// Threads and executors: a resolver owns a strand over the executor it is built with, and every
// resolution runs there, one at a time: resolve() may be awaited from any executor and any number
// of coroutines at once (the agent's downloads, the relay's mirror sources on their own strands);
// a second caller waits for the first resolution to end and then usually finds its route in the
// cache. The segment query, PAC script and connectivity checks of a resolution run on that
// strand. forget() and cached() may be called from any thread (the cache has a mutex).
// watch_addresses() runs on the caller's executor and calls forget(). The resolver must outlive
// every resolve() and watch_addresses() still running.

#include "lanrelay/proxy_resolution/proxy_query.hpp"
#include "lanrelay/proxy_resolution/system_proxy.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/url/url.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::proxy_resolution {

enum class resolution_step { environment, pac, direct, proxyhelper, none };
std::string_view to_string(resolution_step step) noexcept;

// "user:password" bound to the proxy it was configured for. The host is compared as Boost.URL
// normalises it (case-insensitively for names); the port must be the same (80 when the proxy URL
// names none). No name resolution: "proxy.corp" and its address are different proxies.
struct proxy_credentials {
  std::string user_password;  // "user:password"; empty: a Negotiate login, without either
  std::string host;           // as configured: a name, an IPv4 address or an IPv6 literal
  std::uint16_t port = 0;
  proxy_auth_scheme auth = proxy_auth_scheme::basic;  // how they log in to that proxy

  // From "host:port" ("[v6]:port"); an error text for an administrator when it is not one.
  static result<proxy_credentials> bind(std::string user_password, std::string_view proxy,
                                        std::string* why = nullptr);
  // True when `proxy_url` (http://host[:port] or https://host[:port], TLS to the proxy) is the
  // proxy these credentials belong to.
  bool fit(boost::urls::url_view proxy_url) const;
};

struct skipped_route {
  resolution_step step = resolution_step::none;
  std::string route;   // "DIRECT", a proxy URL, or a PAC entry
  std::string reason;  // why it was not used
};

struct resolution {
  bool working = false;            // a route to the target was found
  resolution_step decided_by = resolution_step::none;
  std::optional<std::string> proxy;  // the proxy URL to use; empty with working: direct
  // Where to connect to that proxy when its URL alone cannot say: an advertised link-local
  // proxy's address with the zone of the interface the answer arrived on.
  std::optional<boost::asio::ip::address> proxy_address;
  // How to log in to `proxy`: the scheme proxyhelperd's answer names for it; otherwise the
  // configured one when the credentials are bound to it, else Basic without a login.
  proxy_auth_scheme auth = proxy_auth_scheme::basic;
  std::vector<skipped_route> skipped;
  bool asked_segment = false;      // step 2 ran (a query was broadcast or sent)
  std::string answered_by;         // the proxyhelperd whose answer was used
  std::size_t answers = 0;
  std::vector<std::string> refused_answers;
  bool from_cache = false;
  std::chrono::milliseconds elapsed{0};

  // What http_fetch needs to use the route (credentials added when they are bound to its
  // proxy; `proxy_ca_file` for an https:// proxy's certificate); nullopt for direct or when
  // nothing works.
  std::optional<proxy_settings> settings(
      const std::optional<proxy_credentials>& credentials = {},
      const std::optional<std::filesystem::path>& proxy_ca_file = {}) const;
};

struct proxy_resolver_options {
  system_proxy_settings system;         // step 1
  bool ask_segment = true;              // step 2 at all
  proxy_query_options query;            // step 2: port, window, trust (pinned keys)
  std::chrono::milliseconds check_timeout{3'000};  // per connectivity check step
  std::optional<proxy_credentials> credentials;  // for the one proxy they are bound to
  tls_options tls;                          // for https:// targets and PAC URLs
  // The CA an https:// proxy's certificate must chain to (proxy_settings::ca_file); unset: the
  // system store.
  std::optional<std::filesystem::path> proxy_ca_file;
};

class proxy_resolver {
 public:
  // Resolutions run on a strand over `executor`.
  proxy_resolver(boost::asio::any_io_executor executor, proxy_resolver_options options);

  // From any executor; runs on the resolver's strand once no other resolution is running there.
  // `target` is taken by value: the coroutine may start after the caller's temporary is gone.
  boost::asio::awaitable<resolution> resolve(boost::urls::url target);

  // Drops every cached route: the next resolve() starts again from step 1. Any thread.
  void forget();
  std::size_t cached() const;  // any thread

  // Calls forget() on every change of this machine's IP addresses until cancelled; returns at
  // once (logged) when netlink is unavailable.
  boost::asio::awaitable<void> watch_addresses();

 private:
  // Step 1; true when a route it gave works (recorded in `r`).
  boost::asio::awaitable<bool> from_system(const boost::urls::url& target, resolution& r);
  boost::asio::awaitable<bool> try_route(const boost::urls::url& target, resolution_step step,
                                         const std::optional<std::string>& proxy, resolution& r,
                                         proxy_auth_scheme auth = proxy_auth_scheme::basic,
                                         std::optional<boost::asio::ip::address> proxy_address = {});

  // On strand_: waits for its turn, then resolves.
  boost::asio::awaitable<resolution> resolve_in_turn(boost::urls::url target);
  boost::asio::awaitable<resolution> resolve_now(const boost::urls::url& target);

  const proxy_resolver_options options_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  bool busy_ = false;                // strand_: a resolution is running
  boost::asio::steady_timer turn_;   // strand_; its waits end when a resolution ends
  mutable std::mutex mutex_;
  std::map<std::string, resolution> cache_;  // mutex_; key: scheme://host:port
};

}  // namespace lanrelay::proxy_resolution
