#include "lanrelay/common/config.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <spdlog/common.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <array>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <tuple>
#include <unistd.h>

namespace lanrelay {
namespace {

// What a setting's value looks like in TOML, and how it is checked.
enum class setting_type {
  integer,   // TOML integer within [min, max]
  size,      // byte count: integer, or string with unit ("512MiB", "10GiB")
  duration,  // string with unit ("500ms", "10s", "5m", "1h")
  address,   // IP address literal
  path,      // string; empty means "derive a default"
  log_level, // spdlog level name
  boolean,   // true or false
  choice,    // one of a fixed list of strings
  secret,    // string that is never printed back (an admin token)
  networks,  // array of CIDR strings ("10.0.0.0/8", "fd00::/8") or single addresses
};

// Problems are reported as plain text; the loader adds file, line and column.
using apply_result = std::optional<std::string>;

struct setting {
  std::string_view section;
  std::string_view key;
  setting_type type;
  std::string_view doc;
  std::int64_t min = 0;
  std::int64_t max = 0;
  std::function<apply_result(relay_config&, const toml::node&)> apply;
  std::function<std::string(const relay_config&)> show;  // TOML literal of the current value

  std::string full_name() const { return std::string(section) + "." + std::string(key); }
};

std::string_view toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

struct unit {
  std::string_view suffix;
  std::uint64_t factor;
};

constexpr std::array size_units{unit{"TiB", 1ULL << 40}, unit{"GiB", 1ULL << 30},
                                unit{"MiB", 1ULL << 20}, unit{"KiB", 1ULL << 10},
                                unit{"B", 1}};
// Milliseconds per unit; "ms" must be tried before "s" and "m".
constexpr std::array duration_units{unit{"ms", 1}, unit{"s", 1000}, unit{"m", 60'000},
                                    unit{"h", 3'600'000}};

std::optional<std::uint64_t> parse_with_unit(std::string_view text, std::span<const unit> units) {
  for (const unit& u : units) {
    if (text.size() <= u.suffix.size() || !text.ends_with(u.suffix)) {
      continue;
    }
    std::string_view digits = text.substr(0, text.size() - u.suffix.size());
    while (!digits.empty() && digits.back() == ' ') {
      digits.remove_suffix(1);
    }
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(),
                                       [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    std::uint64_t value = 0;
    for (char c : digits) {
      if (value > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) {
        return std::nullopt;
      }
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (value > std::numeric_limits<std::uint64_t>::max() / u.factor) {
      return std::nullopt;
    }
    return value * u.factor;
  }
  return std::nullopt;
}

std::string show_with_unit(std::uint64_t value, std::span<const unit> units) {
  for (const unit& u : units) {
    if (value != 0 && value % u.factor == 0 && u.factor != 1) {
      // Prefer the largest unit that divides evenly; `units` runs largest first for sizes.
      return toml_string(std::to_string(value / u.factor) + std::string(u.suffix));
    }
  }
  return toml_string(std::to_string(value) + std::string(units.back().suffix));
}

std::string show_duration(std::chrono::milliseconds d) {
  const auto ms = static_cast<std::uint64_t>(d.count());
  for (auto it = duration_units.rbegin(); it != duration_units.rend(); ++it) {
    if (ms != 0 && ms % it->factor == 0) {
      return toml_string(std::to_string(ms / it->factor) + std::string(it->suffix));
    }
  }
  return toml_string(std::to_string(ms) + "ms");
}

template <typename T>
using field_of = T& (*)(relay_config&);

template <typename T>
setting integer_setting(std::string_view section, std::string_view key, std::string_view doc,
                        std::int64_t min, std::int64_t max, field_of<T> field) {
  return setting{
      section, key, setting_type::integer, doc, min, max,
      [min, max, field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* value = node.as_integer();
        if (value == nullptr) {
          return "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", got " + std::string(toml_type_name(node));
        }
        if (value->get() < min || value->get() > max) {
          return std::to_string(value->get()) + " is out of range (" + std::to_string(min) +
                 " to " + std::to_string(max) + ")";
        }
        field(c) = static_cast<T>(value->get());
        return std::nullopt;
      },
      [field](const relay_config& c) {
        return std::to_string(field(const_cast<relay_config&>(c)));
      }};
}

setting size_setting(std::string_view section, std::string_view key, std::string_view doc,
                     field_of<std::uint64_t> field) {
  return setting{
      section, key, setting_type::size, doc, 0, 0,
      [field](relay_config& c, const toml::node& node) -> apply_result {
        if (const auto* value = node.as_integer()) {
          if (value->get() < 0) {
            return "a size cannot be negative";
          }
          field(c) = static_cast<std::uint64_t>(value->get());
          return std::nullopt;
        }
        const auto* text = node.as_string();
        const auto bytes = text != nullptr ? parse_with_unit(text->get(), size_units) : std::nullopt;
        if (!bytes) {
          return "expected a size such as \"512MiB\" or \"10GiB\" (units B, KiB, MiB, GiB, TiB), got " +
                 (text != nullptr ? toml_string(text->get()) : std::string(toml_type_name(node)));
        }
        field(c) = *bytes;
        return std::nullopt;
      },
      [field](const relay_config& c) {
        return show_with_unit(field(const_cast<relay_config&>(c)), size_units);
      }};
}

template <typename Duration>
setting duration_setting(std::string_view section, std::string_view key, std::string_view doc,
                         std::chrono::milliseconds min, std::chrono::milliseconds max,
                         field_of<Duration> field) {
  return setting{
      section, key, setting_type::duration, doc, min.count(), max.count(),
      [min, max, field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* text = node.as_string();
        const auto ms = text != nullptr ? parse_with_unit(text->get(), duration_units) : std::nullopt;
        if (!ms) {
          return "expected a duration such as \"500ms\", \"10s\", \"5m\" or \"1h\", got " +
                 (text != nullptr ? toml_string(text->get()) : std::string(toml_type_name(node)));
        }
        const std::chrono::milliseconds value{*ms};
        if (value < min || value > max) {
          return toml_string(text->get()) + " is out of range (" + show_duration(min) + " to " +
                 show_duration(max) + ")";
        }
        if (value % Duration{1} != std::chrono::milliseconds{0}) {
          return toml_string(text->get()) + " is not a whole number of " +
                 (std::is_same_v<Duration, std::chrono::seconds> ? "seconds" : "milliseconds");
        }
        field(c) = std::chrono::duration_cast<Duration>(value);
        return std::nullopt;
      },
      [field](const relay_config& c) {
        return show_duration(field(const_cast<relay_config&>(c)));
      }};
}

setting string_setting(std::string_view section, std::string_view key, setting_type type,
                       std::string_view doc, field_of<std::string> field) {
  return setting{
      section, key, type, doc, 0, 0,
      [type, field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* text = node.as_string();
        if (text == nullptr) {
          return "expected a string, got " + std::string(toml_type_name(node));
        }
        if (type == setting_type::address) {
          boost::system::error_code ec;
          boost::asio::ip::make_address(text->get(), ec);
          if (ec) {
            return toml_string(text->get()) + " is not an IP address (use \"::\" or \"0.0.0.0\" for all)";
          }
        }
        if (type == setting_type::log_level) {
          const auto level = spdlog::level::from_str(text->get());
          if (level == spdlog::level::off && text->get() != "off") {
            return toml_string(text->get()) +
                   " is not a log level (trace, debug, info, warn, error, critical, off)";
          }
        }
        field(c) = text->get();
        return std::nullopt;
      },
      [field](const relay_config& c) { return toml_string(field(const_cast<relay_config&>(c))); }};
}

setting bool_setting(std::string_view section, std::string_view key, std::string_view doc,
                     field_of<bool> field) {
  return setting{
      section, key, setting_type::boolean, doc, 0, 1,
      [field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* value = node.as_boolean();
        if (value == nullptr) {
          return "expected true or false, got " + std::string(toml_type_name(node));
        }
        field(c) = value->get();
        return std::nullopt;
      },
      [field](const relay_config& c) {
        return std::string(field(const_cast<relay_config&>(c)) ? "true" : "false");
      }};
}

setting choice_setting(std::string_view section, std::string_view key, std::string_view doc,
                       std::vector<std::string_view> choices, field_of<std::string> field) {
  return setting{
      section, key, setting_type::choice, doc, 0, 0,
      [choices, field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* text = node.as_string();
        if (text == nullptr ||
            std::find(choices.begin(), choices.end(), text->get()) == choices.end()) {
          std::string list;
          for (auto choice : choices) {
            list += list.empty() ? "" : ", ";
            list += toml_string(choice);
          }
          return "expected one of " + list + ", got " +
                 (text != nullptr ? toml_string(text->get()) : std::string(toml_type_name(node)));
        }
        field(c) = text->get();
        return std::nullopt;
      },
      [field](const relay_config& c) { return toml_string(field(const_cast<relay_config&>(c))); }};
}

setting path_setting(std::string_view section, std::string_view key, std::string_view doc,
                     field_of<std::filesystem::path> field) {
  return setting{
      section, key, setting_type::path, doc, 0, 0,
      [field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* text = node.as_string();
        if (text == nullptr) {
          return "expected a path string, got " + std::string(toml_type_name(node));
        }
        if (!text->get().empty() && !std::filesystem::path(text->get()).is_absolute()) {
          return toml_string(text->get()) + " is not an absolute path";
        }
        field(c) = text->get();
        return std::nullopt;
      },
      [field](const relay_config& c) {
        return toml_string(field(const_cast<relay_config&>(c)).string());
      }};
}

// A bearer token: token68 characters (RFC 7235 §2.1), long enough not to be guessed.
constexpr std::size_t min_token_length = 16;

bool is_token_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

setting secret_setting(std::string_view section, std::string_view key, std::string_view doc,
                       field_of<std::string> field) {
  return setting{
      section, key, setting_type::secret, doc, 0, 0,
      [field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* text = node.as_string();
        if (text == nullptr) {
          return "expected a string, got " + std::string(toml_type_name(node));
        }
        const std::string& value = text->get();
        if (!value.empty() && (value.size() < min_token_length ||
                               !std::all_of(value.begin(), value.end(), is_token_char))) {
          return "a token must be at least " + std::to_string(min_token_length) +
                 " characters of A-Z a-z 0-9 - . _ ~ + / = (generate one with: openssl rand "
                 "-hex 32)";
        }
        field(c) = value;
        return std::nullopt;
      },
      // The default is printed; a configured token never is.
      [field](const relay_config& c) {
        return toml_string(field(const_cast<relay_config&>(c)).empty() ? "" : "<secret>");
      }};
}

// "10.0.0.0/8", "fd00::/8", "127.0.0.1" (one address): true when Asio accepts it as a network.
bool is_network(const std::string& text) {
  boost::system::error_code ec;
  if (text.find('/') == std::string::npos) {
    boost::asio::ip::make_address(text, ec);
    return !ec;
  }
  boost::asio::ip::make_network_v4(text, ec);
  if (!ec) {
    return true;
  }
  ec.clear();
  boost::asio::ip::make_network_v6(text, ec);
  return !ec;
}

setting networks_setting(std::string_view section, std::string_view key, std::string_view doc,
                         field_of<std::vector<std::string>> field) {
  return setting{
      section, key, setting_type::networks, doc, 0, 0,
      [field](relay_config& c, const toml::node& node) -> apply_result {
        const auto* list = node.as_array();
        if (list == nullptr) {
          return "expected an array of networks such as [\"10.0.0.0/8\", \"127.0.0.1\"], got " +
                 std::string(toml_type_name(node));
        }
        std::vector<std::string> values;
        for (const auto& element : *list) {
          const auto* text = element.as_string();
          if (text == nullptr || !is_network(text->get())) {
            return (text != nullptr ? toml_string(text->get()) : std::string(toml_type_name(element))) +
                   " is not a network (address/prefix length, e.g. \"10.0.0.0/8\" or "
                   "\"fd00::/8\", or one address)";
          }
          values.push_back(text->get());
        }
        field(c) = std::move(values);
        return std::nullopt;
      },
      [field](const relay_config& c) {
        std::string out = "[";
        for (const auto& network : field(const_cast<relay_config&>(c))) {
          out += out.size() > 1 ? ", " : "";
          out += toml_string(network);
        }
        return out + "]";
      }};
}

// The single source of truth for lanrelayd's settings, in the order they are printed.
const std::vector<setting>& settings_table() {
  using std::chrono::milliseconds;
  using namespace std::chrono_literals;
  static const std::vector<setting> table{
      path_setting("state", "dir",
                   "Directory for the cache and state. Empty: /var/lib/lanrelay as root, else "
                   "$XDG_STATE_HOME/lanrelay.",
                   [](relay_config& c) -> auto& { return c.state_dir; }),
      size_setting("cache", "max_size",
                   "Largest total size of cached items; least recently used unpinned items are "
                   "evicted beyond it. 0: no limit.",
                   [](relay_config& c) -> auto& { return c.cache_max_size; }),
      string_setting("http", "listen", setting_type::address,
                     "Address the content server listens on; \"::\" accepts IPv6 and IPv4.",
                     [](relay_config& c) -> auto& { return c.http.listen_address; }),
      integer_setting<std::uint16_t>("http", "port", "TCP port of the content server; 0 picks a free port.",
                                     0, 65535, [](relay_config& c) -> auto& { return c.http.port; }),
      integer_setting<std::uint32_t>("http", "max_connections",
                                     "Open connections beyond this are closed at once.", 1, 1'000'000,
                                     [](relay_config& c) -> auto& { return c.http.max_connections; }),
      integer_setting<std::uint32_t>("http", "max_header_bytes",
                                     "Largest request line plus headers accepted, in bytes.", 1024,
                                     1 << 20,
                                     [](relay_config& c) -> auto& { return c.http.max_header_bytes; }),
      duration_setting<milliseconds>("http", "header_timeout",
                                     "Time a client has to send a whole request head.", 100ms, 10min,
                                     [](relay_config& c) -> auto& { return c.http.header_timeout; }),
      duration_setting<milliseconds>("http", "idle_timeout",
                                     "Keep-alive connections idle this long are closed.", 100ms, 1h,
                                     [](relay_config& c) -> auto& { return c.http.idle_timeout; }),
      duration_setting<milliseconds>("http", "send_timeout",
                                     "A transfer that makes no progress this long is dropped.", 100ms,
                                     1h, [](relay_config& c) -> auto& { return c.http.send_timeout; }),
      integer_setting<std::uint32_t>("http", "threads", "Worker threads; 0: one per CPU core.", 0, 256,
                                     [](relay_config& c) -> auto& { return c.http.threads; }),
      integer_setting<std::uint32_t>("peers", "max_peers",
                                     "Transfers served at once; the next requester gets 503 and "
                                     "tries another parent.",
                                     1, 100'000, [](relay_config& c) -> auto& { return c.max_peers; }),
      duration_setting<std::chrono::seconds>(
          "peers", "retry_after", "Retry-After sent with a 503 when every transfer slot is busy.",
          1s, 1h, [](relay_config& c) -> auto& { return c.retry_after; }),
      duration_setting<milliseconds>("shutdown", "grace_period",
                                     "On SIGTERM, running transfers get this long to finish.", 0ms,
                                     1h, [](relay_config& c) -> auto& { return c.shutdown_grace; }),
      choice_setting("relay", "role",
                     "\"relay\" for the segment's relay; \"peer\" for an agent machine sharing what it "
                     "downloaded (see docs/operations.md, peer profile).",
                     {"relay", "peer"}, [](relay_config& c) -> auto& { return c.role; }),
      bool_setting("discovery", "enabled", "Answer segment queries for cached items.",
                   [](relay_config& c) -> auto& { return c.discovery.enabled; }),
      integer_setting<std::uint16_t>("discovery", "port", "UDP port for segment queries and offers.", 1,
                                     65535, [](relay_config& c) -> auto& { return c.discovery.port; }),
      bool_setting("discovery", "ipv6", "Also answer on the IPv6 link-local group ff12::4126.",
                   [](relay_config& c) -> auto& { return c.discovery.ipv6; }),
      integer_setting<std::uint32_t>("discovery", "rate_limit",
                                     "Queries answered per second per source address; more are "
                                     "dropped.",
                                     1, 100'000,
                                     [](relay_config& c) -> auto& { return c.discovery.rate_limit; }),
      duration_setting<milliseconds>("discovery", "interface_rescan",
                                     "How often interfaces that came or went are picked up.", 100ms,
                                     10min,
                                     [](relay_config& c) -> auto& { return c.discovery.interface_rescan; }),
      path_setting("trust", "site_key",
                   "Ed25519 key that signs the catalog agents verify (lanrelay key generate). "
                   "Empty: <state dir>/site.key when it exists.",
                   [](relay_config& c) -> auto& { return c.trust.site_key; }),
      duration_setting<milliseconds>("trust", "catalog_lifetime",
                                     "How long a signed catalog stays valid for agents.", 1min, 7 * 24h,
                                     [](relay_config& c) -> auto& { return c.trust.catalog_lifetime; }),
      string_setting("log", "level", setting_type::log_level,
                     "trace, debug, info, warn, error, critical or off.",
                     [](relay_config& c) -> auto& { return c.log_level; }),
      secret_setting("admin", "token",
                     "Bearer token for endpoints that change anything (PUT /-/log-level...). "
                     "Empty: they are refused. Keep this file readable by the daemon only.",
                     [](relay_config& c) -> auto& { return c.admin.token; }),
      networks_setting("admin", "read_networks",
                       "Networks that may read /, /-/status, /-/metrics and /-/stats and reach "
                       "admin endpoints, e.g. [\"10.0.0.0/8\", \"127.0.0.1/32\"]. Empty: any.",
                       [](relay_config& c) -> auto& { return c.admin.read_networks; }),
  };
  return table;
}

const setting* find_setting(std::string_view section, std::string_view key) {
  for (const setting& s : settings_table()) {
    if (s.section == section && s.key == key) {
      return &s;
    }
  }
  return nullptr;
}

std::string known_keys(std::string_view section) {
  std::string out;
  for (const setting& s : settings_table()) {
    if (s.section == section) {
      out += out.empty() ? "" : ", ";
      out += s.key;
    }
  }
  return out;
}

std::string known_sections() {
  std::string out;
  std::string_view last;
  for (const setting& s : settings_table()) {
    if (s.section != last) {
      out += out.empty() ? "" : ", ";
      out += s.section;
      last = s.section;
    }
  }
  return out;
}

config_diagnostic diagnostic_at(std::string_view file, const toml::source_region& where,
                                std::string message) {
  return config_diagnostic{std::string(file), where.begin.line, where.begin.column,
                           std::move(message)};
}

}  // namespace

std::string config_diagnostic::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  return out + ": " + message;
}

std::filesystem::path default_state_dir() {
  if (::geteuid() == 0) {
    return "/var/lib/lanrelay";
  }
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::filesystem::path(xdg) / "lanrelay";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return std::filesystem::path(home) / ".local" / "state" / "lanrelay";
  }
  return std::filesystem::temp_directory_path() / ("lanrelay-" + std::to_string(::geteuid()));
}

relay_config default_relay_config() {
  relay_config config;
  config.state_dir = default_state_dir();
  return config;
}

config_load_result parse_relay_config(std::string_view toml_text, std::string_view file_name) {
  config_load_result out;
  out.config = relay_config{};  // state_dir stays empty unless set, then resolved below

  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& err) {
    out.diagnostics.push_back(diagnostic_at(file_name, err.source(), std::string(err.description())));
    return out;
  }

  for (const auto& [section_key, section_node] : root) {
    const std::string_view section = section_key.str();
    const auto* section_table = section_node.as_table();
    if (section_table == nullptr) {
      out.diagnostics.push_back(diagnostic_at(
          file_name, section_key.source(),
          "'" + std::string(section) + "' must be a [section]; known sections: " + known_sections()));
      continue;
    }
    if (known_keys(section).empty()) {
      out.diagnostics.push_back(
          diagnostic_at(file_name, section_key.source(),
                        "unknown section [" + std::string(section) + "]; known sections: " +
                            known_sections()));
      continue;
    }
    for (const auto& [key, value] : *section_table) {
      const setting* s = find_setting(section, key.str());
      if (s == nullptr) {
        out.diagnostics.push_back(diagnostic_at(
            file_name, key.source(),
            "unknown setting '" + std::string(section) + "." + std::string(key.str()) +
                "'; known in [" + std::string(section) + "]: " + known_keys(section)));
        continue;
      }
      if (auto problem = s->apply(out.config, value)) {
        out.diagnostics.push_back(
            diagnostic_at(file_name, value.source(), s->full_name() + ": " + *problem));
      }
    }
  }
  // toml++ iterates keys in sorted order; report in file order.
  std::stable_sort(out.diagnostics.begin(), out.diagnostics.end(),
                   [](const config_diagnostic& a, const config_diagnostic& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  if (out.config.state_dir.empty()) {
    out.config.state_dir = default_state_dir();
  }
  return out;
}

config_load_result load_relay_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    config_load_result out;
    out.config = default_relay_config();
    out.diagnostics.push_back(config_diagnostic{
        file.string(), 0, 0,
        "cannot open the configuration file: " + std::string(std::strerror(errno))});
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_relay_config(text.str(), file.string());
}

std::string default_relay_config_text() {
  relay_config defaults;  // state.dir printed empty: it is derived at start-up
  std::string out =
      "# lanrelayd configuration. Every setting with its default; delete what you keep as is.\n";
  std::string_view section;
  for (const setting& s : settings_table()) {
    if (s.section != section) {
      section = s.section;
      out += "\n[" + std::string(section) + "]\n";
    }
    out += "# " + std::string(s.doc) + "\n";
    out += std::string(s.key) + " = " + s.show(defaults) + "\n";
  }
  return out;
}

}  // namespace lanrelay
