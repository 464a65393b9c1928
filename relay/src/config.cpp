#include "lanrelay/relay/config.hpp"

#include "lanrelay/base/redact.hpp"
#include "lanrelay/base/secret_file.hpp"
#include "lanrelay/base/settings_table.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/content/activeupdate_index.hpp"
#include "lanrelay/serving/admin_access.hpp"
#include "lanrelay/upstream/http_client.hpp"
#include "lanrelay/upstream/rate_windows.hpp"
#include "lanrelay/base/detail/settings_toml.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/url/authority_view.hpp>
#include <boost/url/parse.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lanrelay {
namespace {

using settings::apply_result;

apply_result check_source_name(std::string_view name) {
  if (!activeupdate::is_valid_source_name(name)) {
    return settings::toml_string(name) +
           " is not a source name (1 to 64 of A-Z a-z 0-9 - _ .; it becomes a URL path and a "
           "directory name)";
  }
  return std::nullopt;
}

apply_result check_url(std::string_view text, std::initializer_list<std::string_view> schemes) {
  auto url = boost::urls::parse_absolute_uri(text);
  std::string list;
  for (auto scheme : schemes) {
    list += list.empty() ? "" : " or ";
    list += std::string(scheme) + "://";
  }
  if (!url || !url->has_authority() || url->host().empty() ||
      std::find(schemes.begin(), schemes.end(), url->scheme()) == schemes.end()) {
    return settings::toml_string(text) + " is not a URL starting with " + list;
  }
  return std::nullopt;
}

// An origin only: scheme, host and port, no userinfo, path, query or fragment.
apply_result check_origin(std::string_view text) {
  if (auto bad = check_url(text, {"http", "https"})) {
    return bad;
  }
  const auto url = boost::urls::parse_absolute_uri(text);
  if (url->has_userinfo() || !url->encoded_path().empty() || url->has_query() ||
      url->has_fragment() || text.size() > 512) {
    return settings::toml_string(text) +
           " is not an origin such as \"http://relay.corp.example:4127\" (no user, path, "
           "query or fragment; at most 512 characters)";
  }
  return std::nullopt;
}

constexpr std::size_t max_credentials_file_size = 4096;

apply_result check_credentials_proxy(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  const auto authority = boost::urls::parse_authority(text);
  if (!authority || authority->has_userinfo() || authority->host().empty() ||
      !authority->has_port() || authority->port_number() == 0) {
    return settings::toml_string(text) +
           " is not host:port (e.g. \"proxy.corp.example:3128\" or \"[2001:db8::1]:3128\")";
  }
  return std::nullopt;
}

apply_result check_include(std::string_view entry) {
  if (entry.starts_with("path:")) {
    const auto prefix = entry.substr(5);
    if (prefix.empty() || !activeupdate::is_safe_relative_path(
                              prefix.ends_with('/') ? prefix.substr(0, prefix.size() - 1) : prefix)) {
      return settings::toml_string(entry) + ": the path prefix must be a relative path such as "
                                            "\"path:pattern/\"";
    }
    return std::nullopt;
  }
  const auto colon = entry.find(':');
  const auto section = entry.substr(0, colon);
  const bool known = section == "PATTERN" || section == "ENGINE" || section.starts_with("Info_");
  if (!known || (colon != std::string_view::npos && colon + 1 == entry.size())) {
    return settings::toml_string(entry) +
           " is not a component: use \"PATTERN\", \"PATTERN:<id>\", \"ENGINE\", "
           "\"ENGINE:<id>\", \"Info_<...>\" or \"path:<prefix>\"";
  }
  return std::nullopt;
}

// [admin] token: a bearer token (token68 characters, RFC 7235 §2.1) long enough not to be guessed.
apply_result check_admin_token(std::string_view token) {
  constexpr std::size_t min_length = 16;
  const auto is_token_char = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
  };
  if (!token.empty() &&
      (token.size() < min_length || !std::all_of(token.begin(), token.end(), is_token_char))) {
    return "a token must be at least " + std::to_string(min_length) +
           " characters of A-Z a-z 0-9 - . _ ~ + / = (generate one with: openssl rand -hex 32)";
  }
  return std::nullopt;
}

// [admin] read_networks entries: "10.0.0.0/8", "fd00::/8", or one address.
apply_result check_network(std::string_view text) {
  if (!is_valid_network(text)) {
    return settings::toml_string(text) +
           " is not a network (address/prefix length, e.g. \"10.0.0.0/8\" or \"fd00::/8\", or "
           "one address)";
  }
  return std::nullopt;
}

// discovery.parents entries: one IP address.
apply_result check_address(std::string_view text) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(text), ec);
  if (ec) {
    return settings::toml_string(text) + " is not an IP address (e.g. \"10.1.0.5\" or \"fd00::5\")";
  }
  return std::nullopt;
}

