#include "lanrelay/proxyhelper/daemon.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/machine_cookie.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>

namespace lanrelay::proxyhelper {

namespace net = boost::asio;

result<std::unique_ptr<daemon>> daemon::create(net::io_context& ioc, proxyhelper_config config,
                                               config_source reload_source) {
  if (const auto problems = validate(config); !problems.empty()) {
    for (const auto& problem : problems) {
      spdlog::error("event=config_error problem=\"{}\"", problem);
    }
    return errc::invalid_config;
  }
  if (const auto error = runtime::create_state_dir(config.state_dir)) {
    return error;
  }
  const auto key_path = signing_key_path(config);
  bool created = false;
  auto key = site_key::load_or_generate(key_path, &created);
  if (!key) {
    spdlog::error("event=signing_key_error error=\"{}\"", key.error().message);
    return key.error().code;
  }
  if (created) {
    spdlog::info("event=signing_key_created path={} hint=\"pin its public key on the agents\"",
                 key_path.string());
  }
  std::shared_ptr<tls_server_context> tls;
  if (config.https.enabled) {
    auto context = tls_server_context::create(
        tls_identity_source{.certificate = config.https.certificate,
                            .private_key = config.https.private_key,
                            .state_dir = config.state_dir,
                            .stem = "proxyhelper-tls",
                            .common_name = "proxyhelperd"});
    if (!context) {
      spdlog::error("event=tls_identity_error error=\"{}\" hint=\"fix the files, or set "
                    "https.enabled = false\"",
                    context.error().message);
      return context.error().code;
    }
    tls = std::move(*context);
  }
  const auto cookie = machine_cookie(config.state_dir);
  auto d = std::make_unique<daemon>(ioc, std::move(config), std::move(*key), cookie,
                                    std::move(reload_source), std::move(tls));
  if (!d->http_) {
    return errc::invalid_config;  // pac_server::create logged why
  }
  return d;
}

daemon::daemon(net::io_context& ioc, proxyhelper_config config, site_key key, std::uint64_t cookie,
               config_source reload_source, std::shared_ptr<tls_server_context> tls)
    : config_(std::move(config)),
      live_(config_),
      reload_source_(std::move(reload_source)),
      key_(std::move(key)),
      tls_(std::move(tls)),
      health_(config_.proxies),
      checker_(ioc, live_, health_, counters_),
      responder_(ioc, config_, cookie, &key_, [this] { return health_.healthy(); }, counters_,
                 &queries_),
      monitor_{counters_, health_, queries_, key_.public_key().to_string(),
               std::chrono::system_clock::now()},
      runtime_(ioc, runtime::daemon_hooks{
                        .program = "proxyhelperd",
                        .grace = {},
                        .before_reload = [this] { reload_certificate(); },
                        .reload = reload_source_ ? std::function<runtime::reload_result()>(
                                                       [this] { return reload_config(); })
                                                 : nullptr,
                        .status = [this] { return ready_status(); },
                        .stop = [this](std::function<void(bool)> stopped) {
                          stop(std::move(stopped));
                        },
                        .abort = {},
                        // Health checks in flight and idle PAC connections hold nothing worth
                        // waiting for.
                        .stop_io_context = true,
                    }) {
  register_metrics(metrics_, monitor_);
  auto http = pac_server::create(
      ioc, pac_context{config_, health_, counters_, key_.public_key().to_string(), &monitor_,
                       &metrics_, &live_, tls_});
  if (http) {
    http_ = std::move(*http);
    if (tls_) {
      monitor_.tls = tls_;
      monitor_.https_port = http_->tls_local_endpoint().port();
    }
  }
}

daemon::~daemon() = default;

bool daemon::start() {
  if (!responder_.start()) {
    spdlog::error("event=listen_error protocol=udp port={} hint=\"no socket could be opened for "
                  "proxy queries; free the port or set query.port\"",
                  config_.query_port);
    return false;
  }
  checker_.start([this] { notify_health(); });
  http_->start();

  const auto endpoint = http_->local_endpoint();
  const auto address = endpoint.address();
  const std::string shown = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  const auto public_key = key_.public_key().to_string();
  spdlog::info("event=listening udp={} http={}:{} proxies={} public_key={}",
               responder_.port(), shown, endpoint.port(), config_.proxies.size(), public_key);
  if (tls_) {
    const auto fingerprint = fingerprint_text(tls_->current()->fingerprint);
    spdlog::info("event=https_listening port={} certificate_sha256={}",
                 http_->tls_local_endpoint().port(), fingerprint);
    std::printf("https on %s:%u certificate sha256 %s\n", shown.c_str(),
                static_cast<unsigned>(http_->tls_local_endpoint().port()), fingerprint.c_str());
  }
  std::printf("public key %s\nlistening on udp %u http %s:%u\n", public_key.c_str(),
              static_cast<unsigned>(responder_.port()), shown.c_str(),
              static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);
  runtime_.start(ready_status());
  return true;
}

std::string daemon::ready_status() const {
  std::size_t healthy = 0;
  const auto snapshot = health_.snapshot();
  for (const auto& s : snapshot) {
    healthy += s.healthy ? 1 : 0;
  }
  return "answering on udp " + std::to_string(responder_.port()) + "; " +
         std::to_string(healthy) + " of " + std::to_string(snapshot.size()) + " proxies healthy";
}

void daemon::notify_health() { service::notify_status(ready_status()); }

void daemon::reload_certificate() {
  if (tls_) {
    tls_->reload_and_log();
  }
}

runtime::reload_result daemon::reload_config() {
  runtime::reload_result result;
  auto accepted = runtime::accept_reload(reload_source_(), result);
  if (!accepted) {
    return result;
  }
  proxyhelper_config next = std::move(*accepted);
  const auto running = live_.get();
  // Settings that need a restart keep their running values, so that what /-/status and the
  // next reload compare against is what runs.
  result.plan = plan_reload(*running, next);
  // Readers see the new configuration before the hooks run: a new proxy's first health check
  // (set_proxies) uses the new [health] settings.
  live_.set(next);
  result.problems = run_reload_hooks(result.plan, *running, next, *this);
  if (!result.problems.empty()) {
    live_.set(std::move(next));  // with the values whose hooks refused put back
  }
  return result;
}

std::optional<std::string> daemon::set_log_level(const std::string& level) {
  init_logging(level);  // validated by the loader
  return std::nullopt;
}

std::optional<std::string> daemon::set_query_limits(std::uint32_t rate_limit,
                                                    std::uint32_t new_source_rate,
                                                    std::chrono::seconds answer_lifetime) {
  responder_.update(rate_limit, new_source_rate, answer_lifetime);
  return std::nullopt;
}

std::optional<std::string> daemon::set_proxies(const std::vector<proxy_spec>& proxies) {
  health_.replace(proxies);
  checker_.check_now();  // new proxies are advertised once they pass
  return std::nullopt;
}

// The first SIGTERM or SIGINT (runtime.hpp): stop answering at once.
void daemon::stop(std::function<void(bool clean)> stopped) {
  responder_.stop();
  checker_.stop();
  http_->stop();
  stopped(true);
}

}  // namespace lanrelay::proxyhelper
