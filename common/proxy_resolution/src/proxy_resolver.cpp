#include "lanrelay/proxy_resolution/proxy_resolver.hpp"

#include "lanrelay/base/redact.hpp"
#include "lanrelay/proxy_resolution/address_watch.hpp"
#include "lanrelay/proxy_resolution/pac_script.hpp"
#include "lanrelay/segment/interfaces.hpp"
#include "lanrelay/upstream/reachability.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/authority_view.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace lanrelay::proxy_resolution {
namespace {

namespace net = boost::asio;
namespace proxy = proxy_protocol;

std::string cache_key(const boost::urls::url& target) {
  const auto port = target.has_port() ? target.port_number()
                    : target.scheme_id() == boost::urls::scheme::https ? 443 : 80;
  return std::string(target.scheme()) + "://" + std::string(target.encoded_host()) + ":" +
         std::to_string(port);
}

// The PAC script at `url`, fetched directly (a PAC script tells how to reach the internet; it
// is not itself behind the proxy).
net::awaitable<result<std::string>> fetch_pac(const std::string& url_text,
                                              const proxy_resolver_options& options,
                                              std::string& detail) {
  const auto url = boost::urls::parse_absolute_uri(url_text);
  if (!url) {
    detail = "the PAC URL is not a URL";
    co_return url.error();
  }
  fetch_request request{.url = *url,
                        .timeouts = {options.check_timeout, options.check_timeout,
                                     options.check_timeout},
                        .max_bytes = max_pac_script_size,
                        .tls = options.tls};
  std::string script;
  auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
    script.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    return {};
  });
  if (!response) {
    detail = response.error().message();
    co_return response.error();
  }
  if (response->status != 200) {
    detail = "HTTP " + std::to_string(response->status);
    co_return make_error_code(errc::not_found);
  }
  co_return script;
}

}  // namespace

std::string_view to_string(resolution_step step) noexcept {
  switch (step) {
    case resolution_step::environment:
      return "environment";
    case resolution_step::pac:
      return "pac";
    case resolution_step::direct:
      return "direct";
    case resolution_step::proxyhelper:
      return "proxyhelper";
    case resolution_step::none:
      return "none";
  }
  return "none";
}

namespace {

// "user:password" into the proxy URL (user and password set apart, so that a ':' in the
// password stays part of it and reserved characters are percent-encoded once).
void add_credentials(boost::urls::url& url, std::string_view credentials) {
  const auto colon = credentials.find(':');
  url.set_user(credentials.substr(0, colon));
  if (colon != std::string_view::npos) {
    url.set_password(credentials.substr(colon + 1));
  }
}

// How the client logs in to a proxy that neither proxyhelperd's answer nor the proxy URL names a
// scheme for (the environment's, a PAC script's, an answer without one): the configured scheme
// when the configured credentials are bound to that proxy, else none (Basic without a user and
// password sends nothing). A scheme proxyhelperd's answer names is used as it is: the helper
// knows its proxy, and the configured credentials add only the user and password.
proxy_auth_scheme login_scheme(const std::optional<proxy_credentials>& credentials,
                               const boost::urls::url_view& proxy_url) {
  if (credentials && !proxy_url.has_userinfo() && credentials->fit(proxy_url)) {
    return credentials->auth;
  }
  return proxy_auth_scheme::basic;
}

}  // namespace

result<proxy_credentials> proxy_credentials::bind(std::string user_password,
                                                  std::string_view proxy, std::string* why) {
  const auto fail = [&](std::string text) -> result<proxy_credentials> {
    if (why != nullptr) {
      *why = std::move(text);
    }
    return make_error_code(errc::invalid_config);
  };
  // Empty: a login without user and password (Negotiate, from the process's Kerberos
  // credentials); the binding then only names the proxy the configured scheme is for.
  if (!user_password.empty() && user_password.find(':') == std::string::npos) {
    return fail("the credentials are not user:password");
  }
  const auto authority = boost::urls::parse_authority(proxy);
  if (!authority || authority->has_userinfo() || authority->host().empty() ||
      !authority->has_port() || authority->port_number() == 0) {
    return fail("\"" + std::string(proxy) + "\" is not host:port (e.g. proxy.corp.example:3128)");
  }
  proxy_credentials out;
  out.user_password = std::move(user_password);
  out.host = std::string(authority->host_address());
  out.port = authority->port_number();
  return out;
}

bool proxy_credentials::fit(boost::urls::url_view proxy_url) const {
  const bool tls = proxy_url.scheme_id() == boost::urls::scheme::https;
  if (proxy_url.scheme_id() != boost::urls::scheme::http && !tls) {
    return false;
  }
  const std::uint16_t proxy_port = proxy_url.has_port() ? proxy_url.port_number()
                                   : tls                ? 443
                                                        : 80;
  const auto same_host = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  return proxy_port == port && same_host(proxy_url.host_address(), host);
}

