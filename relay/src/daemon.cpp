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
               std::shared_ptr<server> srv, config_source reload_source,
               std::unique_ptr<parent_chain> parents)
    : config_(std::move(config)),
      reload_source_(std::move(reload_source)),
      store_(std::move(store)),
      signer_(std::move(signer)),
      mirrors_(std::move(mirrors)),
      parents_(std::move(parents)),
      server_(std::move(srv)),
      runtime_(ioc, runtime::daemon_hooks{
                        .program = "lanrelayd",
                        .grace = config_.shutdown_grace,
                        .before_reload = [this] { reload_certificate(); },
                        .reload = reload_source_ ? std::function<runtime::reload_result()>(
                                                       [this] { return reload_config(); })
                                                 : nullptr,
                        .status = {},
                        .stop = [this](std::function<void(bool)> stopped) {
                          stop(std::move(stopped));
                        },
                        .abort = [this] { server_->abort(); },
                    }),
      flush_timer_(runtime_.control()) {
  if (config_.discovery.enabled) {
    discovery_ = std::make_unique<discovery_responder>(
        ioc, config_, *store_, server_->local_endpoint().port(),
        machine_cookie(config_.state_dir), [srv = server_]() {
          return static_cast<std::uint16_t>(std::min<std::uint32_t>(srv->free_slots(), 0xffff));
        },
        server_->counters().discovery, mirrors_.get(), parents_.get());
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
        r.freshness = std::move(view.freshness);
        r.interval = view.interval;
        r.rate = std::move(view.rate);
        out.push_back(std::move(r));
      }
      return out;
    });
    server_->monitor().set_mirror_total_rate([mirrors = mirrors_.get()] { return mirrors->total_rate(); });
  }
  server_->monitor().set_disk(config_.state_dir, config_.cache_min_free);
  server_->monitor().set_upstream_bytes(
      [mirrors = mirrors_.get()] { return mirrors->upstream_bytes(); });
}

daemon::~daemon() = default;

result<std::unique_ptr<daemon>> daemon::create(net::io_context& ioc, relay_config config,
                                               config_source reload_source,
                                               io_pool* connections) {
  if (const auto error = runtime::create_state_dir(config.state_dir)) {
    return error;
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
  std::unique_ptr<parent_chain> parents;
  if (!config.discovery.parents.empty()) {
    parent_chain::settings chain{.port = config.discovery.port,
                                 .cookie = machine_cookie(config.state_dir),
                                 .query_window = config.discovery.parent_query_window,
                                 .pull_wait = config.discovery.parent_pull_wait,
                                 .max_pulls = config.discovery.parent_max_pulls};
    for (const auto& text : config.discovery.parents) {
      boost::system::error_code ec;
      const auto address = net::ip::make_address(text, ec);
      if (!ec) {  // the configuration refused anything else
        chain.parents.push_back(address);
      }
    }
    std::string listed;
    for (const auto& text : config.discovery.parents) {
      listed += (listed.empty() ? "" : ",") + text;
    }
    spdlog::info("event=discovery_parents parents={}", listed);
    parents = std::make_unique<parent_chain>(ioc, std::move(chain), **store);
  }
  auto srv = server::create(ioc, config, **store, signer->get(), mirrors.get(), tls,
                            parents.get(), connections);
  if (!srv) {
    return srv.error();
  }
  mirrors->set_public_base(public_url(config, (*srv)->local_endpoint().port()));
  auto d = std::make_unique<daemon>(ioc, std::move(config), std::move(*store), std::move(*signer),
                                    std::move(mirrors), std::move(*srv), std::move(reload_source),
                                    std::move(parents));
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
  net::co_spawn(runtime_.control(), flush_loop(), log_failure("cache flushing"));

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
  runtime_.start("serving on port " + std::to_string(endpoint.port()));
}

// The first SIGTERM or SIGINT (runtime.hpp): no more offers, no more syncs, and the server
// lets running transfers finish within shutdown.grace_period.
void daemon::stop(std::function<void(bool clean)> stopped) {
  flush_timer_.cancel();
  if (discovery_) {
    discovery_->stop();  // no more offers for a relay that is going away
  }
  mirrors_->stop();  // a sync cut short resumes at the next start
  server_->stop([this, stopped = std::move(stopped)](bool clean) {
    net::post(runtime_.control(), [this, stopped, clean] {
      flush_store();
      stopped(clean);
    });
  });
}

net::awaitable<void> daemon::flush_loop() {
  while (!runtime_.stopping()) {
    flush_timer_.expires_after(store_flush_interval);
    auto [ec] = co_await flush_timer_.async_wait(use_tuple);
    if (ec || runtime_.stopping()) {
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

void daemon::reload_certificate() {
  if (!tls_) {
    return;
  }
  if (const auto changed = tls_->reload_and_log(); changed && signer_) {
    // Agents pinned to the old certificate learn the new one from the next catalog.
    signer_->set_tls_certificates({*changed});
  }
}

runtime::reload_result daemon::reload_config() {
  runtime::reload_result result;
  auto accepted = runtime::accept_reload(reload_source_(), result);
  if (!accepted) {
    return result;
  }
  relay_config next = std::move(*accepted);
  result.plan = plan_reload(config_, next);
  result.problems = run_reload_hooks(result.plan, config_, next, *this);
  config_ = std::move(next);
  return result;
}

std::optional<std::string> daemon::set_cache_max_size(std::uint64_t bytes) {
  if (auto resized = store_->set_max_size(bytes); !resized) {
    // The new limit holds for later adds even when evicting now failed.
    spdlog::error("event=cache_evict_failed max_size={} error=\"{}\"", bytes,
                  resized.error().message());
  }
  return std::nullopt;
}

std::optional<std::string> daemon::set_max_peers(std::uint32_t slots) {
  server_->set_max_peers(slots);
  return std::nullopt;
}

std::optional<std::string> daemon::set_max_peers_per_client(std::uint32_t slots) {
  server_->set_max_peers_per_client(slots);
  return std::nullopt;
}

std::optional<std::string> daemon::set_retry_after(std::chrono::seconds after) {
  server_->set_retry_after(after);
  return std::nullopt;
}

std::optional<std::string> daemon::set_discovery_rate_limit(std::uint32_t per_second) {
  if (discovery_) {
    discovery_->set_rate_limit(per_second);
  }
  return std::nullopt;
}

std::optional<std::string> daemon::set_log_level(const std::string& level) {
  init_logging(level);  // validated by the loader
  return std::nullopt;
}

std::optional<std::string> daemon::set_admin(const admin_settings& admin) {
  // Validated by the loader; a token can be rotated without a restart.
  auto access = access_policy::from_config(admin);
  if (!access) {
    return access.error().message();
  }
  server_->set_access_policy(std::move(*access));
  return std::nullopt;
}

// ---- threads ---------------------------------------------------------------------------------

unsigned worker_threads(const relay_config& config) noexcept {
  if (config.http.threads != 0) {
    return config.http.threads;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores != 0 ? cores : 1;
}

}  // namespace lanrelay::relay