// cache.min_free: "2%" or a size. A TOML integer is a byte count, like every size setting.
settings::setting<relay_config> min_free_setting() {
  return {"cache", "min_free", settings::setting_type::size,
          "Free space on the state directory's file system below which the mirror fetches "
          "nothing new (syncs and pull-throughs): a share such as \"2%\" or a size such as "
          "\"10GiB\". 0: no floor.",
          [](relay_config& c, const toml::node& node) -> apply_result {
            if (const auto* value = node.as_integer()) {
              if (value->get() < 0) {
                return "a size cannot be negative";
              }
              c.cache_min_free = space_floor{static_cast<std::uint64_t>(value->get()), 0};
              return std::nullopt;
            }
            const auto* text = node.as_string();
            const auto floor = text != nullptr ? parse_space_floor(text->get()) : std::nullopt;
            if (!floor) {
              return "expected a share of the disk such as \"2%\" (0 to 50%, at most two "
                     "decimals) or a size such as \"10GiB\", got " +
                     (text != nullptr ? settings::toml_string(text->get())
                                      : std::string(settings::toml_type_name(node)));
            }
            c.cache_min_free = *floor;
            return std::nullopt;
          },
          [](const relay_config& c) { return settings::toml_string(c.cache_min_free.to_string()); },
          false, false, {},
          [](relay_config& to, const relay_config& from) { to.cache_min_free = from.cache_min_free; }};
}

// Bandwidth windows: an array of "DAYS HH:MM-HH:MM RATE" ("Mon-Fri 08:00-18:00 2MiB", RATE a size
// per second or "unlimited"), none overlapping another (rate_windows.hpp).
template <typename Target>
settings::setting<Target> rate_windows_setting(std::string_view section, std::string_view doc,
                                               settings::field_of<Target, std::vector<rate_window>> field) {
  return settings::with_field(settings::setting<Target>{section, "rate_windows",
          settings::setting_type::string_list, doc,
          [field](Target& c, const toml::node& node) -> apply_result {
            const auto* array = node.as_array();
            if (array == nullptr) {
              return "expected an array such as [\"Mon-Fri 08:00-18:00 2MiB\"], got " +
                     std::string(settings::toml_type_name(node));
            }
            std::vector<rate_window> windows;
            for (const toml::node& element : *array) {
              const auto* text = element.as_string();
              if (text == nullptr) {
                return "expected strings such as \"Mon-Fri 08:00-18:00 2MiB\", but one element is " +
                       std::string(settings::toml_type_name(element));
              }
              const std::string_view whole = trim(text->get(), " ");
              const auto blank = whole.rfind(' ');
              const std::string_view rate_text =
                  blank == std::string_view::npos ? std::string_view{} : whole.substr(blank + 1);
              std::string why;
              auto window = parse_window(whole.substr(0, blank == std::string_view::npos ? 0 : blank), &why);
              if (!window) {
                return settings::toml_string(text->get()) + ": " + why +
                       " (a window is \"DAYS HH:MM-HH:MM RATE\", e.g. \"Mon-Fri 08:00-18:00 2MiB\")";
              }
              if (rate_text != "unlimited") {
                const auto rate = settings::parse_size(rate_text);
                if (!rate) {
                  return settings::toml_string(text->get()) +
                         ": expected a rate per second such as \"2MiB\" or \"unlimited\" last, got " +
                         settings::toml_string(rate_text);
                }
                window->rate = *rate;
              }
              for (const rate_window& earlier : windows) {
                if (overlaps(earlier, *window)) {
                  return settings::toml_string(text->get()) + " overlaps \"" + window_text(earlier) +
                         "\"; at most one window may hold at a time";
                }
              }
              windows.push_back(*window);
            }
            field(c) = std::move(windows);
            return std::nullopt;
          },
          [field](const Target& c) {
            std::string out = "[";
            for (const rate_window& w : field(const_cast<Target&>(c))) {
              out += out.size() > 1 ? ", " : "";
              out += settings::toml_string(window_text(w) + " " +
                                           (w.rate == 0 ? "unlimited" : settings::size_text(w.rate)));
            }
            return out + "]";
          }}, field);
}

