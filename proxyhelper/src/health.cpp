#include "lanrelay/proxyhelper/health.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/redact.hpp"
#include "lanrelay/segment/interfaces.hpp"
#include "lanrelay/base/secret_file.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>

namespace lanrelay::proxyhelper {

namespace net = boost::asio;

namespace {

// A proxy at a link-local address (its URL carries no zone) is checked through the first
// interface, loopback aside, that has a link-local address: the segment this helper answers
// on. Agents reach it through the interface its answer arrived on. nullopt for other hosts.
std::optional<net::ip::address> link_local_proxy_route(const std::string& url_text) {
  if (!link_local_url_address(url_text, 0)) {
    return std::nullopt;
  }
  for (const auto& nic : list_interfaces()) {
    if (!nic.loopback && !nic.ipv6_link_local.empty()) {
      return link_local_url_address(url_text, nic.index);
    }
  }
  return std::nullopt;
}

bool has_kerberos_credentials() {
  return std::getenv("KRB5_CLIENT_KTNAME") != nullptr || std::getenv("KRB5CCNAME") != nullptr;
}

}  // namespace

proxy_settings check_proxy_settings(const proxy_spec& spec, bool& logs_in) {
  logs_in = false;
  proxy_settings settings{boost::urls::url(spec.url)};
  const auto scheme = proxy_protocol::parse_auth_scheme(spec.auth);
  if (scheme == proxy_protocol::auth_scheme::negotiate) {
    if (has_kerberos_credentials()) {
      settings.auth = proxy_auth_scheme::negotiate;
      logs_in = true;
    }
    return settings;
  }
  if (spec.check_credentials_file.empty()) {
    return settings;
  }
  std::string why;
  const auto text = read_secret_file(spec.check_credentials_file, max_check_credentials_size, why);
  const auto line = text ? text->substr(0, text->find('\n')) : std::string();
  const auto colon = line.find(':');
  if (!text || colon == std::string::npos) {
    spdlog::warn("event=check_credentials_unusable proxy={} file={} error=\"{}\" hint=\"checked "
                 "without credentials\"",
                 spec.url, spec.check_credentials_file.string(),
                 text ? "the first line is not user:password" : why);
    return settings;
  }
  settings.proxy.set_user(std::string_view(line).substr(0, colon));
  settings.proxy.set_password(std::string_view(line).substr(colon + 1));
  if (scheme) {
    settings.auth = parse_proxy_auth_scheme(proxy_protocol::to_string(*scheme)).value();
  }
  logs_in = true;
  return settings;
}

proxy_health::proxy_health(std::vector<proxy_spec> proxies) { replace(std::move(proxies)); }

std::size_t proxy_health::size() const {
  std::lock_guard lock(mutex_);
  return proxies_.size();
}

void proxy_health::replace(std::vector<proxy_spec> proxies) {
  std::lock_guard lock(mutex_);
  std::vector<status> next;
  for (auto& p : proxies) {
    const auto same = std::find_if(proxies_.begin(), proxies_.end(),
                                   [&](const status& s) { return s.spec.url == p.url; });
    status s = same != proxies_.end() ? std::move(*same) : status{};
    s.spec = std::move(p);
    next.push_back(std::move(s));
  }
  proxies_ = std::move(next);
}

bool proxy_health::record(std::string_view url, const reachability& outcome,
                          std::chrono::system_clock::time_point at) {
  std::lock_guard lock(mutex_);
  const auto it = std::find_if(proxies_.begin(), proxies_.end(),
                               [&](const status& s) { return s.spec.url == url; });
  return it != proxies_.end() && record_locked(*it, outcome, at);
}

bool proxy_health::record(std::size_t index, const reachability& outcome,
                          std::chrono::system_clock::time_point at) {
  std::lock_guard lock(mutex_);
  return record_locked(proxies_.at(index), outcome, at);
}

bool proxy_health::record_locked(status& s, const reachability& outcome,
                                 std::chrono::system_clock::time_point at) {
  const bool was = s.healthy;
  const bool first = !s.checked;
  s.checked = true;
  s.healthy = outcome.reachable;
  s.last_result = redact_urls(outcome.describe());  // shown on the status page
  s.last_elapsed = outcome.elapsed;
  if (s.healthy) {
    s.last_healthy = at;
    ++s.checks_passed;
  } else {
    ++s.checks_failed;
  }
  s.history.push_back({at, s.healthy, s.last_result, s.last_elapsed});
  if (s.history.size() > history_size) {
    s.history.pop_front();
  }
  if (s.healthy && (!was || first)) {
    spdlog::info("event=proxy_healthy proxy={} result=\"{}\" elapsed_ms={} hint=\"advertising "
                 "it\"", s.spec.url, s.last_result,
                 s.last_elapsed.count());
  } else if (!s.healthy && (was || first)) {
    spdlog::warn("event=proxy_unhealthy proxy={} result=\"{}\" hint=\"not advertised until it "
                 "passes again\"",
                 s.spec.url, s.last_result);
  }
  return was != s.healthy;
}

std::vector<proxy_protocol::proxy_entry> proxy_health::healthy() const {
  std::vector<proxy_protocol::proxy_entry> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& s : proxies_) {
      if (s.healthy) {
        out.push_back(advertised_entry(s.spec));
      }
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.priority < b.priority; });
  return out;
}

