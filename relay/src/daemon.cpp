#include "lanrelay/relay/daemon.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/machine_cookie.hpp"
#include "lanrelay/base/service_notify.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace lanrelay::relay {

namespace net = boost::asio;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// How often last-used times of cached items are written to the store's index.
constexpr std::chrono::seconds store_flush_interval{60};


std::string_view signal_name(int signo) {
  switch (signo) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    out += out.empty() ? "" : ",";
    out += name;
  }
  return out;
}

std::string host_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    return "localhost";
  }
  return host;
}

// mirror.public_url, or http://<host name>:<port>.
std::string public_url(const relay_config& config, std::uint16_t port) {
  if (!config.mirror.public_url.empty()) {
    return config.mirror.public_url;
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof host, "localhost");
  }
  return "http://" + std::string(host) + ":" + std::to_string(port);
}

}  // namespace

daemon::daemon(net::io_context& ioc, relay_config config, std::unique_ptr<content_store> store,
               std::unique_ptr<catalog_signer> signer, std::unique_ptr<mirror_service> mirrors,
               std::shared_ptr<server> srv, config_source reload_source)
    : ioc_(ioc),
      config_(std::move(config)),
      reload_source_(std::move(reload_source)),
      store_(std::move(store)),
      signer_(std::move(signer)),
      mirrors_(std::move(mirrors)),
      server_(std::move(srv)),
      control_(net::make_strand(ioc)),
      signals_(control_, SIGTERM, SIGINT),
      reload_signals_(control_, SIGHUP),
      flush_timer_(control_),
      watchdog_(control_) {
  if (config_.discovery.enabled) {
    discovery_ = std::make_unique<discovery_responder>(
        ioc, config_, *store_, server_->local_endpoint().port(),
        machine_cookie(config_.state_dir), [srv = server_]() {
          return static_cast<std::uint16_t>(std::min<std::uint32_t>(srv->free_slots(), 0xffff));
        },
        server_->counters().discovery, mirrors_.get());
  }
  // The status page, /-/status and /-/metrics show the mirror sources; mirrors_ outlives the
  // server's use of it like the handler's (the io_context stops before the daemon is destroyed).
  if (mirrors_->has_sources()) {
    server_->monitor().set_mirror_provider([mirrors = mirrors_.get()] {
      std::vector<mirror_report> out;
      for (auto& view : mirrors->status()) {
        mirror_report r;
        r.name = std::move(view.name);
        r.upstream = std::move(view.upstream);
        r.status = std::move(view.status);
        r.route = std::move(view.route);
        r.blocked = std::move(view.blocked);
        r.syncs_ok = view.syncs_ok;
        r.syncs_not_modified = view.syncs_not_modified;
        r.syncs_failed = view.syncs_failed;
        out.push_back(std::move(r));
      }
      return out;
    });
  }
  server_->monitor().set_upstream_bytes(
      [mirrors = mirrors_.get()] { return mirrors->upstream_bytes(); });
}

daemon::~daemon() = default;

result<std::unique_ptr<daemon>> daemon::create(net::io_context& ioc, relay_config config,
                                               config_source reload_source) {
  std::error_code fs_error;
  std::filesystem::create_directories(config.state_dir, fs_error);
  if (fs_error) {
    spdlog::error("event=state_dir_error dir={} error=\"{}\" hint=\"create it, fix its "
                  "permissions or set state.dir\"",
                  config.state_dir.string(), fs_error.message());
    return boost::system::error_code(fs_error);
  }
  const auto cache_dir = config.state_dir / "cache";
  auto store = content_store::open({cache_dir, config.cache_max_size});
  if (!store) {
    spdlog::error("event=cache_open_error dir={} error=\"{}\"", cache_dir.string(),
                  store.error().message());
    return store.error();
  }
  auto signer = catalog_signer::from_config(config);
  if (!signer) {
    return signer.error();
  }
  std::shared_ptr<tls_server_context> tls;
  if (config.https.enabled) {
    auto context = tls_server_context::create(tls_identity_source{
        .certificate = config.https.certificate,
        .private_key = config.https.private_key,
        .state_dir = config.state_dir,
        .stem = "tls",
        .common_name = "lanrelay " + host_name()});
    if (!context) {
      spdlog::error("event=tls_identity_error error=\"{}\" hint=\"fix the files, or set "
                    "https.enabled = false\"",
                    context.error().message);
      return context.error().code;
    }
    tls = std::move(*context);
    if (*signer) {
      (*signer)->set_tls_certificates({tls->current()->fingerprint});
    }
  }
  auto mirrors = std::make_unique<mirror_service>(ioc, config, public_url(config, config.http.port));
  auto srv = server::create(ioc, config, **store, signer->get(), mirrors.get(), tls);
  if (!srv) {
    return srv.error();
  }
  mirrors->set_public_base(public_url(config, (*srv)->local_endpoint().port()));
  auto d = std::make_unique<daemon>(ioc, std::move(config), std::move(*store), std::move(*signer),
                                    std::move(mirrors), std::move(*srv), std::move(reload_source));
  d->tls_ = std::move(tls);
  if (d->tls_) {
    d->server_->monitor().set_https([tls = d->tls_, port = d->server_->tls_local_endpoint().port()] {
      return https_report{port, fingerprint_text(tls->current()->fingerprint)};
    });
  }
  return d;
}

