#pragma once

// Configuration of lanrelayd. One table of settings (config.cpp, on detail/settings_toml.hpp)
// is the single source of truth: name, type, default, validation, doc, reloadable, apply hook. It
// drives the TOML loader, --print-default-config, --check-config, the reload and operations.md.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/settings_table.hpp"
#include "lanrelay/base/state_dir.hpp"
#include "lanrelay/serving/settings.hpp"
#include "lanrelay/upstream/rate_windows.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

struct http_settings {
  std::string listen_address = "::";  // "::" listens on IPv6 and IPv4
  std::uint16_t port = 4127;
  std::uint32_t max_connections = 2000;
  std::uint32_t max_header_bytes = 8192;
  std::chrono::milliseconds header_timeout{10'000};  // whole request head, however it trickles
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds send_timeout{30'000};    // no progress sending a body for this long
  std::uint32_t threads = 0;                          // 0: one per core
};


struct discovery_settings {
  bool enabled = true;
  std::uint16_t port = 4126;
  bool ipv6 = true;                                    // also answer on the IPv6 link-local group
  std::uint32_t rate_limit = 20;                       // queries per second per source address
  // Queries per second from sources the responder does not track yet, shared by every new source
  // of one address family on one interface (segment/source_rate_limiter.hpp).
  std::uint32_t new_source_rate = 500;
  std::chrono::milliseconds interface_rescan{5'000};  // how often new interfaces are picked up
  // Networks whose hosts are answered by unicast although they are not on a subnet of the
  // interface their query arrived on (agents one router away that found this relay by DNS-SD or
  // an address plan). Empty: on-link senders only.
  std::vector<std::string> unicast_networks;
  // Parent relays (IP addresses) asked by unicast for items this relay lacks; their items are
  // offered to this relay's agents and pulled from the parent on the first request
  // (relay/parent_chain.hpp). Empty: no chaining.
  std::vector<std::string> parents;
  std::chrono::milliseconds parent_query_window{300};  // how long the parents are waited for
  std::chrono::milliseconds parent_pull_wait{60'000};  // agents wait this long for a pull
  std::uint32_t parent_max_pulls = 4;                  // downloads from parents at once
};

// [peers]: how the max_peers transfer slots are shared among clients (relay/slot_pool.hpp).
struct client_share_settings {
  std::uint32_t max_peers_per_client = 2;  // slots one client address may hold at once
  // IPv6 clients in one prefix of this length count as one client; 128: every address alone
  // (on a LAN every host shares the segment's /64, so a shorter prefix would merge them all).
  std::uint32_t client_ipv6_prefix = 128;
  // A transfer whose client takes fewer than min_client_rate bytes per second over a window of
  // client_rate_window is reset and its slot freed; 0: no floor.
  std::uint64_t min_client_rate = 4096;
  std::chrono::milliseconds client_rate_window{30'000};
};

struct trust_settings {
  // Ed25519 site key that signs /-/catalog.signed. Empty: <state_dir>/site.key when that file
  // exists; without a key the relay serves no signed catalog.
  std::filesystem::path site_key;
  std::chrono::milliseconds catalog_lifetime{3'600'000};  // how long a signed catalog is valid
  // Other origins (http[s]://host[:port]) that serve this relay's cached items at the same paths
  // (/cache/<kind>/<name>/<version>): another name or a front of this relay, a host holding a
  // copy. The signed catalog names each item's exact URL there, so that agents use offers for
  // those URLs although their host is not the offer's sender (agent/offer_selection.hpp).
  std::vector<std::string> item_origins;
};


// One upstream ActiveUpdate tree the relay mirrors: `[[mirror.source]]`.
struct mirror_source_settings {
  std::string name;  // 1-64 of [A-Za-z0-9_.-]: the URL /activeupdate/<name>/ and the directory name
  std::string url;   // the upstream tree (http:// or https://), e.g. another relay's /activeupdate/x/
  std::chrono::milliseconds interval{3'600'000};  // between syncs
  std::chrono::milliseconds jitter{300'000};      // each wait is interval + uniform [0, jitter]
  std::uint32_t keep = 1;  // older snapshots whose files stay served after a change
  // What a sync fetches ahead of time; empty: everything the index names. Entries:
  // "PATTERN", "PATTERN:<id>", "ENGINE", "ENGINE:<id>", "Info_<...>" (a program section), or
  // "path:<prefix>". Files left out are fetched on first request only when pull_through admits
  // them.
  std::vector<std::string> include;
  // Files the index names that `include` leaves out and the relay may fetch from upstream when
  // an agent first asks for them (pull-through); same entries as `include`. Empty: none, such
  // requests get 404.
  std::vector<std::string> pull_through;
  // After a failed sync, the next try comes after this, doubling with each failure up to half
  // `interval`.
  std::chrono::milliseconds retry{60'000};
  // http://, https:// (TLS to the proxy; its CA: [upstream_proxy] ca_file) or
  // socks5://[user:password@]host:port; "auto": resolved ([upstream_proxy]); empty: direct
  std::string proxy;
  std::uint64_t rate_limit = 0;  // bytes per second for this source; 0: unlimited
  // Bandwidth windows: rate limits by weekday and time of day that replace rate_limit while they
  // hold (upstream/rate_windows.hpp); at most one holds at a time.
  std::vector<rate_window> rate_windows;
  std::filesystem::path ca_file;  // extra CA bundle for https upstreams; empty: system store

  bool operator==(const mirror_source_settings&) const = default;
};

struct mirror_settings {
  // How agents reach this relay; the served server.ini's [Server] section points at
  // <public_url>/activeupdate/<name>/. Empty: http://<host name>:<http.port>.
  std::string public_url;
  std::uint64_t rate_limit = 0;  // bytes per second for all sources together; 0: unlimited
  std::vector<rate_window> rate_windows;  // replace rate_limit while they hold, like a source's
  // How long agents asking for a file that is being pulled through from upstream wait for it.
  std::chrono::milliseconds pull_through_wait{60'000};
  std::uint32_t max_pulls = 4;             // pull-throughs running at once, all sources
  std::uint64_t pull_volume = 1ULL << 30;  // bytes pulled through per hour, all sources
  std::vector<mirror_source_settings> sources;
};

// cache.min_free: free space on the state directory's file system below which nothing new is
// fetched. A share of the file system's size, or a size; the larger of the two when both are set.
struct space_floor {
  std::uint64_t bytes = 0;
  std::uint32_t basis_points = 0;  // hundredths of a percent: 200 is 2%

  // The floor in bytes on a file system of `total` bytes.
  std::uint64_t for_total(std::uint64_t total) const noexcept;
  std::string to_string() const;  // "2%", "512MiB"
  bool operator==(const space_floor&) const = default;
};

// "2%", "0.5%", "10GiB", "0": the floor, or nothing when `text` is none of these.
std::optional<space_floor> parse_space_floor(std::string_view text);

// How the relay finds the proxy for mirror sources with proxy = "auto": the agents' resolution
// (agent/proxy_resolver.hpp): the daemon's environment (https_proxy, ...) and pac_url, else the
// segment's proxyhelperd, whose answers must be signed with one of proxyhelper_keys.
struct upstream_proxy_settings {
  std::string pac_url;                        // empty: none
  std::vector<std::string> proxyhelper_keys;  // "lanrelay-ed25519:..." texts
  bool accept_unsigned = false;               // explicit, logged opt-in
  bool ask_segment = true;
  std::uint16_t port = 4129;                  // proxyhelperd's UDP port
  std::chrono::milliseconds window{500};      // wait for its answer
  std::chrono::milliseconds check_timeout{3'000};
  // First line "user:password", for proxies that need credentials; empty: such proxies are
  // skipped. A regular file owned by the daemon's user, mode 0600 or 0400 (secret_file.hpp).
  std::filesystem::path credentials_file;
  // "host:port" of the one proxy the credentials are sent to; required with credentials_file.
  std::string credentials_proxy;
  // How the relay logs in to its HTTP proxy (proxy_settings::auth): "basic", "digest", "ntlm"
  // or "negotiate" (Kerberos, from `keytab` or the daemon's credential cache).
  std::string auth = "basic";
  // Client keytab for negotiate: lanrelayd sets KRB5_CLIENT_KTNAME to it as it starts, before
  // any thread. Empty: the environment's KRB5_CLIENT_KTNAME or credential cache.
  std::filesystem::path keytab;
  // CA bundle (PEM) an https:// proxy's certificate must chain to: a mirror source's proxy, or
  // one found with proxy = "auto". Empty: the system store. (A source's ca_file is for its
  // upstream server, not the proxy.)
  std::filesystem::path ca_file;
};

struct relay_config {
  std::filesystem::path state_dir;  // resolved: never empty after loading
  std::uint64_t cache_max_size = 10ULL << 30;  // bytes, 0: unlimited
  space_floor cache_min_free{0, 200};
  http_settings http;
  https_settings https;
  std::uint32_t max_peers = 10;                 // concurrent transfers served at once
  client_share_settings client_share;
  std::chrono::seconds retry_after{5};          // Retry-After on a 503 for a busy parent
  std::chrono::milliseconds shutdown_grace{30'000};
  discovery_settings discovery;
  trust_settings trust;
  std::string role = "relay";  // "relay" or "peer": what offers say this daemon is
  std::string log_level = "info";
  admin_settings admin;
  mirror_settings mirror;
  upstream_proxy_settings upstream_proxy;
};


using config_load_result = basic_config_load_result<relay_config>;


// The embedded defaults, used when lanrelayd runs without --config, with the default state
// directory (find_default_state_dir). When that directory is refused (a /tmp fallback that
// another user made first, ...), a diagnostic says why and what to set, and state_dir is empty.
config_load_result default_relay_config();

// Reads and validates a TOML file; every problem is reported, not only the first.
config_load_result load_relay_config(const std::filesystem::path& file);
config_load_result parse_relay_config(std::string_view toml_text, std::string_view file_name);

// Every setting with its default and doc, as a valid TOML document.
std::string default_relay_config_text();

// The settings whose values differ between `before` and `after`, as "section.key" in the order
// of the settings table; lists of tables by their name ("mirror.source").
std::vector<std::string> changed_settings(const relay_config& before, const relay_config& after);

// ---- reload (SIGHUP) -------------------------------------------------------------------------
// Which settings reload is a property of each setting in the table (config.cpp: settings::live):
// cache.max_size, peers.max_peers, peers.max_peers_per_client, peers.retry_after,
// discovery.rate_limit, log.level, admin.token and admin.read_networks. Each has an apply hook,
// a member of relay_reload_hooks, which the running daemon implements (relay/daemon.cpp).

// What a reload can change in a running lanrelayd. A hook returns a problem to keep the
// running value (the setting is then reported as needing a restart).
struct relay_reload_hooks : settings::live_hooks {
  virtual std::optional<std::string> set_cache_max_size(std::uint64_t bytes) = 0;
  virtual std::optional<std::string> set_max_peers(std::uint32_t slots) = 0;
  virtual std::optional<std::string> set_max_peers_per_client(std::uint32_t slots) = 0;
  virtual std::optional<std::string> set_retry_after(std::chrono::seconds after) = 0;
  virtual std::optional<std::string> set_discovery_rate_limit(std::uint32_t per_second) = 0;
  virtual std::optional<std::string> set_log_level(const std::string& level) = 0;
  virtual std::optional<std::string> set_admin(const admin_settings& admin) = 0;
};

// The reload decision (settings::plan_reload): the changed settings that apply and those that
// need a restart, whose running values are put back into `next`.
settings::reload_plan plan_reload(const relay_config& running, relay_config& next);

// Runs the apply hooks of plan.applied with `next` (settings::run_reload_hooks); returns the
// hooks' problems.
std::vector<std::string> run_reload_hooks(settings::reload_plan& plan, const relay_config& running,
                                          relay_config& next, relay_reload_hooks& hooks);

}  // namespace lanrelay
