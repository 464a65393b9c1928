#include "lanrelay/relay/daemon.hpp"

#include "lanrelay/common/log.hpp"
#include "lanrelay/common/machine_cookie.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
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
    default:
      return "a signal";
  }
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
               std::shared_ptr<server> srv)
    : ioc_(ioc),
      config_(std::move(config)),
      store_(std::move(store)),
      signer_(std::move(signer)),
      mirrors_(std::move(mirrors)),
      server_(std::move(srv)),
      control_(net::make_strand(ioc)),
      signals_(control_, SIGTERM, SIGINT),
      flush_timer_(control_) {
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

result<std::unique_ptr<daemon>> daemon::create(net::io_context& ioc, relay_config config) {
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
  auto mirrors = std::make_unique<mirror_service>(ioc, config, public_url(config, config.http.port));
  auto srv = server::create(ioc, config, **store, signer->get(), mirrors.get());
  if (!srv) {
    return srv.error();
  }
  mirrors->set_public_base(public_url(config, (*srv)->local_endpoint().port()));
  return std::make_unique<daemon>(ioc, std::move(config), std::move(*store), std::move(*signer),
                                  std::move(mirrors), std::move(*srv));
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

  const auto endpoint = server_->local_endpoint();
  const auto address = endpoint.address();
  const std::string shown =
      address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  spdlog::info("event=listening address={} port={} max_peers={} cache={} items={} bytes={}",
               shown, endpoint.port(), config_.max_peers, store_->dir().string(),
               store_->list().size(), store_->total_size());
  std::printf("listening on %s:%u\n", shown.c_str(), static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);
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
  flush_timer_.cancel();
  if (discovery_) {
    discovery_->stop();  // no more offers for a relay that is going away
  }
  mirrors_->stop();  // a sync cut short resumes at the next start
  server_->stop([this](bool clean) {
    net::post(control_, [this, clean] {
      flush_store();
      signals_.cancel();
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