net::ip::tcp::endpoint daemon::local_endpoint() const { return server_->local_endpoint(); }

void daemon::start() {
  if (discovery_ && !discovery_->start()) {
    spdlog::error("event=discovery_unavailable port={} hint=\"agents cannot find this relay by "
                  "query; free the port or set discovery.port\"",
                  config_.discovery.port);
    discovery_.reset();
  }
  server_->start();
  mirrors_->start();
  net::co_spawn(control_, signal_loop(), log_failure("signal handling"));
  net::co_spawn(control_, flush_loop(), log_failure("cache flushing"));
  net::co_spawn(control_, reload_loop(), log_failure("configuration reload"));

  const auto endpoint = server_->local_endpoint();
  const auto address = endpoint.address();
  const std::string shown =
      address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  spdlog::info("event=listening address={} port={} max_peers={} cache={} items={} bytes={}",
               shown, endpoint.port(), config_.max_peers, store_->dir().string(),
               store_->list().size(), store_->total_size());
  if (tls_) {
    const auto fingerprint = fingerprint_text(tls_->current()->fingerprint);
    const auto https_port = server_->tls_local_endpoint().port();
    spdlog::info("event=listening_https port={} certificate_sha256={}", https_port, fingerprint);
    // Before "listening on": whoever waits for that line finds this one complete.
    std::printf("https on %s:%u certificate sha256 %s\n", shown.c_str(),
                static_cast<unsigned>(https_port), fingerprint.c_str());
  }
  std::printf("listening on %s:%u\n", shown.c_str(), static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);
  net::dispatch(control_, [this] { watchdog_.start(); });
  service::notify_ready("serving on port " + std::to_string(endpoint.port()));
}

net::awaitable<void> daemon::signal_loop() {
  auto [ec, signo] = co_await signals_.async_wait(use_tuple);
  if (ec) {
    co_return;
  }
  spdlog::info("event=stopping signal={} grace_ms={} hint=\"send it again to cancel running "
               "transfers\"",
               signal_name(signo), config_.shutdown_grace.count());
  stopping_ = true;
  service::notify_stopping("stopping; running transfers may finish");
  flush_timer_.cancel();
  if (discovery_) {
    discovery_->stop();  // no more offers for a relay that is going away
  }
  mirrors_->stop();  // a sync cut short resumes at the next start
  server_->stop([this](bool clean) {
    net::post(control_, [this, clean] {
      flush_store();
      signals_.cancel();
      reload_signals_.cancel();
      watchdog_.stop();
      if (!clean) {
        ioc_.stop();  // connections that ignored cancellation must not keep the process alive
      }
      spdlog::info("event=stopped clean={}", clean);
    });
  });
  auto [again, signo_again] = co_await signals_.async_wait(use_tuple);
  if (!again) {
    spdlog::warn("event=stopping_now signal={} hint=\"cancelling running transfers\"",
                 signal_name(signo_again));
    server_->abort();
  }
}

net::awaitable<void> daemon::flush_loop() {
  while (!stopping_) {
    flush_timer_.expires_after(store_flush_interval);
    auto [ec] = co_await flush_timer_.async_wait(use_tuple);
    if (ec || stopping_) {
      co_return;
    }
    flush_store();
  }
}

void daemon::flush_store() {
  if (auto flushed = store_->flush(); !flushed) {
    spdlog::warn("event=cache_flush_error dir={} error=\"{}\"", store_->dir().string(),
                 flushed.error().message());
  }
}

// ---- configuration reload ------------------------------------------------------------------

net::awaitable<void> daemon::reload_loop() {
  for (;;) {
    auto [ec, signo] = co_await reload_signals_.async_wait(use_tuple);
    if (ec) {
      co_return;  // cancelled: the daemon has stopped
    }
    if (stopping_) {
      spdlog::info("event=reload_skipped signal={} hint=\"stopping\"", signal_name(signo));
      continue;
    }
    reload();
  }
}

