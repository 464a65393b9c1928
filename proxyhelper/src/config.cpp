#include "lanrelay/proxyhelper/config.hpp"

#include "lanrelay/base/secret_file.hpp"
#include "lanrelay/base/settings_table.hpp"
#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/serving/admin_access.hpp"
#include "lanrelay/base/detail/settings_toml.hpp"

#include <boost/url/parse.hpp>

namespace lanrelay::proxyhelper {

proxy_protocol::proxy_entry advertised_entry(const proxy_spec& spec) {
  return {spec.url, spec.priority, spec.needs_credentials, spec.bypass,
          proxy_protocol::parse_auth_scheme(spec.auth)};
}

namespace {

namespace proxy = proxy_protocol;

bool is_http_url(std::string_view text) {
  const auto url = boost::urls::parse_absolute_uri(text);
  return url && (url->scheme_id() == boost::urls::scheme::http ||
                 url->scheme_id() == boost::urls::scheme::https) &&
         url->has_authority() && !url->encoded_host().empty();
}

using settings::apply_result;

apply_result check_proxy_url(std::string_view text) {
  if (!proxy::is_valid_proxy_url(text)) {
    return settings::toml_string(text) +
           " is not a proxy URL: http://host[:port] with no credentials, path or query (agents "
           "bring their own credentials: set needs_credentials = true)";
  }
  return std::nullopt;
}

apply_result check_bypass(std::string_view entry) {
  if (!proxy::is_valid_bypass_entry(entry)) {
    return settings::toml_string(entry) +
           " is not a bypass entry: a host name, \"*.suffix\", \".suffix\", an address or "
           "address/prefix (\"10.0.0.0/8\")";
  }
  return std::nullopt;
}

apply_result check_auth_scheme(std::string_view text) {
  if (!text.empty() && !proxy::parse_auth_scheme(text)) {
    return settings::toml_string(text) +
           " is not a proxy authentication scheme: \"basic\", \"digest\", \"ntlm\" or "
           "\"negotiate\" (or leave auth out)";
  }
  return std::nullopt;
}

apply_result check_optional_http_url(std::string_view text) {
  if (!text.empty() && !is_http_url(text)) {
    return settings::toml_string(text) + " is not an http:// or https:// URL";
  }
  return std::nullopt;
}

// The PAC URL is handed to every host of the segment (the /proxy.pac redirect): no credentials.
apply_result check_pac_url(std::string_view text) {
  if (auto bad = check_optional_http_url(text)) {
    return bad;
  }
  if (!text.empty() && boost::urls::parse_absolute_uri(text)->has_userinfo()) {
    return "a PAC URL is given to every host of the segment, so it must not carry a user or "
           "password: put the PAC script where it can be fetched without them";
  }
  return std::nullopt;
}

settings::list_of_tables<proxyhelper_config, proxy_spec> proxy_list() {
  using item = proxy_spec;
  proxy_spec example;
  example.url = "http://proxy.corp.example:3128";
  example.bypass = {"*.corp.example", "10.0.0.0/8"};
  return {
      {"proxy"},
      "A proxy to advertise (at most 8). Agents try them best first.",
      {
          settings::required(settings::string_setting<item>(
              "", "url", settings::setting_type::text, "http://host:port of the proxy.",
              [](item& p) -> auto& { return p.url; }, check_proxy_url)),
          settings::integer_setting<std::uint16_t, item>(
              "", "priority", "Lower is better; equal priorities keep the file's order.", 0,
              65535, [](item& p) -> auto& { return p.priority; }),
          settings::bool_setting<item>(
              "", "needs_credentials",
              "The proxy asks for a user and password, which agents must bring themselves.",
              [](item& p) -> auto& { return p.needs_credentials; }),
          settings::string_list_setting<item>(
              "", "bypass",
              "Hosts reached directly, not through this proxy: \"host\", \"*.suffix\", "
              "\".suffix\", \"10.0.0.0/8\".",
              [](item& p) -> auto& { return p.bypass; }, check_bypass),
          settings::string_setting<item>(
              "", "auth", settings::setting_type::text,
              "The scheme the proxy asks for: \"basic\", \"digest\", \"ntlm\" or "
              "\"negotiate\" (Kerberos). Said in every answer, so agents log in with it; the "
              "health check logs in with it when it has credentials. Empty: not said.",
              [](item& p) -> auto& { return p.auth; }, check_auth_scheme),
          settings::path_setting<item>(
              "", "check_credentials_file",
              "A file whose first line is user:password, for this proxy's health check only "
              "(basic, digest, ntlm); owned by the daemon's user, mode 0600 or 0400. Negotiate "
              "checks use the daemon's Kerberos credentials (KRB5_CLIENT_KTNAME). Empty: "
              "checked without credentials.",
              [](item& p) -> auto& { return p.check_credentials_file; }),
      },
      [](proxyhelper_config& c) -> auto& { return c.proxies; },
      [](const item& p, std::span<const item> earlier) -> apply_result {
        for (const item& other : earlier) {
          if (other.url == p.url) {
            return "the url " + settings::toml_string(p.url) + " is listed twice";
          }
        }
        return std::nullopt;
      },
      example,
      true,  // reloadable: the new list is advertised once its proxies pass a health check
      [](settings::live_hooks& h, const proxyhelper_config& next) -> apply_result {
        return static_cast<reload_hooks&>(h).set_proxies(next.proxies);
      },
  };
}

// The single source of truth for proxyhelperd's settings, in the order they are printed.
const settings::table<proxyhelper_config>& settings_table() {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  using namespace std::chrono_literals;
  using config = proxyhelper_config;
  static const settings::table<config> table{{
      settings::path_setting<config>(
          "state", "dir",
          "Directory for the signing key and the machine cookie. Empty: /var/lib/lanrelay as "
          "root, else $XDG_STATE_HOME/lanrelay.",
          [](config& c) -> auto& { return c.state_dir; }),
      settings::path_setting<config>(
          "trust", "signing_key",
          "Ed25519 key that signs every answer, created on first start. Empty: "
          "<state.dir>/proxyhelper.key. Agents pin its public key (printed at start).",
          [](config& c) -> auto& { return c.signing_key; }),
      settings::integer_setting<std::uint16_t, config>(
          "query", "port", "UDP port for proxy queries (IPv4 broadcast, IPv6 ff12::4129).", 1,
          65535, [](config& c) -> auto& { return c.query_port; }),
      settings::bool_setting<config>("query", "ipv6",
                                     "Also answer queries sent to the IPv6 link-local group.",
                                     [](config& c) -> auto& { return c.ipv6; }),
      settings::live<reload_hooks>(
          settings::integer_setting<std::uint32_t, config>(
          "query", "rate_limit", "Queries answered per second per source address (burst: 2 s).",
          1, 100'000, [](config& c) -> auto& { return c.rate_limit; }),
          [](reload_hooks& h, const config& next) -> apply_result {
            return h.set_query_limits(next.rate_limit, next.new_source_rate, next.answer_lifetime);
          }),
      settings::live<reload_hooks>(
          settings::integer_setting<std::uint32_t, config>(
          "query", "new_source_rate",
          "Queries answered per second from sources not tracked yet, shared by all new sources "
          "of one address family on one interface; bounds a flood of invented source addresses.",
          1, 1'000'000, [](config& c) -> auto& { return c.new_source_rate; }),
          [](reload_hooks& h, const config& next) -> apply_result {
            return h.set_query_limits(next.rate_limit, next.new_source_rate, next.answer_lifetime);
          }),
      settings::duration_setting<milliseconds, config>(
          "query", "interface_rescan", "How often new interfaces are picked up.", 100ms, 1h,
          [](config& c) -> auto& { return c.interface_rescan; }),
      settings::live<reload_hooks>(
          settings::duration_setting<seconds, config>(
          "query", "answer_lifetime",
          "How long a signed answer stays valid; agents refuse expired ones, so clocks must "
          "agree within this.",
          1s, 1h, [](config& c) -> auto& { return c.answer_lifetime; }),
          [](reload_hooks& h, const config& next) -> apply_result {
            return h.set_query_limits(next.rate_limit, next.new_source_rate, next.answer_lifetime);
          }),
      settings::string_setting<config>("http", "listen", settings::setting_type::address,
                                       "Address for PAC/WPAD; \"::\" listens on IPv6 and IPv4.",
                                       [](config& c) -> auto& { return c.http_listen; }),
      settings::integer_setting<std::uint16_t, config>(
          "http", "port", "TCP port for /proxy.pac, /wpad.dat, /-/healthz and /-/stats; 0: any.",
          0, 65535, [](config& c) -> auto& { return c.http_port; }),
      settings::duration_setting<milliseconds, config>(
          "http", "header_timeout", "A request head must arrive whole within this.", 100ms, 10min,
          [](config& c) -> auto& { return c.header_timeout; }),
      settings::duration_setting<milliseconds, config>(
          "http", "idle_timeout",
          "How long a keep-alive connection may wait for its next request to begin.", 100ms,
          10min, [](config& c) -> auto& { return c.idle_timeout; }),
      settings::duration_setting<milliseconds, config>(
          "http", "send_timeout", "Sending one response must be done within this.", 100ms, 10min,
          [](config& c) -> auto& { return c.send_timeout; }),
      settings::integer_setting<std::uint32_t, config>(
          "http", "max_header_bytes", "Largest request head accepted; a larger one closes the "
          "connection.", 1024, 1'048'576, [](config& c) -> auto& { return c.max_header_bytes; }),
      settings::integer_setting<std::uint32_t, config>(
          "http", "max_connections", "Open HTTP connections at most; more are refused.", 1,
          100'000, [](config& c) -> auto& { return c.max_connections; }),
      settings::live<reload_hooks>(
          settings::string_setting<config>(
          "http", "pac_url", settings::setting_type::text,
          "The site's own PAC script: /proxy.pac and /wpad.dat redirect there. Empty: serve the "
          "script generated from [[proxy]] and their health.",
          [](config& c) -> auto& { return c.pac_url; }, check_pac_url)),
      settings::bool_setting<config>(
          "https", "enabled", "Serve the monitoring endpoints over HTTPS too (same listen address).",
          [](config& c) -> auto& { return c.https.enabled; }),
      settings::integer_setting<std::uint16_t, config>(
          "https", "port", "TCP port of the HTTPS server; 0: any.", 0, 65535,
          [](config& c) -> auto& { return c.https.port; }),
      settings::path_setting<config>(
          "https", "certificate",
          "PEM certificate. Empty (with private_key empty): <state.dir>/proxyhelper-tls.crt, "
          "generated self-signed at first start.",
          [](config& c) -> auto& { return c.https.certificate; }),
      settings::path_setting<config>(
          "https", "private_key",
          "PEM private key of the certificate (mode 0600). Empty: <state.dir>/proxyhelper-tls.key.",
          [](config& c) -> auto& { return c.https.private_key; }),
      settings::duration_setting<milliseconds, config>(
          "https", "handshake_timeout", "Time a client has to complete the TLS handshake.", 100ms,
          10min, [](config& c) -> auto& { return c.https.handshake_timeout; }),
      settings::live<reload_hooks>(
          settings::string_list_setting<config>(
          "admin", "read_networks",
          "Networks that may, besides loopback, read /, /-/status, /-/metrics and /-/stats, e.g. "
          "[\"10.0.0.0/8\"]. Empty: loopback only. PAC, WPAD and /-/healthz stay open.",
          [](config& c) -> auto& { return c.read_networks; },
          [](std::string_view t) -> apply_result {
            if (!is_valid_network(t)) {
              return settings::toml_string(t) +
                     " is not a network (address/prefix length, e.g. \"10.0.0.0/8\", or one "
                     "address)";
            }
            return std::nullopt;
          })),
      settings::live<reload_hooks>(
          settings::string_setting<config>(
          "health", "probe_url", settings::setting_type::text,
          "Reached through each proxy to check it; https:// opens a CONNECT tunnel.",
          [](config& c) -> auto& { return c.probe_url; },
          [](std::string_view t) -> apply_result {
            return t.empty() ? apply_result("must not be empty") : check_optional_http_url(t);
          })),
      settings::live<reload_hooks>(
          settings::duration_setting<milliseconds, config>(
          "health", "interval", "Time between two checks of every proxy.", 100ms, 1h,
          [](config& c) -> auto& { return c.check_interval; })),
      settings::live<reload_hooks>(
          settings::duration_setting<milliseconds, config>(
          "health", "timeout", "A check fails when a step (connect, tunnel, TLS, head) takes longer.",
          100ms, 5min, [](config& c) -> auto& { return c.check_timeout; })),
      settings::live<reload_hooks>(
          settings::path_setting<config>(
          "health", "ca_file", "CA bundle for an https:// probe_url. Empty: the system store.",
          [](config& c) -> auto& { return c.probe_ca_file; })),
      settings::live<reload_hooks>(
          settings::string_setting<config>("log", "level", settings::setting_type::log_level,
                                       "trace, debug, info, warn, error, critical or off.",
                                       [](config& c) -> auto& { return c.log_level; }),
          [](reload_hooks& h, const config& next) -> apply_result {
            return h.set_log_level(next.log_level);
          }),
  }, {
      settings::make_list_reader(proxy_list()),
  }};
  return table;
}

}  // namespace

config_load_result parse_config(std::string_view toml_text, std::string_view file_name) {
  config_load_result out;
  out.diagnostics = settings::parse(settings_table(), out.config, toml_text, file_name);
  if (out.config.state_dir.empty()) {
    auto choice = find_default_state_dir();
    if (!choice.problem.empty()) {
      out.diagnostics.push_back(config_diagnostic{std::string(file_name), 0, 0,
                                                  std::move(choice.problem)});
    }
    out.config.state_dir = std::move(choice.dir);
  }
  if (out.diagnostics.empty()) {
    for (auto& problem : validate(out.config)) {
      out.diagnostics.push_back(config_diagnostic{std::string(file_name), 0, 0, std::move(problem)});
    }
  }
  return out;
}

config_load_result load_config(const std::filesystem::path& file) {
  config_load_result out;
  auto text = settings::read_config_file(file, out.diagnostics);
  if (!text) {
    return out;
  }
  return parse_config(*text, file.string());
}

std::string default_config_text() {
  proxyhelper_config defaults;
  return settings::default_text(
      settings_table(), defaults,
      "# proxyhelperd configuration. Every setting with its default; add at least one [[proxy]].\n");
}

std::vector<std::string> validate(const proxyhelper_config& config) {
  std::vector<std::string> problems;
  if (config.proxies.empty()) {
    problems.push_back("no [[proxy]] configured: proxyhelperd has nothing to advertise; add at "
                       "least one [[proxy]] table with a url");
  }
  if (config.proxies.size() > proxy::max_proxies) {
    problems.push_back("at most " + std::to_string(proxy::max_proxies) + " [[proxy]] tables (" +
                       std::to_string(config.proxies.size()) + " configured)");
  }
  std::vector<proxy::proxy_entry> entries;
  for (std::size_t i = 0; i < config.proxies.size(); ++i) {
    const auto& p = config.proxies[i];
    const std::string where = "proxy " + std::to_string(i + 1) + " (" + p.url + ")";
    if (!proxy::is_valid_proxy_url(p.url)) {
      problems.push_back(where + ": url must be http://host[:port] with no credentials, path or "
                         "query, at most " + std::to_string(proxy::max_proxy_url_length) +
                         " characters; agents bring their own credentials (needs_credentials)");
    }
    std::size_t bypass_length = 0;
    for (const auto& entry : p.bypass) {
      bypass_length += entry.size() + 1;
      if (!proxy::is_valid_bypass_entry(entry)) {
        problems.push_back(where + ": bypass entry \"" + entry +
                           "\" is not a host name, *.suffix, .suffix, address or address/prefix");
      }
    }
    if (bypass_length > proxy::max_bypass_length + 1) {
      problems.push_back(where + ": the bypass list is longer than " +
                         std::to_string(proxy::max_bypass_length) + " characters in all");
    }
    if (!p.check_credentials_file.empty()) {
      std::string why;
      const auto text = read_secret_file(p.check_credentials_file, max_check_credentials_size, why);
      if (!text) {
        problems.push_back(where + ": check_credentials_file: " + why);
      } else if (text->substr(0, text->find('\n')).find(':') == std::string::npos) {
        problems.push_back(where + ": check_credentials_file " + p.check_credentials_file.string() +
                           ": the first line must be user:password");
      }
    }
    entries.push_back(advertised_entry(p));
  }
  if (const auto size = proxy::answer_size(entries, true); size > proxy::query_datagram_size) {
    problems.push_back("the proxies' URLs and bypass lists make a signed answer of " +
                       std::to_string(size) + " bytes, more than the " +
                       std::to_string(proxy::query_datagram_size) +
                       " a datagram may carry; shorten the bypass lists or advertise fewer "
                       "proxies");
  }
  if (!is_http_url(config.probe_url)) {
    problems.push_back("health.probe_url \"" + config.probe_url +
                       "\" must be an http:// or https:// URL");
  }
  if (!config.pac_url.empty() && !is_http_url(config.pac_url)) {
    problems.push_back("http.pac_url \"" + config.pac_url + "\" must be an http:// or https:// URL");
  }
  if (config.answer_lifetime < std::chrono::seconds(1) ||
      config.answer_lifetime > proxy::max_answer_lifetime) {
    problems.push_back("query.answer_lifetime must be between 1 s and 1 h: agents refuse longer "
                       "ones");
  }
  if (config.check_interval <= std::chrono::milliseconds(0) ||
      config.check_timeout <= std::chrono::milliseconds(0)) {
    problems.push_back("health.check_interval and health.check_timeout must be positive");
  }
  if (config.rate_limit == 0) {
    problems.push_back("query.rate_limit must be at least 1 query per second");
  }
  return problems;
}

std::filesystem::path signing_key_path(const proxyhelper_config& config) {
  return config.signing_key.empty() ? config.state_dir / "proxyhelper.key" : config.signing_key;
}

live_config::live_config(proxyhelper_config initial)
    : current_(std::make_shared<const proxyhelper_config>(std::move(initial))) {}

std::shared_ptr<const proxyhelper_config> live_config::get() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void live_config::set(proxyhelper_config next) {
  auto replacement = std::make_shared<const proxyhelper_config>(std::move(next));
  std::lock_guard lock(mutex_);
  current_ = std::move(replacement);
}

std::vector<std::string> changed_settings(const proxyhelper_config& a,
                                          const proxyhelper_config& b) {
  return settings::changed(settings_table(), a, b);
}

bool needs_restart(std::string_view setting) {
  return !settings::is_reloadable(settings_table(), setting);
}

settings::reload_plan plan_reload(const proxyhelper_config& running, proxyhelper_config& next) {
  return settings::plan_reload(settings_table(), running, next);
}

std::vector<std::string> run_reload_hooks(settings::reload_plan& plan,
                                          const proxyhelper_config& running,
                                          proxyhelper_config& next, reload_hooks& hooks) {
  return settings::run_reload_hooks(settings_table(), plan, running, next, hooks);
}

}  // namespace lanrelay::proxyhelper
