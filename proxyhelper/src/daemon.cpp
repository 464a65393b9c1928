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
  std::error_code fs_error;
  std::filesystem::create_directories(config.state_dir, fs_error);
  if (fs_error) {
    spdlog::error("event=state_dir_error path={} error=\"{}\" hint=\"create it, fix its "
                  "permissions or set state.dir\"",
                  config.state_dir.string(), fs_error.message());
    return boost::system::error_code(fs_error);
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
    : ioc_(ioc),
      config_(std::move(config)),
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
      control_(net::make_strand(ioc)),
      signals_(control_, SIGTERM, SIGINT, SIGHUP),
      watchdog_(control_) {
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
  net::co_spawn(control_, signal_loop(), log_failure("signal handling"));
  net::post(control_, [this] {
    if (watchdog_.start()) {
      spdlog::info("event=watchdog_started");
    }
  });

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
  service::notify_ready(ready_status());
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

void daemon::reload() {
  service::notify_reloading();
  if (tls_) {
    const auto before = tls_->current()->fingerprint;
    if (auto reloaded = tls_->reload(); !reloaded) {
      spdlog::error("event=tls_reload_failed error=\"{}\" hint=\"the running certificate is "
                    "kept\"",
                    reloaded.error().message);
    } else if (tls_->current()->fingerprint != before) {
      spdlog::info("event=tls_certificate_reloaded certificate_sha256={}",
                   fingerprint_text(tls_->current()->fingerprint));
    }
  }
  if (!reload_source_) {
    spdlog::info("event=reload_skipped signal=SIGHUP hint=\"nothing to reload\"");
    service::notify_ready(ready_status());
    return;
  }
  auto loaded = reload_source_();
  if (!loaded.ok()) {
    for (const auto& diagnostic : loaded.diagnostics) {
      spdlog::error("event=reload_failed problem=\"{}\"", diagnostic.to_string());
    }
    spdlog::error("event=reload_failed problems={} hint=\"the running configuration is kept; fix "
                  "the file (proxyhelperd --check-config FILE) and send SIGHUP again\"",
                  loaded.diagnostics.size());
    service::notify_ready("reload failed: " + loaded.diagnostics.front().to_string() +
                          "; running the previous configuration");
    return;
  }
  proxyhelper_config next = std::move(loaded.config);
  const auto running = live_.get();
  std::vector<std::string> applied;
  std::vector<std::string> need_restart;
  for (auto& name : changed_settings(*running, next)) {
    (needs_restart(name) ? need_restart : applied).push_back(std::move(name));
  }
  // Settings that need a restart keep their running values, so that what /-/status and the
  // next reload compare against is what runs.
  next.state_dir = running->state_dir;
  next.signing_key = running->signing_key;
  next.query_port = running->query_port;
  next.ipv6 = running->ipv6;
  next.interface_rescan = running->interface_rescan;
  next.http_listen = running->http_listen;
  next.http_port = running->http_port;
  next.header_timeout = running->header_timeout;
  next.max_connections = running->max_connections;
  next.https = running->https;

  init_logging(next.log_level);  // validated by the loader
  responder_.update(next.rate_limit, next.new_source_rate, next.answer_lifetime);
  const bool proxies_changed = next.proxies != running->proxies;
  health_.replace(next.proxies);
  live_.set(std::move(next));
  if (proxies_changed) {
    checker_.check_now();  // new proxies are advertised once they pass
  }
  const auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
      out += (out.empty() ? "" : ",") + n;
    }
    return out.empty() ? std::string("none") : out;
  };
  spdlog::info("event=reloaded applied={}", join(applied));
  if (!need_restart.empty()) {
    spdlog::warn("event=reload_needs_restart settings={} hint=\"these changed settings keep "
                 "their running values until a restart\"",
                 join(need_restart));
  }
  service::notify_ready(need_restart.empty()
                            ? "configuration reloaded; " + ready_status()
                            : "configuration reloaded; restart to apply " + join(need_restart));
}

net::awaitable<void> daemon::signal_loop() {
  int signo = 0;
  while (true) {
    auto [ec, received] = co_await signals_.async_wait(net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return;
    }
    signo = received;
    if (signo != SIGHUP) {
      break;
    }
    reload();
  }
  spdlog::info("event=stopping signal={}", signo);
  service::notify_stopping("stopping");
  watchdog_.stop();
  responder_.stop();
  checker_.stop();
  http_->stop();
  // Health checks in flight and idle PAC connections hold nothing worth waiting for.
  ioc_.stop();
  spdlog::info("event=stopped");
}

}  // namespace lanrelay::proxyhelper