std::optional<proxy_settings> resolution::settings(
    const std::optional<proxy_credentials>& credentials,
    const std::optional<std::filesystem::path>& proxy_ca_file) const {
  if (!working || !proxy) {
    return std::nullopt;
  }
  auto url = boost::urls::parse_absolute_uri(*proxy);
  if (!url) {
    return std::nullopt;
  }
  boost::urls::url out(*url);
  // `auth` was decided with the route (login_scheme); only the user and password are added here.
  proxy_settings settings{
      .proxy = {}, .auth = auth, .address = proxy_address, .ca_file = proxy_ca_file};
  if (credentials && !credentials->user_password.empty() && !out.has_userinfo() &&
      credentials->fit(out)) {
    add_credentials(out, credentials->user_password);
  }
  settings.proxy = std::move(out);
  return settings;
}

proxy_resolver::proxy_resolver(net::any_io_executor executor, proxy_resolver_options options)
    : options_(std::move(options)), strand_(net::make_strand(std::move(executor))), turn_(strand_) {
  turn_.expires_at(net::steady_timer::time_point::max());
}

void proxy_resolver::forget() {
  std::lock_guard lock(mutex_);
  if (!cache_.empty()) {
    spdlog::info("event=proxy_routes_forgotten routes={}", cache_.size());
  }
  cache_.clear();
}

std::size_t proxy_resolver::cached() const {
  std::lock_guard lock(mutex_);
  return cache_.size();
}

net::awaitable<resolution> proxy_resolver::resolve(boost::urls::url target) {
  auto in_turn = net::co_spawn(strand_, resolve_in_turn(std::move(target)), net::use_awaitable);
  co_return co_await std::move(in_turn);
}

net::awaitable<resolution> proxy_resolver::resolve_in_turn(boost::urls::url target) {
  while (busy_) {
    co_await turn_.async_wait(net::as_tuple(net::use_awaitable));  // cancelled when one ends
  }
  busy_ = true;
  // Also when resolve_now throws: the next caller must get its turn.
  struct end_of_turn {
    proxy_resolver& self;
    ~end_of_turn() {
      self.busy_ = false;
      self.turn_.cancel();
      self.turn_.expires_at(net::steady_timer::time_point::max());
    }
  } const turn{*this};
  co_return co_await resolve_now(target);
}

net::awaitable<void> proxy_resolver::watch_addresses() {
  address_watch watch(co_await net::this_coro::executor);
  if (!watch.ok()) {
    spdlog::warn("event=address_watch_unavailable error=\"{}\" hint=\"learned proxies are kept "
                 "until the process ends\"",
                 watch.open_error().message());
    co_return;
  }
  while (true) {
    auto changes = co_await watch.wait();
    if (!changes) {
      co_return;  // cancelled
    }
    spdlog::info("event=addresses_changed changes={} hint=\"proxy resolution starts over\"", *changes);
    forget();
  }
}

net::awaitable<bool> proxy_resolver::try_route(const boost::urls::url& target,
                                               resolution_step step,
                                               const std::optional<std::string>& proxy_url,
                                               resolution& r, proxy_auth_scheme auth,
                                               std::optional<net::ip::address> proxy_address) {
  reachability_request request;
  request.target = target;
  request.timeout = options_.check_timeout;
  request.tls = options_.tls;
  const std::string shown = proxy_url ? redact_urls(*proxy_url) : "DIRECT";
  if (proxy_url) {
    auto parsed = boost::urls::parse_absolute_uri(*proxy_url);
    if (!parsed || (parsed->scheme_id() != boost::urls::scheme::http &&
                    parsed->scheme_id() != boost::urls::scheme::https)) {
      r.skipped.push_back({step, shown, "not an http:// or https:// proxy URL"});
      co_return false;
    }
    boost::urls::url with_credentials(*parsed);
    if (step != resolution_step::proxyhelper) {
      auth = login_scheme(options_.credentials, with_credentials);  // resolve_now decides those
    }
    if (options_.credentials && !options_.credentials->user_password.empty() &&
        !with_credentials.has_userinfo() && options_.credentials->fit(with_credentials)) {
      add_credentials(with_credentials, options_.credentials->user_password);
    }
    request.proxy = proxy_settings{.proxy = std::move(with_credentials),
                                   .auth = auth,
                                   .address = proxy_address,
                                   .ca_file = options_.proxy_ca_file};
  }
  const auto outcome = co_await check_reachable(request);
  if (!outcome.reachable) {
    // Through a proxy, the scheme the check logged in with: "the proxy rejected the
    // credentials" then says which login was refused.
    r.skipped.push_back({step, shown,
                         "connectivity check failed" +
                             (proxy_url ? " (auth " + std::string(to_string(auth)) + ")"
                                        : std::string()) +
                             ": " + outcome.describe()});
    co_return false;
  }
  r.working = true;
  r.decided_by = step;
  r.proxy = proxy_url;
  r.proxy_address = proxy_url ? proxy_address : std::nullopt;
  r.auth = auth;
  co_return true;
}

