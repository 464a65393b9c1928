#pragma once

// The runtime both daemons run in (lanrelayd: relay/daemon.cpp, proxyhelperd:
// proxyhelper/src/daemon.cpp). A daemon supplies its settings table (through its reload
// function), the parts it builds and runs, and the hooks below; the runtime owns what is the
// same in both:
//
//   - Signals: SIGTERM or SIGINT begins a graceful stop (hooks.stop); a second one cancels what
//     still runs (hooks.abort). SIGHUP reloads.
//   - Service manager (base/service_notify.hpp): READY=1 with a status once started,
//     WATCHDOG=1 every half WatchdogSec, RELOADING=1 ... READY=1 around each reload, STOPPING=1
//     when the stop begins.
//   - Reload: hooks.before_reload (files outside the configuration, such as the TLS pair), then
//     hooks.reload reads the file again with the command line's overrides and validates it. An
//     invalid file is logged (file:line:column) and the running configuration kept; a valid one
//     is applied setting by setting as the settings table says (reloadable, apply hook), and the
//     runtime logs which settings changed, which were applied and which need a restart.
//
// A stop is bounded: hooks.stop gets `grace` plus stop_backstop to call `stopped`, then the
// runtime aborts and stops the io_context, so no daemon outlives its grace period by more.
//
// Threads: the signal sets, the watchdog and `stopping` live on one strand (control()); every
// hook is called on it. hooks.stop's completion may be called from any thread.

#include "lanrelay/base/service_notify.hpp"
#include "lanrelay/base/settings_table.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::runtime {

// What a reload did: a refused file (diagnostics), or the settings table's decision and the
// apply hooks' problems.
struct reload_result {
  std::vector<config_diagnostic> diagnostics;  // not empty: nothing was applied
  settings::reload_plan plan;
  std::vector<std::string> problems;  // "section.key: why" for hooks that kept a running value
};

// A reload's first step, the same in both daemons: a refused file ends the reload with its
// diagnostics in `result` and nothing applied (nullopt); a valid one is the configuration to plan
// and apply.
template <class Config>
std::optional<Config> accept_reload(basic_config_load_result<Config> loaded, reload_result& result) {
  if (!loaded.ok()) {
    result.diagnostics = std::move(loaded.diagnostics);
    return std::nullopt;
  }
  return std::move(loaded.config);
}

// What the runtime adds to a daemon's grace period before it cuts a stop short itself.
inline constexpr std::chrono::seconds stop_backstop{5};

struct daemon_hooks {
  std::string program;                // "lanrelayd", in log lines and hints
  // How long a stop may take. hooks.stop enforces it (lanrelayd's server cancels transfers at
  // its end); the runtime is the backstop: when `stopped` has not come stop_backstop after the
  // grace period, it calls hooks.abort and stops the io_context itself.
  std::chrono::milliseconds grace{};

  // SIGHUP, first step, with or without a configuration file: re-read files the daemon uses
  // beside its configuration (the TLS certificate and key). Optional.
  std::function<void()> before_reload;
  // Reads the configuration again and applies it (plan_reload, then run_reload_hooks of the
  // daemon's table). Empty: the daemon runs without a file, so SIGHUP re-reads nothing else.
  std::function<reload_result()> reload;
  // The STATUS= text while running; optional.
  std::function<std::string()> status;

  // First SIGTERM or SIGINT: stop taking new work and call `stopped(clean)` once what runs has
  // finished (clean) or was cut at the end of the grace period (not clean).
  std::function<void(std::function<void(bool clean)> stopped)> stop;
  // A second SIGTERM or SIGINT while stopping: cancel what still runs. Optional.
  std::function<void()> abort;
  // Stop the io_context after a clean stop too: for daemons whose remaining connections hold
  // nothing worth waiting for (proxyhelperd's idle PAC keep-alives). After an unclean stop the
  // io_context is always stopped.
  bool stop_io_context = false;
};

class runtime {
 public:
  runtime(boost::asio::io_context& ioc, daemon_hooks hooks);
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Starts the signal loops and the watchdog and tells the service manager READY=1 with
  // `ready_status`. Call once, after the daemon's parts have started.
  void start(const std::string& ready_status);

  // The strand of the signal sets and the watchdog; a daemon's own timers may share it.
  boost::asio::strand<boost::asio::io_context::executor_type>& control() noexcept {
    return control_;
  }
  bool stopping() const noexcept { return stopping_; }  // control strand

  // One reload as SIGHUP does it (control strand); public for tests and admin endpoints.
  void reload();

 private:
  boost::asio::awaitable<void> stop_loop();
  boost::asio::awaitable<void> stop_deadline();
  boost::asio::awaitable<void> reload_loop();
  void finish_stop(bool clean);

  boost::asio::io_context& ioc_;
  daemon_hooks hooks_;
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::signal_set stop_signals_;    // SIGTERM, SIGINT
  boost::asio::signal_set reload_signals_;  // SIGHUP
  boost::asio::steady_timer deadline_;     // the stop's backstop
  service::watchdog watchdog_;
  bool stopping_ = false;  // control strand
  bool stopped_ = false;   // control strand: finish_stop ran
};

// Creates the daemon's state directory (and its parents) when missing; on failure logs
// event=state_dir_error with a hint and returns the error.
boost::system::error_code create_state_dir(const std::filesystem::path& dir);

// "a,b,c", or "none" for an empty list (log lines).
std::string join_names(const std::vector<std::string>& names);

// Runs `ioc` on `threads` threads (the caller's included) until it runs out of work.
void run_io_context(boost::asio::io_context& ioc, unsigned threads);

}  // namespace lanrelay::runtime
