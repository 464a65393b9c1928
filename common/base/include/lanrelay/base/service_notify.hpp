#pragma once

// Talking to the service manager with systemd's notification protocol (sd_notify(3)):
// readiness, reloads, stopping and the watchdog. Without NOTIFY_SOCKET in the environment (not
// started by systemd with Type=notify) every call does nothing, so daemons call them
// unconditionally.
//
// Threads: the free functions may be called from any thread. A `watchdog` lives on the executor
// it is given (a strand of the daemon's io_context): its pings stop when that io_context stops
// running handlers, which is exactly what systemd's watchdog is there to notice.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <string_view>

namespace lanrelay::service {

// READY=1: start-up (or a reload) is complete. `status` (may be empty) becomes STATUS=, the line
// `systemctl status` shows.
void notify_ready(std::string_view status = {});

// RELOADING=1 with MONOTONIC_USEC (systemd 253 and later require the timestamp): a reload has
// begun; notify_ready() ends it, whether the new configuration was taken or not.
void notify_reloading();

// STOPPING=1: shutdown has begun.
void notify_stopping(std::string_view status = {});

// STATUS= alone.
void notify_status(std::string_view status);

// The watchdog period systemd enforces (WatchdogSec=, passed as WATCHDOG_USEC), or nullopt when
// the watchdog is off for this process.
std::optional<std::chrono::microseconds> watchdog_period();

// Sends WATCHDOG=1 every half watchdog period from `executor` while running.
class watchdog {
 public:
  explicit watchdog(boost::asio::any_io_executor executor);
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  // Starts pinging when the service manager asked for a watchdog; returns whether it did. Call
  // from the executor (or before the io_context runs).
  bool start();
  // Stops pinging (shutdown is over). Call from the executor.
  void stop();

 private:
  boost::asio::awaitable<void> ping_loop(std::chrono::microseconds interval);

  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace lanrelay::service