settings::list_of_tables<relay_config, mirror_source_settings> mirror_source_list() {
  using milliseconds = std::chrono::milliseconds;
  using namespace std::chrono_literals;
  using item = mirror_source_settings;
  mirror_source_settings example;
  example.name = "vendor";
  example.url = "https://update.vendor.example/activeupdate/";
  return {
      {"mirror", "source"},
      "An upstream ActiveUpdate tree to mirror, served at http://<relay>:<port>/activeupdate/<name>/.",
      {
          settings::required(settings::string_setting<item>(
              "", "name", settings::setting_type::text,
              "Name in the served URL and the state directory.",
              [](item& s) -> auto& { return s.name; }, check_source_name)),
          settings::required(settings::string_setting<item>(
              "", "url", settings::setting_type::text,
              "Base URL of the upstream tree (its server.ini is <url>/server.ini).",
              [](item& s) -> auto& { return s.url; },
              [](std::string_view t) { return check_url(t, {"http", "https"}); })),
          settings::duration_setting<milliseconds, item>(
              "", "interval", "Time between syncs (at least 15 minutes).", 15min, 24h,
              [](item& s) -> auto& { return s.interval; }),
          settings::duration_setting<milliseconds, item>(
              "", "jitter", "A random delay up to this is added to each wait.", 0ms, 1h,
              [](item& s) -> auto& { return s.jitter; }),
          settings::integer_setting<std::uint32_t, item>(
              "", "keep", "Older snapshots whose files stay served after the index changes.", 0,
              100, [](item& s) -> auto& { return s.keep; }),
          settings::string_list_setting<item>(
              "", "include",
              "Components fetched ahead of time: \"PATTERN\", \"PATTERN:<id>\", \"ENGINE\", "
              "\"ENGINE:<id>\", \"Info_<...>\", \"path:<prefix>\". Empty: all. Others are "
              "fetched when first asked for.",
              [](item& s) -> auto& { return s.include; }, check_include),
          settings::string_list_setting<item>(
              "", "pull_through",
              "Components left out by include that the relay fetches from upstream when an agent "
              "first asks for them (same entries as include). Empty: none; such requests get 404.",
              [](item& s) -> auto& { return s.pull_through; }, check_include),
          settings::duration_setting<milliseconds, item>(
              "", "retry",
              "After a failed sync the next try comes this much later, doubling with each "
              "failure up to half the interval (so a failing source is tried again before its schedule "
              "would), with a little jitter.",
              1s, 24h, [](item& s) -> auto& { return s.retry; }),
          settings::string_setting<item>(
              "", "proxy", settings::setting_type::text,
              "Upstream proxy: http://[user:password@]host:port (CONNECT; the login is "
              "[upstream_proxy] auth), https://... (TLS to the proxy, its CA in "
              "[upstream_proxy] ca_file) or "
              "socks5://[user:password@]host[:port]; \"auto\": the route the agents would find "
              "(environment, PAC, proxyhelperd; see [upstream_proxy]). Empty: direct.",
              [](item& s) -> auto& { return s.proxy; },
              [](std::string_view t) -> apply_result {
                return t.empty() || t == "auto"
                           ? std::nullopt
                           : check_url(t, {"http", "https", "socks5", "socks5h"});
              }),
          settings::size_setting<item>("", "rate_limit",
                                       "Download rate for this source in bytes per second. 0: "
                                       "unlimited.",
                                       [](item& s) -> auto& { return s.rate_limit; }),
          rate_windows_setting<item>(
              "", "Bandwidth windows for this source: \"DAYS HH:MM-HH:MM RATE\" in local time, "
              "e.g. [\"Mon-Fri 08:00-18:00 2MiB\"]; while one holds its RATE (a size per second, "
              "or \"unlimited\") replaces rate_limit. Days: Mon-Fri, Sat,Sun, daily; a window "
              "across midnight is written as two; windows must not overlap.",
              [](item& s) -> auto& { return s.rate_windows; }),
          settings::path_setting<item>("", "ca_file",
                                       "CA bundle for an https upstream. Empty: the system store.",
                                       [](item& s) -> auto& { return s.ca_file; }),
      },
      [](relay_config& c) -> auto& { return c.mirror.sources; },
      [](const item& s, std::span<const item> earlier) -> apply_result {
        for (const item& other : earlier) {
          if (other.name == s.name) {
            return "the name " + settings::toml_string(s.name) + " is used twice";
          }
        }
        return std::nullopt;
      },
      example,
  };
}

