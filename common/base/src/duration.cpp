#include "lanrelay/base/duration.hpp"

#include <array>
#include <cstdint>
#include <limits>

namespace lanrelay {
namespace {

struct unit {
  std::string_view suffix;
  std::int64_t ms;
};

// "ms" must be tried before "s" and "m".
constexpr std::array units{unit{"ms", 1}, unit{"s", 1000}, unit{"m", 60'000},
                           unit{"h", 3'600'000}};

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") {
    return std::chrono::milliseconds{0};
  }
  for (const unit& u : units) {
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
    std::int64_t value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      const int digit = c - '0';
      if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) {
        return std::nullopt;
      }
      value = value * 10 + digit;
    }
    if (value > std::numeric_limits<std::int64_t>::max() / u.ms) {
      return std::nullopt;
    }
    return std::chrono::milliseconds{value * u.ms};
  }
  return std::nullopt;
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  for (auto it = units.rbegin(); it != units.rend(); ++it) {
    if (ms != 0 && ms % it->ms == 0) {
      return std::to_string(ms / it->ms) + std::string(it->suffix);
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace lanrelay