net::awaitable<bool> proxy_resolver::from_system(const boost::urls::url& target,
                                                 resolution& r) {
  if (const auto env = environment_proxy_for(options_.system, target)) {
    co_return co_await try_route(target, resolution_step::environment, *env, r);
  }
  if (options_.system.pac_url) {
    std::string detail;
    auto script_text = co_await fetch_pac(*options_.system.pac_url, options_, detail);
    if (!script_text) {
      r.skipped.push_back({resolution_step::pac, redact_urls(*options_.system.pac_url),
                           "cannot fetch the PAC script: " + detail});
    } else {
      // In a child process with memory, CPU and time limits (pac_script.hpp): the script came
      // from the network, and this coroutine runs on an I/O thread.
      auto [answer, why] = co_await find_proxy_in_child(
          std::move(*script_text), std::string(target.buffer()), std::string(target.host_address()));
      if (!answer) {
        r.skipped.push_back({resolution_step::pac, redact_urls(*options_.system.pac_url),
                             "broken PAC script: " + answer.error().message() +
                                 (why.empty() ? "" : ": " + why)});
      } else {
        for (const auto& route : parse_pac_result(*answer)) {
          if (route.type == pac_route::kind::unsupported) {
            r.skipped.push_back({resolution_step::pac, route.text, "unsupported PAC entry"});
            continue;
          }
          const auto via = route.type == pac_route::kind::proxy
                               ? std::optional<std::string>(route.proxy_url)
                               : std::nullopt;
          if (co_await try_route(target, resolution_step::pac, via, r)) {
            co_return true;
          }
        }
        co_return false;
      }
    }
  }
  co_return co_await try_route(target, resolution_step::direct, std::nullopt, r);
}

net::awaitable<resolution> proxy_resolver::resolve_now(const boost::urls::url& target) {
  const auto start = std::chrono::steady_clock::now();
  const auto key = cache_key(target);
  std::optional<resolution> cached;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = cache_.find(key); it != cache_.end()) {
      cached = it->second;
    }
  }
  if (cached) {
    cached->from_cache = true;
    cached->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    co_return *cached;
  }
  resolution r;
  const auto finish = [&]() {
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (r.working) {
      std::lock_guard lock(mutex_);
      cache_[key] = r;
    }
    return r;
  };

  if (co_await from_system(target, r)) {
    co_return finish();
  }
  if (!options_.ask_segment) {
    co_return finish();
  }
  r.asked_segment = true;
  const auto asked = co_await ask_for_proxies(options_.query);
  r.answers = asked.answers;
  r.refused_answers = asked.refused;
  if (!asked.accepted) {
    spdlog::info("event=no_proxy_found reason=\"{}\" answers={} refused={} destinations={}",
                 asked.destinations == 0 ? "no interface to ask on" : "no usable answer",
                 asked.answers, asked.refused.size(), asked.destinations);
    co_return finish();
  }
  r.answered_by = asked.answered_by.address().to_string();
  const std::string host(target.host_address());
  for (const auto& p : asked.accepted->proxies) {
    const auto advertised = boost::urls::parse_absolute_uri(p.url);
    const bool bound = options_.credentials && advertised && options_.credentials->fit(*advertised);
    // The scheme the answer names (the same words on both sides: "basic", "digest", "ntlm",
    // "negotiate"); without one, as for any other proxy (login_scheme).
    const auto auth = p.auth ? parse_proxy_auth_scheme(proxy::to_string(*p.auth)).value()
                      : advertised ? login_scheme(options_.credentials, *advertised)
                                   : proxy_auth_scheme::basic;
    if (p.needs_credentials && auth != proxy_auth_scheme::negotiate &&
        !(bound && !options_.credentials->user_password.empty())) {
      r.skipped.push_back({resolution_step::proxyhelper, p.url,
                           bound ? "needs a user and password (" +
                                       std::string(to_string(auth)) +
                                       "), and only a Kerberos login is configured for it"
                           : options_.credentials
                               ? std::string("needs credentials, and the configured ones are "
                                             "bound to another proxy")
                               : std::string("needs credentials and none are configured")});
      continue;
    }
    const bool bypassed = std::any_of(p.bypass.begin(), p.bypass.end(), [&](const auto& entry) {
      return proxy::bypass_matches(entry, host);
    });
    if (bypassed) {
      r.skipped.push_back({resolution_step::proxyhelper, p.url,
                           "its bypass list covers the target (direct, which failed)"});
      continue;
    }
    // An advertised proxy at a link-local address (its URL has no zone) is reached through the
    // interface the answer arrived on.
    const auto scoped = link_local_url_address(p.url, asked.answered_on);
    if (co_await try_route(target, resolution_step::proxyhelper, p.url, r, auth, scoped)) {
      break;
    }
  }
  co_return finish();
}

}  // namespace lanrelay::proxy_resolution
