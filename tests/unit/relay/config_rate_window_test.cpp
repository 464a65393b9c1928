// Bandwidth windows in lanrelayd's configuration: [mirror] rate_windows and a source's
// rate_windows, "DAYS HH:MM-HH:MM RATE" each (upstream/rate_windows.hpp has the window rules).

#include "lanrelay/relay/config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lanrelay {
namespace {

constexpr std::uint64_t mib = 1024 * 1024;

std::vector<std::string> messages(const config_load_result& r) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) {
    out.push_back(d.to_string());
  }
  return out;
}

std::string problems(const std::string& toml) {
  const auto r = parse_relay_config(toml, "w.toml");
  std::string out;
  for (const auto& m : messages(r)) {
    out += m + "\n";
  }
  return r.ok() ? "" : out;
}

TEST(config_rate_windows, total_and_per_source_windows_are_read) {
  const auto r = parse_relay_config(R"([mirror]
rate_limit = "8MiB"
rate_windows = ["Mon-Fri 08:00-18:00 2MiB", "Sat,Sun 00:00-24:00 unlimited"]

[[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
rate_windows = ["daily 22:00-24:00 512KiB", "daily 00:00-06:00 512KiB"]
)", "w.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r));
  const auto& total = r.config.mirror.rate_windows;
  ASSERT_EQ(total.size(), 2u);
  EXPECT_EQ(total[0], (rate_window{.days = 0x1f, .start = 480, .end = 1080, .rate = 2 * mib}));
  EXPECT_EQ(total[1], (rate_window{.days = 0x60, .start = 0, .end = 1440, .rate = 0}));
  const auto& source = r.config.mirror.sources.at(0).rate_windows;
  ASSERT_EQ(source.size(), 2u);
  EXPECT_EQ(source[0], (rate_window{.days = 0x7f, .start = 1320, .end = 1440, .rate = 512 * 1024}));
  EXPECT_EQ(source[1].start, 0);
  EXPECT_EQ(source[1].end, 360);
}

TEST(config_rate_windows, the_printed_default_config_has_none_and_reads_back) {
  const std::string text = default_relay_config_text();
  EXPECT_NE(text.find("rate_windows = []"), std::string::npos) << text;
  EXPECT_NE(text.find("Mon-Fri 08:00-18:00 2MiB"), std::string::npos);  // the doc's example
  const auto r = parse_relay_config(text, "default.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r));
  EXPECT_TRUE(r.config.mirror.rate_windows.empty());
}

TEST(config_rate_windows, bad_windows_are_refused_with_the_reason) {
  const auto refused = [](const std::string& windows, const std::string& reason) {
    const auto text = problems("[mirror]\nrate_windows = " + windows + "\n");
    EXPECT_NE(text.find(reason), std::string::npos) << windows << " gave: " << text;
  };
  refused(R"(["Mon-Fri 18:00-08:00 1MiB"])", "is not before end");
  refused(R"(["Mon-Fri 08:00-18:00"])", "expected");
  refused(R"(["Weekdays 08:00-18:00 1MiB"])", "expected days");
  refused(R"(["Mon-Fri 8:00-18:00 1MiB"])", "expected hours");
  refused(R"(["Mon-Fri 08:00-18:00 fast"])", "expected a rate per second");
  refused(R"(["Mon-Fri 08:00-18:00 1MiB", "Fri 17:00-20:00 2MiB"])", "overlaps \"Mon-Fri 08:00-18:00\"");
  refused(R"("Mon-Fri 08:00-18:00 1MiB")", "expected an array");
  refused(R"([1])", "one element is");
  // Per source too.
  const auto text = problems(R"([[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
rate_windows = ["daily 23:00-01:00 1MiB"]
)");
  EXPECT_NE(text.find("across midnight is written as two"), std::string::npos) << text;
}

}  // namespace
}  // namespace lanrelay
