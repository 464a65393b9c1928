#include "lanrelay/base/settings_table.hpp"
#include "lanrelay/base/detail/settings_toml.hpp"

#include "lanrelay/base/redact.hpp"
#include "lanrelay/base/duration.hpp"

#include <boost/asio/ip/address.hpp>
#include <spdlog/common.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace lanrelay::settings {
namespace {

constexpr std::array size_units{unit_factor{"TiB", 1ULL << 40}, unit_factor{"GiB", 1ULL << 30},
                                unit_factor{"MiB", 1ULL << 20}, unit_factor{"KiB", 1ULL << 10},
                                unit_factor{"B", 1}};

}  // namespace

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

std::optional<std::uint64_t> parse_size(std::string_view text) {
  return parse_with_unit(text, size_units);
}

std::string size_text(std::uint64_t bytes) {
  for (const unit_factor& u : size_units) {
    // The largest unit that divides evenly; size_units runs largest first.
    if (bytes != 0 && bytes % u.factor == 0 && u.factor != 1) {
      return std::to_string(bytes / u.factor) + std::string(u.suffix);
    }
  }
  return std::to_string(bytes) + "B";
}

std::string show_size(std::uint64_t bytes) { return toml_string(size_text(bytes)); }

std::string show_duration(std::chrono::milliseconds d) {
  return toml_string(format_duration(d));
}

apply_result check_address(std::string_view text) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(text), ec);
  if (ec) {
    return toml_string(text) + " is not an IP address (use \"::\" or \"0.0.0.0\" for all)";
  }
  return std::nullopt;
}

apply_result check_log_level(std::string_view text) {
  const auto level = spdlog::level::from_str(std::string(text));
  if (level == spdlog::level::off && text != "off") {
    return toml_string(text) + " is not a log level (trace, debug, info, warn, error, critical, off)";
  }
  return std::nullopt;
}

config_diagnostic diagnostic_at(std::string_view file, const toml::source_region& where,
                                std::string message) {
  return config_diagnostic{std::string(file), where.begin.line, where.begin.column,
                           std::move(message)};
}

std::optional<std::string> read_config_file(const std::filesystem::path& file,
                                            std::vector<config_diagnostic>& diagnostics) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    diagnostics.push_back(config_diagnostic{
        file.string(), 0, 0,
        "cannot open the configuration file: " + std::string(std::strerror(errno))});
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace lanrelay::settings

namespace lanrelay {

std::string config_diagnostic::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  // A rejected URL is quoted back to the administrator, but its password stays in the file.
  return out + ": " + redact_urls(message);
}

}  // namespace lanrelay
