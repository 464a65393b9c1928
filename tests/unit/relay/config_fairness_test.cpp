// The settings of issue 10's relay side: [peers] slot shares and rate floor, and
// discovery.new_source_rate; their defaults, parsing, bounds and what a reload reports.

#include "lanrelay/relay/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace lanrelay {
namespace {

using namespace std::chrono_literals;

TEST(config_fairness, defaults) {
  const auto c = default_relay_config().config;
  EXPECT_EQ(c.client_share.max_peers_per_client, 2u);
  EXPECT_EQ(c.client_share.client_ipv6_prefix, 128u);
  EXPECT_EQ(c.client_share.min_client_rate, 4096u);
  EXPECT_EQ(c.client_share.client_rate_window, 30s);
  EXPECT_EQ(c.discovery.new_source_rate, 500u);
  const std::string text = default_relay_config_text();
  for (const char* key : {"max_peers_per_client = 2", "client_ipv6_prefix = 128",
                          "min_client_rate = \"4KiB\"", "client_rate_window = \"30s\"",
                          "new_source_rate = 500"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << "\n" << text;
  }
}

TEST(config_fairness, values_are_parsed_and_bounded) {
  const auto r = parse_relay_config(R"(
[peers]
max_peers_per_client = 3
client_ipv6_prefix = 64
min_client_rate = "64KiB"
client_rate_window = "5s"
[discovery]
new_source_rate = 2000
)",
                                    "fair.toml");
  ASSERT_TRUE(r.ok()) << r.diagnostics.front().to_string();
  EXPECT_EQ(r.config.client_share.max_peers_per_client, 3u);
  EXPECT_EQ(r.config.client_share.client_ipv6_prefix, 64u);
  EXPECT_EQ(r.config.client_share.min_client_rate, 64u * 1024);
  EXPECT_EQ(r.config.client_share.client_rate_window, 5s);
  EXPECT_EQ(r.config.discovery.new_source_rate, 2000u);

  const auto bad = parse_relay_config(R"(
[peers]
max_peers_per_client = 0
client_ipv6_prefix = 129
client_rate_window = "10ms"
[discovery]
new_source_rate = 0
)",
                                      "bad.toml");
  ASSERT_EQ(bad.diagnostics.size(), 4u);
  EXPECT_NE(bad.diagnostics[0].to_string().find("bad.toml:3:"), std::string::npos);
}

TEST(config_fairness, a_changed_share_is_named_for_the_reload) {
  const auto before = parse_relay_config("", "a.toml").config;
  const auto after = parse_relay_config("[peers]\nmax_peers_per_client = 4\n", "b.toml").config;
  const auto changed = changed_settings(before, after);
  EXPECT_NE(std::find(changed.begin(), changed.end(), "peers.max_peers_per_client"),
            changed.end());
}

}  // namespace
}  // namespace lanrelay