std::vector<proxy_health::status> proxy_health::snapshot() const {
  std::lock_guard lock(mutex_);
  return proxies_;
}

health_checker::health_checker(net::io_context& ioc, const live_config& config,
                               proxy_health& health, proxyhelper_counters& counters)
    : strand_(net::make_strand(ioc)),
      config_(config),
      health_(health),
      counters_(counters),
      timer_(strand_) {}

void health_checker::start(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  net::co_spawn(strand_, loop(), log_failure("proxy health checks"));
}

void health_checker::stop() {
  net::dispatch(strand_, [this] {
    stopped_ = true;
    timer_.cancel();
  });
}

void health_checker::check_now() {
  net::dispatch(strand_, [this] {
    if (checking_) {
      again_ = true;
    } else {
      timer_.cancel();  // the loop's wait ends and the next round starts
    }
  });
}

net::awaitable<void> health_checker::loop() {
  while (!stopped_) {
    checking_ = true;
    co_await check_all();
    checking_ = false;
    if (stopped_) {
      co_return;
    }
    if (again_) {
      again_ = false;
      continue;
    }
    timer_.expires_after(config_.get()->check_interval);
    co_await timer_.async_wait(net::as_tuple(net::use_awaitable));  // cancelled: check_now()
  }
}

net::awaitable<void> health_checker::check_all() {
  // Every proxy at once, so one that hangs until check_timeout does not delay the others.
  const auto config = config_.get();
  auto url = boost::urls::parse_absolute_uri(config->probe_url);
  const auto proxies = health_.snapshot();
  if (!url || proxies.empty()) {
    co_return;  // validate() refuses such a configuration
  }
  struct round {
    std::size_t pending = 0;
    net::steady_timer done;
    bool changed = false;
  };
  auto r = std::make_shared<round>(round{proxies.size(), net::steady_timer(strand_), false});
  r->done.expires_at(net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < proxies.size(); ++i) {
    reachability_request request;
    request.target = *url;
    bool logs_in = false;
    request.proxy = check_proxy_settings(proxies[i].spec, logs_in);
    request.proxy->address = link_local_proxy_route(proxies[i].spec.url);
    request.timeout = config->check_timeout;
    if (!config->probe_ca_file.empty()) {
      request.tls.ca_file = config->probe_ca_file;
    }
    net::co_spawn(
        strand_,
        [request]() -> net::awaitable<reachability> {
          co_return co_await check_reachable(request);
        },
        [this, url = proxies[i].spec.url, needs_credentials = proxies[i].spec.needs_credentials,
         logs_in, r](std::exception_ptr e, reachability outcome) {
          if (e) {
            log_failure("proxy health check", e);
            outcome.error = boost::system::errc::make_error_code(boost::system::errc::io_error);
            outcome.reachable = false;
          }
          // A proxy that needs credentials answers the helper's anonymous check with 407: it is
          // up and asks for what agents bring themselves. A 407 to a check that logged in says
          // the check's credentials are wrong: the proxy stays unhealthy.
          if (needs_credentials && !logs_in && outcome.error == http_errc::proxy_auth_failed) {
            outcome.reachable = true;
          }
          ++counters_.checks;
          if (!outcome.reachable) {
            ++counters_.check_failures;
          }
          r->changed = health_.record(url, outcome) || r->changed;
          if (--r->pending == 0) {
            r->done.cancel();
          }
        });
  }
  co_await r->done.async_wait(net::as_tuple(net::use_awaitable));
  if (r->changed && on_change_) {
    on_change_();
  }
}

}  // namespace lanrelay::proxyhelper
