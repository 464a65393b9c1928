#pragma once

// The one grammar for durations, in configuration files and on command lines alike:
//
//   duration = digits [spaces] unit / "0"
//   unit     = "ms" / "s" / "m" / "h"
//
// "500ms", "10s", "5m", "1h", "10 s" and a bare "0" are durations; "1.5s", "-1s", "1 min",
// "500" (no unit) and "" are not. The settings tables (settings_table.hpp) read duration
// settings with parse_duration and print them with format_duration; the lanrelay command and
// both daemons check duration options with duration_option.hpp, so a value that works in a file
// works on the command line too.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lanrelay {

// `text` as milliseconds, or nullopt when it does not follow the grammar or overflows.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The largest unit that divides `d` evenly: 90000ms is "90s", 3600000ms "1h", 0 "0ms".
// parse_duration(format_duration(d)) == d for every d >= 0.
std::string format_duration(std::chrono::milliseconds d);

// One unit of parse_with_unit: its suffix and what one of it is worth.
struct unit_factor {
  std::string_view suffix;
  std::uint64_t factor = 1;
};

// The number-and-unit grammar under durations and sizes ("10 MiB", settings_table.hpp): the
// whole number before the suffix of the first of `units` that ends `text` (so "ms" must come
// before "s"), blanks allowed before the suffix, times its factor; nullopt when no suffix
// matches, the rest is not all digits, or the value exceeds `max`.
std::optional<std::uint64_t> parse_with_unit(std::string_view text,
                                             std::span<const unit_factor> units,
                                             std::uint64_t max = UINT64_MAX) noexcept;

// What parse_duration expects, for error messages.
inline constexpr std::string_view duration_grammar_hint =
    "a duration such as \"500ms\", \"10s\", \"5m\" or \"1h\"";

}  // namespace lanrelay
