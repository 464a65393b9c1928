#include "lanrelay/base/service_notify.hpp"

#include "lanrelay/base/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <time.h>

#include <cstring>
#include <string>

namespace lanrelay::service {

namespace net = boost::asio;

namespace {

// STATUS= takes one line; a newline would start another assignment.
std::string status_line(std::string_view status) {
  std::string line = "STATUS=";
  for (const char c : status) {
    line += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return line;
}

void send(const std::string& message) {
  const int sent = ::sd_notify(0, message.c_str());
  if (sent < 0) {
    // The service manager stops listening only while it shuts down or reloads itself; nothing
    // here can fix that, so the daemon carries on.
    spdlog::debug("event=notify_failed error=\"{}\" message=\"{}\"",
                  std::strerror(-sent), message);
  }
}

std::string with_status(std::string message, std::string_view status) {
  if (!status.empty()) {
    message += "\n" + status_line(status);
  }
  return message;
}

}  // namespace

void notify_ready(std::string_view status) { send(with_status("READY=1", status)); }

void notify_reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                    static_cast<unsigned long long>(now.tv_nsec) / 1'000ULL;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void notify_stopping(std::string_view status) { send(with_status("STOPPING=1", status)); }

void notify_status(std::string_view status) { send(status_line(status)); }

std::optional<std::chrono::microseconds> watchdog_period() {
  std::uint64_t usec = 0;
  if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    return std::nullopt;
  }
  return std::chrono::microseconds(usec);
}

watchdog::watchdog(net::any_io_executor executor) : timer_(std::move(executor)) {}

bool watchdog::start() {
  const auto period = watchdog_period();
  if (!period) {
    return false;
  }
  // Half the period, as sd_watchdog_enabled(3) recommends: one late ping is not yet a failure.
  const auto interval = *period / 2;
  spdlog::info("event=watchdog_on period_ms={} ping_ms={}",
               std::chrono::duration_cast<std::chrono::milliseconds>(*period).count(),
               std::chrono::duration_cast<std::chrono::milliseconds>(interval).count());
  net::co_spawn(timer_.get_executor(), ping_loop(interval), log_failure("service watchdog"));
  return true;
}

void watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

net::awaitable<void> watchdog::ping_loop(std::chrono::microseconds interval) {
  while (!stopped_) {
    send("WATCHDOG=1");
    timer_.expires_after(interval);
    auto [ec] = co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return;
    }
  }
}

}  // namespace lanrelay::service