void daemon::reload_certificate() {
  if (!tls_) {
    return;
  }
  const auto before = tls_->current()->fingerprint;
  if (auto reloaded = tls_->reload(); !reloaded) {
    spdlog::error("event=tls_reload_failed error=\"{}\" hint=\"the running certificate is kept\"",
                  reloaded.error().message);
    return;
  }
  const auto after = tls_->current()->fingerprint;
  if (after == before) {
    return;
  }
  if (signer_) {
    // Agents pinned to the old certificate learn the new one from the next catalog.
    signer_->set_tls_certificates({after});
  }
  spdlog::info("event=tls_certificate_reloaded certificate_sha256={}", fingerprint_text(after));
}

void daemon::reload() {
  service::notify_reloading();
  reload_certificate();
  if (!reload_source_) {
    spdlog::info("event=reload_skipped signal=SIGHUP hint=\"lanrelayd runs without --config, "
                 "nothing to reload\"");
    service::notify_ready("running on built-in defaults; nothing to reload");
    return;
  }
  const config_load_result loaded = reload_source_();
  if (!loaded.ok()) {
    for (const auto& diagnostic : loaded.diagnostics) {
      spdlog::error("event=reload_failed problem=\"{}\"", diagnostic.to_string());
    }
    spdlog::error("event=reload_failed problems={} hint=\"the running configuration is kept; fix "
                  "the file (lanrelayd --check-config FILE) and send SIGHUP again\"",
                  loaded.diagnostics.size());
    service::notify_ready("reload failed: " + loaded.diagnostics.front().to_string() +
                          "; running the previous configuration");
    return;
  }
  const auto need_restart = apply_changes(loaded.config);
  if (!need_restart.empty()) {
    spdlog::warn("event=reload_needs_restart settings={} hint=\"these changed settings keep "
                 "their running values until a restart\"",
                 join(need_restart));
  }
  service::notify_ready(need_restart.empty()
                            ? "configuration reloaded"
                            : "configuration reloaded; restart to apply " + join(need_restart));
}

std::vector<std::string> daemon::apply_changes(const relay_config& next) {
  std::vector<std::string> applied;
  std::vector<std::string> need_restart;
  for (const std::string& name : changed_settings(config_, next)) {
    if (name == "peers.max_peers") {
      server_->set_max_peers(next.max_peers);
      config_.max_peers = next.max_peers;
    } else if (name == "peers.max_peers_per_client") {
      server_->set_max_peers_per_client(next.client_share.max_peers_per_client);
      config_.client_share.max_peers_per_client = next.client_share.max_peers_per_client;
    } else if (name == "peers.retry_after") {
      server_->set_retry_after(next.retry_after);
      config_.retry_after = next.retry_after;
    } else if (name == "log.level") {
      init_logging(next.log_level);  // validated by the loader
      config_.log_level = next.log_level;
    } else if (name == "cache.max_size") {
      config_.cache_max_size = next.cache_max_size;
      if (auto resized = store_->set_max_size(next.cache_max_size); !resized) {
        // The new limit holds for later adds even when evicting now failed.
        spdlog::error("event=cache_resize_failed max_size={} error=\"{}\"",
                      next.cache_max_size, resized.error().message());
      }
    } else if (name == "admin.token" || name == "admin.read_networks") {
      // Validated by the loader; a token can be rotated without a restart.
      auto access = access_policy::from_config(next.admin);
      if (!access) {
        need_restart.push_back(name);
        continue;
      }
      server_->set_access_policy(std::move(*access));
      config_.admin = next.admin;
    } else if (name == "discovery.rate_limit") {
      if (discovery_) {
        discovery_->set_rate_limit(next.discovery.rate_limit);
      }
      config_.discovery.rate_limit = next.discovery.rate_limit;
    } else {
      need_restart.push_back(name);
      continue;
    }
    applied.push_back(name);
  }
  spdlog::info("event=reloaded applied={} max_peers={} retry_after_s={} log_level={} "
               "cache_max_size={} discovery_rate_limit={}",
               applied.empty() ? "none" : join(applied), config_.max_peers,
               config_.retry_after.count(), config_.log_level, config_.cache_max_size,
               config_.discovery.rate_limit);
  return need_restart;
}

// ---- threads ---------------------------------------------------------------------------------

unsigned worker_threads(const relay_config& config) noexcept {
  if (config.http.threads != 0) {
    return config.http.threads;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores != 0 ? cores : 1;
}

void run_io_context(net::io_context& ioc, unsigned threads) {
  std::vector<std::thread> workers;
  workers.reserve(threads > 0 ? threads - 1 : 0);
  for (unsigned i = 1; i < threads; ++i) {
    workers.emplace_back([&ioc] { ioc.run(); });
  }
  ioc.run();
  for (auto& worker : workers) {
    worker.join();
  }
}

}  // namespace lanrelay::relay
