#include "lanrelay/base/duration.hpp"

#include <array>
#include <cstdint>
#include <limits>

namespace lanrelay {
namespace {

// Factors in milliseconds; "ms" must be tried before "s" and "m".
constexpr std::array units{unit_factor{"ms", 1}, unit_factor{"s", 1000}, unit_factor{"m", 60'000},
                           unit_factor{"h", 3'600'000}};

}  // namespace

std::optional<std::uint64_t> parse_with_unit(std::string_view text,
                                             std::span<const unit_factor> units,
                                             std::uint64_t max) noexcept {
  for (const unit_factor& u : units) {
    if (text.size() <= u.suffix.size() || !text.ends_with(u.suffix)) {
      continue;
    }
    std::string_view digits = text.substr(0, text.size() - u.suffix.size());
    while (!digits.empty() && digits.back() == ' ') {
      digits.remove_suffix(1);
    }
    if (digits.empty()) {
      return std::nullopt;
    }
    std::uint64_t value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      const auto digit = static_cast<std::uint64_t>(c - '0');
      if (value > (max - digit) / 10) {
        return std::nullopt;
      }
      value = value * 10 + digit;
    }
    if (value > max / u.factor) {
      return std::nullopt;
    }
    return value * u.factor;
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") {
    return std::chrono::milliseconds{0};
  }
  const auto ms = parse_with_unit(text, units, std::numeric_limits<std::int64_t>::max());
  if (!ms) {
    return std::nullopt;
  }
  return std::chrono::milliseconds{static_cast<std::int64_t>(*ms)};
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  for (auto it = units.rbegin(); it != units.rend(); ++it) {
    const auto factor = static_cast<std::int64_t>(it->factor);
    if (ms != 0 && ms % factor == 0) {
      return std::to_string(ms / factor) + std::string(it->suffix);
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace lanrelay
