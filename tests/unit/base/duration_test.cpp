// The one duration grammar (base/duration.hpp): what configuration files and command-line
// options (duration_option.hpp) accept, and that both accept the same texts.

#include "lanrelay/base/duration.hpp"
#include "lanrelay/base/duration_option.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

namespace lanrelay {
namespace {

using namespace std::chrono_literals;

TEST(duration, reads_every_unit) {
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("10s"), 10s);
  EXPECT_EQ(parse_duration("1m"), 1min);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("10 s"), 10s);  // files have always allowed a space before the unit
  EXPECT_EQ(parse_duration("0ms"), 0ms);
  EXPECT_EQ(parse_duration("0"), 0ms);  // zero needs no unit ("--deadline 0": never)
}

TEST(duration, refuses_what_is_not_the_grammar) {
  for (const char* text : {"", "500", "1.5s", "-1s", "1 min", "1d", "s", "ms", " 1s", "1s ",
                           "1sec", "0x10s", "+1s", "00"}) {
    EXPECT_FALSE(parse_duration(text)) << text;
  }
}

TEST(duration, refuses_overflow_instead_of_wrapping) {
  EXPECT_FALSE(parse_duration("9223372036854775807h"));
  EXPECT_FALSE(parse_duration("99999999999999999999ms"));
  const auto max = std::to_string(std::numeric_limits<std::int64_t>::max()) + "ms";
  EXPECT_EQ(parse_duration(max), std::chrono::milliseconds::max());
}

TEST(unit_grammar, the_first_matching_suffix_counts_and_max_bounds_the_value) {
  constexpr std::array units{unit_factor{"KiB", 1024}, unit_factor{"B", 1}};
  EXPECT_EQ(parse_with_unit("10 KiB", units), 10240u);
  EXPECT_EQ(parse_with_unit("7B", units), 7u);
  EXPECT_FALSE(parse_with_unit("KiB", units));
  EXPECT_FALSE(parse_with_unit("1.5KiB", units));
  EXPECT_FALSE(parse_with_unit("10 MiB", units));
  EXPECT_EQ(parse_with_unit("100B", units, 100), 100u);
  EXPECT_FALSE(parse_with_unit("101B", units, 100));
  EXPECT_FALSE(parse_with_unit("1KiB", units, 1000));
  EXPECT_FALSE(parse_with_unit("18446744073709551616B", units));
  EXPECT_EQ(parse_with_unit("18446744073709551615B", units), UINT64_MAX);
}

TEST(duration, prints_the_largest_exact_unit_and_reads_it_back) {
  EXPECT_EQ(format_duration(0ms), "0ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(2min), "2m");
  EXPECT_EQ(format_duration(7 * 24h), "168h");
  for (auto d : {0ms, 1ms, 999ms, 1000ms, 61000ms, 3'600'000ms, 86'400'001ms}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d) << d.count();
  }
}

// The issue this grammar closes: `--busy-patience 1m` refused while `busy_patience = "1m"` read.
TEST(duration, command_line_validator_accepts_exactly_what_files_accept) {
  const auto validator = duration_validator();
  for (std::string text : {"1m", "500ms", "10 s", "1h", "0", "500", "1.5s", "", "1 min", "2d"}) {
    std::string copy = text;
    const std::string problem = validator(copy);
    EXPECT_EQ(problem.empty(), parse_duration(text).has_value()) << text << ": " << problem;
    if (!problem.empty()) {
      EXPECT_NE(problem.find("is not a duration such as"), std::string::npos) << problem;
    }
  }
}

}  // namespace
}  // namespace lanrelay
