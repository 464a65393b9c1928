#pragma once

// Which configured proxies work right now. Every check_interval, health_checker asks each proxy
// for the probe URL (reachability.hpp: an https:// probe opens a CONNECT tunnel through the
// proxy) and records the outcome in proxy_health. A proxy is advertised only after its latest
// check passed: a proxy that has not been checked yet, or whose last check failed, is left out
// until it passes again.
//
// Threads: proxy_health is safe from any thread (one mutex: the responder's strand, HTTP
// connections and the checker read it). health_checker runs on its own strand.

#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/stats.hpp"
#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/upstream/reachability.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::proxyhelper {

// How the health check reaches `spec`: its URL, with the user and password of
// check_credentials_file and its auth scheme (basic, digest, ntlm); for auth = "negotiate", with
// Kerberos when the process has credentials (KRB5_CLIENT_KTNAME or KRB5CCNAME set); otherwise
// anonymously. `logs_in` says whether the check presents credentials. Reads the file each time
// (a changed password counts from the next check); an unreadable one is logged and the check
// goes without.
proxy_settings check_proxy_settings(const proxy_spec& spec, bool& logs_in);

class proxy_health {
 public:
  explicit proxy_health(std::vector<proxy_spec> proxies);

  // One check's outcome, kept for the status page and /-/status.
  struct check_record {
    std::chrono::system_clock::time_point at;
    bool healthy = false;
    std::string result;  // reachability::describe()
    std::chrono::milliseconds elapsed{0};
  };
  static constexpr std::size_t history_size = 50;

  struct status {
    proxy_spec spec;
    bool checked = false;
    bool healthy = false;
    std::string last_result = "not checked yet";  // reachability::describe() of the last check
    std::chrono::milliseconds last_elapsed{0};
    std::optional<std::chrono::system_clock::time_point> last_healthy;  // last check that passed
    std::uint64_t checks_passed = 0;
    std::uint64_t checks_failed = 0;
    std::deque<check_record> history;  // the last history_size checks, oldest first
  };

  std::size_t size() const;
  // Records the outcome of a check of proxy `index` (its position in the configuration). Logs
  // when a proxy changes state. Returns true when it did.
  bool record(std::size_t index, const reachability& outcome,
              std::chrono::system_clock::time_point at = std::chrono::system_clock::now());

  // The same for the proxy with `url`; false (nothing recorded) when it is no longer configured.
  bool record(std::string_view url, const reachability& outcome,
              std::chrono::system_clock::time_point at = std::chrono::system_clock::now());

  // A reloaded proxy list: proxies whose URL stays keep their health and history (with the new
  // priority, credentials flag and bypass list); new ones are unchecked, so not advertised until
  // they pass a check.
  void replace(std::vector<proxy_spec> proxies);

  // The healthy proxies, best (lowest priority value) first, ties in configuration order.
  std::vector<proxy_protocol::proxy_entry> healthy() const;
  std::vector<status> snapshot() const;

 private:
  bool record_locked(status& s, const reachability& outcome, std::chrono::system_clock::time_point at);

  mutable std::mutex mutex_;
  std::vector<status> proxies_;  // guarded by mutex_
};

class health_checker {
 public:
  // `health`, `counters` and `config` must outlive the checker. Each round reads the current
  // configuration (probe URL, interval, timeout, CA file) from `config`.
  health_checker(boost::asio::io_context& ioc, const live_config& config, proxy_health& health,
                 proxyhelper_counters& counters);

  // Checks every proxy at once, then every check_interval. `on_change` (may be empty) runs on the
  // checker's strand when a proxy became healthy or unhealthy.
  void start(std::function<void()> on_change = {});
  void stop();
  // Starts a round at once (after a reload), or right after the one running now.
  void check_now();

 private:
  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<void> check_all();

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  const live_config& config_;
  proxy_health& health_;
  proxyhelper_counters& counters_;
  boost::asio::steady_timer timer_;
  std::function<void()> on_change_;
  bool stopped_ = false;   // strand
  bool checking_ = false;  // strand: a round is running
  bool again_ = false;     // strand: check_now() came during a round
};

}  // namespace lanrelay::proxyhelper
