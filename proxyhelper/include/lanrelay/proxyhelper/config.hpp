#pragma once

// Configuration of proxyhelperd: scalar settings plus the list of proxies it advertises
// ([[proxy]] tables). One table of settings (config.cpp, on base/detail/settings_toml.hpp) is the
// single source of truth: the TOML loader, --print-default-config, --check-config, the reload.

#include "lanrelay/base/settings_table.hpp"
#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/serving/settings.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::proxyhelper {

// One [[proxy]] table.
struct proxy_spec {
  std::string url;                  // "http://host:port"; proxy_protocol::is_valid_proxy_url
  std::uint16_t priority = 100;     // lower is better; ties keep the file's order
  bool needs_credentials = false;   // agents must bring their own user and password
  std::vector<std::string> bypass;  // hosts reached directly; proxy_protocol::is_valid_bypass_entry
  // The scheme the proxy asks for: "" (not said), "basic", "digest", "ntlm" or "negotiate"
  // (proxy_protocol::parse_auth_scheme). Advertised in the answer; the health check logs in
  // with it when it has credentials.
  std::string auth;
  // A secret file (secret_file.hpp) whose first line is user:password, for the health check of
  // this proxy alone (basic, digest, ntlm). Empty: checked without credentials. Negotiate checks
  // use the process's Kerberos credentials (KRB5_CLIENT_KTNAME in the unit).
  std::filesystem::path check_credentials_file;

  bool operator==(const proxy_spec&) const = default;
};

// What an answer says of `spec` (its auth word as the wire's scheme).
proxy_protocol::proxy_entry advertised_entry(const proxy_spec& spec);

// check_credentials_file is read with this bound.
inline constexpr std::size_t max_check_credentials_size = 4096;

struct proxyhelper_config {
  std::filesystem::path state_dir;    // resolved: never empty after loading
  std::filesystem::path signing_key;  // empty: <state_dir>/proxyhelper.key, created on first start
  std::string log_level = "info";

  // Proxy queries (UDP).
  std::uint16_t query_port = 4129;
  bool ipv6 = true;                                    // also answer on ff12::4129
  std::uint32_t rate_limit = 20;                       // queries per second per source address
  // Queries per second from sources not tracked yet, shared per family and interface
  // (segment/source_rate_limiter.hpp).
  std::uint32_t new_source_rate = 500;
  std::chrono::milliseconds interface_rescan{5'000};
  std::chrono::seconds answer_lifetime{300};           // how long a signed answer stays valid

  // PAC and WPAD (HTTP).
  std::string http_listen = "::";
  std::uint16_t http_port = 4130;
  std::chrono::milliseconds header_timeout{10'000};    // whole request head
  std::chrono::milliseconds idle_timeout{10'000};      // keep-alive wait for the next request
  std::chrono::milliseconds send_timeout{10'000};      // writing one response
  std::uint32_t max_header_bytes = 8192;
  std::uint32_t max_connections = 256;
  // The site's own PAC script: when set, /proxy.pac and /wpad.dat redirect to it instead of
  // serving the generated script. Empty: serve the generated script.
  std::string pac_url;

  // HTTPS for monitoring (same listen address); a self-signed pair of its own
  // (<state_dir>/proxyhelper-tls.crt and .key) unless both files are set.
  https_settings https{.port = 4131};
  // [admin] read_networks: who may read /, /-/status, /-/metrics and /-/stats besides loopback;
  // empty: loopback only. /proxy.pac, /wpad.dat and /-/healthz stay open to all.
  std::vector<std::string> read_networks;

  // Health checks.
  std::string probe_url = "https://www.example.com/";  // reached through each proxy
  std::chrono::milliseconds check_interval{30'000};
  std::chrono::milliseconds check_timeout{5'000};
  std::filesystem::path probe_ca_file;  // empty: the system's CA store for an https:// probe

  std::vector<proxy_spec> proxies;
};

// Every rule a loaded configuration must meet, one message per problem (empty when valid):
// 1..8 proxies with valid URLs and bypass lists, all of them fitting one signed answer datagram,
// an http:// or https:// probe URL, an answer lifetime of 1 s to 1 h, positive intervals.
std::vector<std::string> validate(const proxyhelper_config& config);

// The key file actually used: signing_key, or <state_dir>/proxyhelper.key.
std::filesystem::path signing_key_path(const proxyhelper_config& config);

using config_load_result = basic_config_load_result<proxyhelper_config>;

// Reads a TOML file and checks it with the table's rules, then validate(); every problem is
// reported, not only the first. state.dir, when not set, is default_state_dir().
config_load_result load_config(const std::filesystem::path& file);
config_load_result parse_config(std::string_view toml_text, std::string_view file_name);

// Every setting with its default and doc, and a commented-out [[proxy]] example.
std::string default_config_text();

// The configuration a running proxyhelperd works with, replaced whole when SIGHUP reloads it.
// Readers take a snapshot with get() and use it to the end of what they are doing, so nobody sees
// half of one configuration and half of another. Thread safe (a mutex around the pointer).
class live_config {
 public:
  explicit live_config(proxyhelper_config initial);
  std::shared_ptr<const proxyhelper_config> get() const;
  void set(proxyhelper_config next);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const proxyhelper_config> current_;  // guarded by mutex_
};

// The settings whose values differ, as "section.key" in table order (proxy changes as "proxy").
std::vector<std::string> changed_settings(const proxyhelper_config& a, const proxyhelper_config& b);

// ---- reload (SIGHUP) -------------------------------------------------------------------------
// Which settings reload is a property of each setting in the table (config.cpp: settings::live):
// the [[proxy]] list, query.rate_limit, query.new_source_rate, query.answer_lifetime,
// http.pac_url, admin.read_networks, health.* and log.level. The rest (sockets, files, the key)
// need a restart.

// Whether a changed setting needs a restart ("section.key", or "proxy").
bool needs_restart(std::string_view setting);

// What a reload can change in a running proxyhelperd beyond its live_config (daemon.cpp
// implements it). Settings without a hook are read from live_config where they are used.
struct reload_hooks : settings::live_hooks {
  virtual std::optional<std::string> set_log_level(const std::string& level) = 0;
  virtual std::optional<std::string> set_query_limits(std::uint32_t rate_limit,
                                                      std::uint32_t new_source_rate,
                                                      std::chrono::seconds answer_lifetime) = 0;
  virtual std::optional<std::string> set_proxies(const std::vector<proxy_spec>& proxies) = 0;
};

// The reload decision (settings::plan_reload): changed settings that apply and those that need a
// restart, whose running values are put back into `next`.
settings::reload_plan plan_reload(const proxyhelper_config& running, proxyhelper_config& next);

// Runs the apply hooks of plan.applied with `next`; returns the hooks' problems.
std::vector<std::string> run_reload_hooks(settings::reload_plan& plan,
                                          const proxyhelper_config& running,
                                          proxyhelper_config& next, reload_hooks& hooks);

}  // namespace lanrelay::proxyhelper
