#include "lanrelay/daemon/runtime.hpp"

#include "lanrelay/base/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <string_view>
#include <thread>

namespace lanrelay::runtime {

namespace net = boost::asio;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

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

}  // namespace

boost::system::error_code create_state_dir(const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    spdlog::error("event=state_dir_error dir={} error=\"{}\" hint=\"create it, fix its "
                  "permissions or set state.dir\"",
                  dir.string(), error.message());
  }
  return boost::system::error_code(error);
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    out += out.empty() ? "" : ",";
    out += name;
  }
  return out.empty() ? std::string("none") : out;
}

runtime::runtime(net::io_context& ioc, daemon_hooks hooks)
    : ioc_(ioc),
      hooks_(std::move(hooks)),
      control_(net::make_strand(ioc)),
      stop_signals_(control_, SIGTERM, SIGINT),
      reload_signals_(control_, SIGHUP),
      deadline_(control_),
      watchdog_(control_) {}

void runtime::start(const std::string& ready_status) {
  net::co_spawn(control_, stop_loop(), log_failure("signal handling"));
  net::co_spawn(control_, reload_loop(), log_failure("configuration reload"));
  net::dispatch(control_, [this] { watchdog_.start(); });
  service::notify_ready(ready_status);
}

net::awaitable<void> runtime::stop_loop() {
  auto [ec, signo] = co_await stop_signals_.async_wait(use_tuple);
  if (ec) {
    co_return;
  }
  spdlog::info("event=stopping program={} signal={} grace_ms={} hint=\"send it again to cancel "
               "what still runs\"",
               hooks_.program, signal_name(signo), hooks_.grace.count());
  stopping_ = true;
  service::notify_stopping("stopping; running transfers may finish");
  net::co_spawn(control_, stop_deadline(), log_failure("stop deadline"));
  hooks_.stop([this](bool clean) { net::dispatch(control_, [this, clean] { finish_stop(clean); }); });
  if (stopped_) {
    co_return;  // the daemon stopped at once (proxyhelperd): no second signal to wait for
  }
  auto [again, signo_again] = co_await stop_signals_.async_wait(use_tuple);
  if (!again && hooks_.abort) {
    spdlog::warn("event=stopping_now program={} signal={} hint=\"cancelling what still runs\"",
                 hooks_.program, signal_name(signo_again));
    hooks_.abort();
  }
}

net::awaitable<void> runtime::stop_deadline() {
  if (stopped_) {
    co_return;
  }
  deadline_.expires_after(hooks_.grace + stop_backstop);
  auto [ec] = co_await deadline_.async_wait(use_tuple);
  if (ec || stopped_) {
    co_return;  // the stop finished in time
  }
  spdlog::warn("event=stop_overdue program={} grace_ms={} hint=\"cancelling what still runs\"",
               hooks_.program, hooks_.grace.count());
  if (hooks_.abort) {
    hooks_.abort();
  }
  finish_stop(false);
}

void runtime::finish_stop(bool clean) {
  if (stopped_) {
    return;  // the backstop came first
  }
  stopped_ = true;
  deadline_.cancel();
  stop_signals_.cancel();
  reload_signals_.cancel();
  watchdog_.stop();
  spdlog::info("event=stopped program={} clean={}", hooks_.program, clean);
  if (!clean || hooks_.stop_io_context) {
    ioc_.stop();  // what ignored cancellation must not keep the process alive
  }
}

net::awaitable<void> runtime::reload_loop() {
  for (;;) {
    auto [ec, signo] = co_await reload_signals_.async_wait(use_tuple);
    if (ec) {
      co_return;  // cancelled: the daemon has stopped
    }
    if (stopping_) {
      spdlog::info("event=reload_skipped signal={} reason=stopping", signal_name(signo));
      continue;
    }
    reload();
  }
}

void runtime::reload() {
  service::notify_reloading();
  if (hooks_.before_reload) {
    hooks_.before_reload();
  }
  const auto status = [this] { return hooks_.status ? hooks_.status() : std::string(); };
  if (!hooks_.reload) {
    spdlog::info("event=reload_skipped program={} signal=SIGHUP hint=\"runs without --config, "
                 "nothing to reload\"",
                 hooks_.program);
    const auto now = status();
    service::notify_ready(now.empty() ? "running on built-in defaults; nothing to reload" : now);
    return;
  }
  const reload_result result = hooks_.reload();
  if (!result.diagnostics.empty()) {
    for (const auto& diagnostic : result.diagnostics) {
      spdlog::error("event=reload_failed problem=\"{}\"", diagnostic.to_string());
    }
    spdlog::error("event=reload_failed problems={} hint=\"the running configuration is kept; fix "
                  "the file ({} --check-config FILE) and send SIGHUP again\"",
                  result.diagnostics.size(), hooks_.program);
    service::notify_ready("reload failed: " + result.diagnostics.front().to_string() +
                          "; running the previous configuration");
    return;
  }
  for (const auto& problem : result.problems) {
    spdlog::error("event=reload_apply_failed setting=\"{}\" hint=\"the running value is kept "
                  "until a restart\"",
                  problem);
  }
  const auto& plan = result.plan;
  spdlog::info("event=reloaded applied={} need_restart={}", join_names(plan.applied),
               join_names(plan.need_restart));
  if (!plan.need_restart.empty()) {
    spdlog::warn("event=reload_needs_restart settings={} hint=\"these changed settings keep "
                 "their running values until a restart\"",
                 join_names(plan.need_restart));
    service::notify_ready("configuration reloaded; restart to apply " +
                          join_names(plan.need_restart));
    return;
  }
  const auto now = status();
  service::notify_ready(now.empty() ? "configuration reloaded" : "configuration reloaded; " + now);
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

}  // namespace lanrelay::runtime