// The single source of truth for lanrelayd's settings, in the order they are printed.
const settings::table<relay_config>& settings_table() {
  using std::chrono::milliseconds;
  using namespace std::chrono_literals;
  static const settings::table<relay_config> table{{
      settings::path_setting<relay_config>("state", "dir",
                   "Directory for the cache and state. Empty: /var/lib/lanrelay as root, else "
                   "$XDG_STATE_HOME/lanrelay.",
                   [](relay_config& c) -> auto& { return c.state_dir; }),
      settings::live<relay_reload_hooks>(
          settings::size_setting<relay_config>("cache", "max_size",
                   "Largest total size of cached items; least recently used unpinned items are "
                   "evicted beyond it. 0: no limit.",
                   [](relay_config& c) -> auto& { return c.cache_max_size; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_cache_max_size(next.cache_max_size);
          }),
      min_free_setting(),
      settings::string_setting<relay_config>("http", "listen", settings::setting_type::address,
                     "Address the content server listens on; \"::\" accepts IPv6 and IPv4.",
                     [](relay_config& c) -> auto& { return c.http.listen_address; }),
      settings::integer_setting<std::uint16_t, relay_config>("http", "port", "TCP port of the content server; 0 picks a free port.",
                                     0, 65535, [](relay_config& c) -> auto& { return c.http.port; }),
      settings::integer_setting<std::uint32_t, relay_config>("http", "max_connections",
                                     "Open connections beyond this are closed at once.", 1, 1'000'000,
                                     [](relay_config& c) -> auto& { return c.http.max_connections; }),
      settings::integer_setting<std::uint32_t, relay_config>("http", "max_header_bytes",
                                     "Largest request line plus headers accepted, in bytes.", 1024,
                                     1 << 20,
                                     [](relay_config& c) -> auto& { return c.http.max_header_bytes; }),
      settings::duration_setting<milliseconds, relay_config>("http", "header_timeout",
                                     "Time a client has to send a whole request head.", 100ms, 10min,
                                     [](relay_config& c) -> auto& { return c.http.header_timeout; }),
      settings::duration_setting<milliseconds, relay_config>("http", "idle_timeout",
                                     "Keep-alive connections idle this long are closed.", 100ms, 1h,
                                     [](relay_config& c) -> auto& { return c.http.idle_timeout; }),
      settings::duration_setting<milliseconds, relay_config>("http", "send_timeout",
                                     "A transfer that makes no progress this long is dropped.", 100ms,
                                     1h, [](relay_config& c) -> auto& { return c.http.send_timeout; }),
      settings::integer_setting<std::uint32_t, relay_config>("http", "threads", "Worker threads; 0: one per CPU core.", 0, 256,
                                     [](relay_config& c) -> auto& { return c.http.threads; }),
      settings::bool_setting<relay_config>(
          "https", "enabled",
          "Serve HTTPS beside HTTP (same listen address): admin calls from other hosts and "
          "pinned agents use it.",
          [](relay_config& c) -> auto& { return c.https.enabled; }),
      settings::integer_setting<std::uint16_t, relay_config>(
          "https", "port", "TCP port of the HTTPS server; 0 picks a free port.", 0, 65535,
          [](relay_config& c) -> auto& { return c.https.port; }),
      settings::path_setting<relay_config>(
          "https", "certificate",
          "PEM certificate. Empty (with private_key empty): <state dir>/tls.crt, generated "
          "self-signed at first start; its fingerprint goes into the signed catalog.",
          [](relay_config& c) -> auto& { return c.https.certificate; }),
      settings::path_setting<relay_config>(
          "https", "private_key",
          "PEM private key of the certificate (mode 0600). Empty: <state dir>/tls.key.",
          [](relay_config& c) -> auto& { return c.https.private_key; }),
      settings::duration_setting<milliseconds, relay_config>(
          "https", "handshake_timeout", "Time a client has to complete the TLS handshake.", 100ms,
          10min, [](relay_config& c) -> auto& { return c.https.handshake_timeout; }),
      settings::live<relay_reload_hooks>(
          settings::integer_setting<std::uint32_t, relay_config>("peers", "max_peers",
                                     "Transfers served at once; the next requester gets 503 and "
                                     "tries another parent.",
                                     1, 100'000, [](relay_config& c) -> auto& { return c.max_peers; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_max_peers(next.max_peers);
          }),
      settings::live<relay_reload_hooks>(
          settings::integer_setting<std::uint32_t, relay_config>("peers", "max_peers_per_client",
                                     "Transfer slots one client may hold at once (a fair share of "
                                     "max_peers); beyond it the client gets 503.",
                                     1, 100'000,
                                     [](relay_config& c) -> auto& { return c.client_share.max_peers_per_client; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_max_peers_per_client(next.client_share.max_peers_per_client);
          }),
      settings::integer_setting<std::uint32_t, relay_config>("peers", "client_ipv6_prefix",
                                     "IPv6 clients within one prefix of this length share one "
                                     "client's slots; 128: each address on its own.",
                                     1, 128,
                                     [](relay_config& c) -> auto& { return c.client_share.client_ipv6_prefix; }),
      settings::size_setting<relay_config>("peers", "min_client_rate",
                                     "A transfer whose client reads fewer bytes per second than "
                                     "this over client_rate_window is reset and its slot freed. "
                                     "0: no floor.",
                                     [](relay_config& c) -> auto& { return c.client_share.min_client_rate; }),
      settings::duration_setting<milliseconds, relay_config>("peers", "client_rate_window",
                                     "Window over which min_client_rate is measured.", 100ms, 1h,
                                     [](relay_config& c) -> auto& { return c.client_share.client_rate_window; }),
      settings::live<relay_reload_hooks>(
          settings::duration_setting<std::chrono::seconds, relay_config>(
          "peers", "retry_after", "Retry-After sent with a 503 when every transfer slot is busy.",
          1s, 1h, [](relay_config& c) -> auto& { return c.retry_after; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_retry_after(next.retry_after);
          }),
      settings::duration_setting<milliseconds, relay_config>("shutdown", "grace_period",
                                     "On SIGTERM, running transfers get this long to finish.", 0ms,
                                     1h, [](relay_config& c) -> auto& { return c.shutdown_grace; }),
      settings::choice_setting<relay_config>("relay", "role",
                     "\"relay\" for the segment's relay; \"peer\" for an agent machine sharing what it "
                     "downloaded (see docs/operations.md, peer profile).",
                     {"relay", "peer"}, [](relay_config& c) -> auto& { return c.role; }),
      settings::bool_setting<relay_config>("discovery", "enabled", "Answer segment queries for cached items.",
                   [](relay_config& c) -> auto& { return c.discovery.enabled; }),
      settings::integer_setting<std::uint16_t, relay_config>("discovery", "port", "UDP port for segment queries and offers.", 1,
                                     65535, [](relay_config& c) -> auto& { return c.discovery.port; }),
      settings::bool_setting<relay_config>("discovery", "ipv6", "Also answer on the IPv6 link-local group ff12::4126.",
                   [](relay_config& c) -> auto& { return c.discovery.ipv6; }),
      settings::live<relay_reload_hooks>(
          settings::integer_setting<std::uint32_t, relay_config>("discovery", "rate_limit",
                                     "Queries answered per second per source address; more are "
                                     "dropped.",
                                     1, 100'000,
                                     [](relay_config& c) -> auto& { return c.discovery.rate_limit; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_discovery_rate_limit(next.discovery.rate_limit);
          }),
      settings::integer_setting<std::uint32_t, relay_config>("discovery", "new_source_rate",
                                     "Queries per second answered from sources not tracked yet, "
                                     "shared by all new sources of one address family on one "
                                     "interface; bounds a flood of invented source addresses.",
                                     1, 1'000'000,
                                     [](relay_config& c) -> auto& { return c.discovery.new_source_rate; }),
      settings::duration_setting<milliseconds, relay_config>("discovery", "interface_rescan",
                                     "How often interfaces that came or went are picked up.", 100ms,
                                     10min,
                                     [](relay_config& c) -> auto& { return c.discovery.interface_rescan; }),
      settings::string_list_setting<relay_config>(
          "discovery", "unicast_networks",
          "Networks whose agents are answered by unicast although they are one router or more "
          "away (they found this relay by DNS-SD or an address plan), e.g. [\"10.20.0.0/16\"]. "
          "Rate limits apply as on the segment. Empty: only senders on a subnet of the "
          "receiving interface.",
          [](relay_config& c) -> auto& { return c.discovery.unicast_networks; }, check_network),
      settings::string_list_setting<relay_config>(
          "discovery", "parents",
          "Parent relays (IP addresses, e.g. [\"10.1.0.5\"]) asked by unicast for items this "
          "relay lacks; what a parent holds is offered to this relay's agents and pulled from "
          "the parent once, verified, on the first request. The parents must list this relay's "
          "network in their unicast_networks. Empty: no chaining.",
          [](relay_config& c) -> auto& { return c.discovery.parents; }, check_address),
      settings::duration_setting<milliseconds, relay_config>(
          "discovery", "parent_query_window",
          "How long the parents are waited for when this relay asks them for an item.", 10ms,
          10s, [](relay_config& c) -> auto& { return c.discovery.parent_query_window; }),
      settings::duration_setting<milliseconds, relay_config>(
          "discovery", "parent_pull_wait",
          "Agents asking for an item this relay is still pulling from its parent wait this long "
          "for it, then get 503 with Retry-After.",
          1s, 1h, [](relay_config& c) -> auto& { return c.discovery.parent_pull_wait; }),
      settings::integer_setting<std::uint32_t, relay_config>(
          "discovery", "parent_max_pulls",
          "Items pulled from parents at once; a request for one more gets 503 with Retry-After.",
          1, 1000, [](relay_config& c) -> auto& { return c.discovery.parent_max_pulls; }),
      settings::path_setting<relay_config>("trust", "site_key",
                   "Ed25519 key that signs the catalog agents verify (lanrelay key generate). "
                   "Empty: <state dir>/site.key when it exists.",
                   [](relay_config& c) -> auto& { return c.trust.site_key; }),
      settings::duration_setting<milliseconds, relay_config>("trust", "catalog_lifetime",
                                     "How long a signed catalog stays valid for agents.", 1min, 7 * 24h,
                                     [](relay_config& c) -> auto& { return c.trust.catalog_lifetime; }),
      settings::string_list_setting<relay_config>(
          "trust", "item_origins",
          "Other origins (\"http://host:port\") serving this relay's cached items at the same "
          "paths; the signed catalog names each item's URL there so that agents use offers of "
          "those URLs. Empty: none (agents use only URLs that name the offer's sender).",
          [](relay_config& c) -> auto& { return c.trust.item_origins; }, check_origin),
      settings::live<relay_reload_hooks>(
          settings::string_setting<relay_config>("log", "level", settings::setting_type::log_level,
                     "trace, debug, info, warn, error, critical or off.",
                     [](relay_config& c) -> auto& { return c.log_level; }),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_log_level(next.log_level);
          }),
      settings::string_setting<relay_config>(
          "mirror", "public_url", settings::setting_type::text,
          "How agents reach this relay, e.g. \"http://relay.corp:4127\"; the served server.ini "
          "points there. Empty: http://<host name>:<http.port>.",
          [](relay_config& c) -> auto& { return c.mirror.public_url; },
          [](std::string_view t) -> apply_result {
            return t.empty() ? std::nullopt : check_url(t, {"http", "https"});
          }),
      settings::size_setting<relay_config>("mirror", "rate_limit",
                                 "Download rate of all mirror sources together, in bytes per "
                                 "second (\"10MiB\"). 0: unlimited.",
                                 [](relay_config& c) -> auto& { return c.mirror.rate_limit; }),
      rate_windows_setting<relay_config>(
          "mirror", "Bandwidth windows for all sources together, written like a source's "
          "rate_windows (e.g. [\"Mon-Fri 08:00-18:00 2MiB\"], local time); while one holds its "
          "rate replaces [mirror] rate_limit.",
          [](relay_config& c) -> auto& { return c.mirror.rate_windows; }),
      settings::duration_setting<milliseconds, relay_config>(
          "mirror", "pull_through_wait",
          "Agents asking for a mirrored file the relay is still fetching wait this long for it.",
          1s, 1h, [](relay_config& c) -> auto& { return c.mirror.pull_through_wait; }),
      settings::integer_setting<std::uint32_t, relay_config>(
          "mirror", "max_pulls",
          "Pull-throughs running at once over all sources; a request for one more gets 503 with "
          "Retry-After.",
          1, 1000, [](relay_config& c) -> auto& { return c.mirror.max_pulls; }),
      settings::size_setting<relay_config>(
          "mirror", "pull_volume",
          "Bytes pulled through from upstreams per hour over all sources (sliding hour); a "
          "pull that would exceed it gets 503 with Retry-After. 0: no pull-through at all.",
          [](relay_config& c) -> auto& { return c.mirror.pull_volume; }),
      settings::live<relay_reload_hooks>(
          settings::string_setting<relay_config>(
          "admin", "token", settings::setting_type::text,
          "Bearer token for endpoints that change anything (PUT /-/log-level, POST /-/mirror/...); "
          "accepted over HTTPS or from loopback only. Empty: they are refused. Keep this file "
          "readable by the daemon only.",
          [](relay_config& c) -> auto& { return c.admin.token; }, check_admin_token),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_admin(next.admin);
          }),
      settings::live<relay_reload_hooks>(
          settings::string_list_setting<relay_config>(
          "admin", "read_networks",
          "Networks that may, besides loopback, read /, /-/status, /-/metrics, /-/stats and "
          "/-/mirror and reach admin endpoints, e.g. [\"10.0.0.0/8\"]. Empty: loopback only.",
          [](relay_config& c) -> auto& { return c.admin.read_networks; }, check_network),
          [](relay_reload_hooks& h, const relay_config& next) -> apply_result {
            return h.set_admin(next.admin);
          }),
      settings::string_setting<relay_config>(
          "upstream_proxy", "pac_url", settings::setting_type::text,
          "For mirror sources with proxy = \"auto\": a PAC script evaluated after the "
          "environment's https_proxy/http_proxy. Empty: none.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.pac_url; },
          [](std::string_view t) -> apply_result {
            return t.empty() ? std::nullopt : check_url(t, {"http", "https"});
          }),
      settings::string_list_setting<relay_config>(
          "upstream_proxy", "proxyhelper_keys",
          "Public keys of the segment's proxyhelperd (lanrelay-ed25519:...); its answers are "
          "used only when signed with one of them.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.proxyhelper_keys; },
          [](std::string_view t) -> apply_result {
            if (auto key = parse_public_key(t); !key) {
              return settings::toml_string(t) + ": " + key.error().message();
            }
            return std::nullopt;
          }),
      settings::bool_setting<relay_config>(
          "upstream_proxy", "accept_unsigned",
          "Also use unsigned or unpinned proxyhelperd answers: any machine on the segment could "
          "then choose the relay's proxy.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.accept_unsigned; }),
      settings::bool_setting<relay_config>(
          "upstream_proxy", "ask_segment",
          "Ask the segment's proxyhelperd when the environment and PAC give no working route.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.ask_segment; }),
      settings::integer_setting<std::uint16_t, relay_config>(
          "upstream_proxy", "port", "proxyhelperd's UDP port.", 1, 65535,
          [](relay_config& c) -> auto& { return c.upstream_proxy.port; }),
      settings::duration_setting<milliseconds, relay_config>(
          "upstream_proxy", "window", "How long to wait for proxyhelperd's answer.", 50ms, 10s,
          [](relay_config& c) -> auto& { return c.upstream_proxy.window; }),
      settings::duration_setting<milliseconds, relay_config>(
          "upstream_proxy", "check_timeout",
          "Deadline of each step of a connectivity check through a candidate route.", 100ms, 60s,
          [](relay_config& c) -> auto& { return c.upstream_proxy.check_timeout; }),
      settings::path_setting<relay_config>(
          "upstream_proxy", "credentials_file",
          "A file whose first line is user:password, for the proxy named by credentials_proxy "
          "when it needs credentials. A regular file owned by the daemon's user, mode 0600 or "
          "0400. Empty: proxies that need credentials are skipped.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.credentials_file; }),
      settings::string_setting<relay_config>(
          "upstream_proxy", "credentials_proxy", settings::setting_type::text,
          "host:port of the only proxy credentials_file's credentials are sent to (required "
          "with credentials_file; with auth = \"negotiate\" it may stand alone); a proxy named "
          "by a PAC script or by the segment gets them, and the auth scheme, only if it is this "
          "one.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.credentials_proxy; },
          check_credentials_proxy),
      settings::string_setting<relay_config>(
          "upstream_proxy", "auth", settings::setting_type::text,
          "How the relay logs in to its HTTP proxy (a mirror source's proxy, or "
          "credentials_proxy for proxy = \"auto\" unless proxyhelperd's answer names a scheme "
          "for it): \"basic\", \"digest\" or \"ntlm\" with the user:password of the proxy URL "
          "or credentials_file, \"negotiate\" with Kerberos (keytab, or the daemon's credential "
          "cache). Other proxies found with proxy = \"auto\" get no login.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.auth; },
          [](std::string_view t) -> apply_result {
            if (!parse_proxy_auth_scheme(t)) {
              return settings::toml_string(t) +
                     " is not basic, digest, ntlm or negotiate";
            }
            return std::nullopt;
          }),
      settings::path_setting<relay_config>(
          "upstream_proxy", "keytab",
          "Client keytab for auth = \"negotiate\": lanrelayd sets KRB5_CLIENT_KTNAME to it as it "
          "starts (a restart applies a change). Empty: the environment's KRB5_CLIENT_KTNAME or "
          "the daemon's credential cache.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.keytab; }),
      settings::path_setting<relay_config>(
          "upstream_proxy", "ca_file",
          "CA bundle (PEM) an https:// proxy's certificate must chain to: a mirror source's "
          "proxy, or one found with proxy = \"auto\". Empty: the system store. A source's "
          "ca_file is for its upstream server only.",
          [](relay_config& c) -> auto& { return c.upstream_proxy.ca_file; }),
  }, {
      settings::make_list_reader(mirror_source_list()),
  }};
  return table;
}


// Credentials are bound to one proxy, and their file is a protected secret (secret_file.hpp):
// both are checked at load, so a daemon never starts with credentials it would refuse later.
void check_credentials(const upstream_proxy_settings& c, std::string_view file_name,
                       std::vector<config_diagnostic>& diagnostics) {
  const auto problem = [&](std::string message) {
    diagnostics.push_back({std::string(file_name), 0, 0, std::move(message)});
  };
  if (c.credentials_file.empty()) {
    // Negotiate needs no file: credentials_proxy alone names the proxy it logs in to.
    if (!c.credentials_proxy.empty() &&
        parse_proxy_auth_scheme(c.auth) != proxy_auth_scheme::negotiate) {
      problem("upstream_proxy.credentials_proxy is set but credentials_file is not: set both "
              "or neither (with auth = \"negotiate\", credentials_proxy alone)");
    }
    return;
  }
  if (c.credentials_proxy.empty()) {
    problem("upstream_proxy.credentials_file is set but credentials_proxy is not: name the "
            "proxy (host:port) the credentials belong to; they are sent to no other");
  }
  std::string why;
  const auto text = read_secret_file(c.credentials_file, max_credentials_file_size, why);
  if (!text) {
    problem("upstream_proxy.credentials_file: " + why);
  } else if (text->substr(0, text->find('\n')).find(':') == std::string::npos) {
    problem("upstream_proxy.credentials_file " + c.credentials_file.string() +
            ": the first line must be user:password");
  }
}

}  // namespace

std::uint64_t space_floor::for_total(std::uint64_t total) const noexcept {
  // basis_points <= 5000: neither product overflows.
  const std::uint64_t share = total / 10'000 * basis_points + total % 10'000 * basis_points / 10'000;
  return std::max(bytes, share);
}

std::string space_floor::to_string() const {
  if (basis_points != 0) {
    std::string text = std::to_string(basis_points / 100);
    if (const auto rest = basis_points % 100; rest != 0) {
      text += rest % 10 == 0 ? "." + std::to_string(rest / 10)
                             : (rest < 10 ? ".0" : ".") + std::to_string(rest);
    }
    return text + "%";
  }
  const std::string shown = settings::show_size(bytes);  // quoted
  return bytes == 0 ? std::string("0") : shown.substr(1, shown.size() - 2);
}

std::optional<space_floor> parse_space_floor(std::string_view text) {
  if (text == "0") {
    return space_floor{};
  }
  if (!text.ends_with('%')) {
    if (const auto bytes = settings::parse_size(text)) {
      return space_floor{*bytes, 0};
    }
    return std::nullopt;
  }
  text.remove_suffix(1);
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  const auto all_digits = [](std::string_view t) {
    return std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (whole.empty() || whole.size() > 2 || !all_digits(whole) || fraction.size() > 2 ||
      !all_digits(fraction) || (dot != std::string_view::npos && fraction.empty())) {
    return std::nullopt;
  }
  std::uint32_t points = static_cast<std::uint32_t>(std::stoul(std::string(whole))) * 100;
  if (!fraction.empty()) {
    points += static_cast<std::uint32_t>(std::stoul(std::string(fraction))) *
              (fraction.size() == 1 ? 10 : 1);
  }
  if (points > 5'000) {
    return std::nullopt;
  }
  return space_floor{0, points};
}

config_load_result default_relay_config() {
  config_load_result out;
  auto choice = find_default_state_dir();
  if (!choice.problem.empty()) {
    out.diagnostics.push_back({"built-in defaults", 0, 0, std::move(choice.problem)});
  }
  out.config.state_dir = std::move(choice.dir);
  return out;
}

config_load_result parse_relay_config(std::string_view toml_text, std::string_view file_name) {
  config_load_result out;
  out.config = relay_config{};  // state_dir stays empty unless set, then resolved below
  out.diagnostics = settings::parse(settings_table(), out.config, toml_text, file_name);
  check_credentials(out.config.upstream_proxy, file_name, out.diagnostics);
  if (out.config.state_dir.empty()) {
    auto choice = find_default_state_dir();
    if (!choice.problem.empty()) {
      out.diagnostics.push_back({std::string(file_name), 0, 0, std::move(choice.problem)});
    }
    out.config.state_dir = std::move(choice.dir);
  }
  return out;
}

config_load_result load_relay_config(const std::filesystem::path& file) {
  config_load_result out;
  auto text = settings::read_config_file(file, out.diagnostics);
  if (!text) {
    out.config = default_relay_config().config;  // the file's problem is reported
    return out;
  }
  return parse_relay_config(*text, file.string());
}

std::string default_relay_config_text() {
  relay_config defaults;  // state.dir printed empty: it is derived at start-up
  return settings::default_text(
      settings_table(), defaults,
      "# lanrelayd configuration. Every setting with its default; delete what you keep as is.\n");
}

std::vector<std::string> changed_settings(const relay_config& before, const relay_config& after) {
  return settings::changed(settings_table(), before, after);
}

settings::reload_plan plan_reload(const relay_config& running, relay_config& next) {
  return settings::plan_reload(settings_table(), running, next);
}

std::vector<std::string> run_reload_hooks(settings::reload_plan& plan, const relay_config& running,
                                          relay_config& next, relay_reload_hooks& hooks) {
  return settings::run_reload_hooks(settings_table(), plan, running, next, hooks);
}

}  // namespace lanrelay
