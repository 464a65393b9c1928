#include "lanrelay/base/text_format.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <array>

namespace lanrelay {

std::string_view trim(std::string_view text, std::string_view blanks) noexcept {
  const auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(blanks);
  return text.substr(first, last - first + 1);
}

void append_hex(std::string& out, unsigned char byte) {
  constexpr std::string_view digits = "0123456789abcdef";
  out += digits[byte >> 4];
  out += digits[byte & 0x0f];
}

void append_hex(std::string& out, std::span<const std::byte> bytes) {
  out.reserve(out.size() + bytes.size() * 2);
  for (const std::byte b : bytes) {
    append_hex(out, std::to_integer<unsigned char>(b));
  }
}

std::optional<int> hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return std::nullopt;
}

std::string hex_encode(std::span<const std::byte> bytes) {
  std::string out;
  append_hex(out, bytes);
  return out;
}

std::string human_bytes(std::uint64_t bytes) {
  constexpr std::array units{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) {
    return fmt::format("{} B", bytes);
  }
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

std::string human_duration(std::chrono::seconds s) {
  const auto total = s.count() < 0 ? 0 : s.count();
  if (total < 120) {
    return fmt::format("{} s", total);
  }
  if (total < 7200) {
    return fmt::format("{} min", total / 60);
  }
  if (total < 172800) {
    return fmt::format("{} h {} min", total / 3600, (total % 3600) / 60);
  }
  return fmt::format("{} d {} h", total / 86400, (total % 86400) / 3600);
}

std::string format_utc(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const std::string_view status_page_style = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
.meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.5em .8em;min-width:9em}
.card .label{color:#666;font-size:.85em}.card .value{font-size:1.25em;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#666;font-style:italic}.error{color:#a00}
svg{width:100%;height:auto;background:#fff;border:1px solid #ddd}
.grid{stroke:#eee}.base{stroke:#888}.axis{font-size:11px;fill:#555}
.served{fill:#2a7d3f}.upstream{fill:#d9822b}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle}
.swatch.served{background:#2a7d3f}.swatch.upstream{background:#d9822b}
.swatch.ok{background:#2a7d3f}.swatch.failed{background:#c0392b}
code{font-size:.9em}
)";

}  // namespace lanrelay
