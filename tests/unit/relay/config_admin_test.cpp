// The [admin] settings: the admin token and the networks allowed to read status and metrics.

#include "lanrelay/relay/config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lanrelay {
namespace {

std::string all_messages(const config_load_result& r) {
  std::string out;
  for (const auto& d : r.diagnostics) {
    out += d.to_string() + "\n";
  }
  return out;
}

TEST(config_admin, token_and_networks_are_applied) {
  const auto r = parse_relay_config(R"(
[admin]
token = "s3cr3t-token-0123456789"
read_networks = ["10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"]
)",
                                    "admin.toml");
  ASSERT_TRUE(r.ok()) << all_messages(r);
  EXPECT_EQ(r.config.admin.token, "s3cr3t-token-0123456789");
  EXPECT_EQ(r.config.admin.read_networks,
            (std::vector<std::string>{"10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"}));
}

TEST(config_admin, defaults_have_no_token_and_no_network_limit) {
  const auto r = parse_relay_config("", "empty.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config.admin.token.empty());
  EXPECT_TRUE(r.config.admin.read_networks.empty());
  const auto text = default_relay_config_text();
  EXPECT_NE(text.find("[admin]\n"), std::string::npos);
  EXPECT_NE(text.find("token = \"\"\n"), std::string::npos);
  EXPECT_NE(text.find("read_networks = []\n"), std::string::npos);
}

TEST(config_admin, weak_tokens_and_bad_networks_are_reported_with_their_position) {
  const auto r = parse_relay_config(R"([admin]
token = "short"
read_networks = ["10.0.0.0/8", "10.0.0.0/33", "lan"]
)",
                                    "bad.toml");
  ASSERT_EQ(r.diagnostics.size(), 2U) << all_messages(r);
  EXPECT_EQ(r.diagnostics[0].line, 2U);
  EXPECT_NE(r.diagnostics[0].message.find("admin.token: a token must be at least 16"),
            std::string::npos);
  EXPECT_EQ(r.diagnostics[1].line, 3U);
  EXPECT_NE(r.diagnostics[1].message.find("\"10.0.0.0/33\" is not a network"), std::string::npos);

  const auto spaces = parse_relay_config("[admin]\ntoken = \"has spaces in the token!\"\n", "s.toml");
  EXPECT_FALSE(spaces.ok());
  const auto not_list = parse_relay_config("[admin]\nread_networks = \"10.0.0.0/8\"\n", "l.toml");
  ASSERT_FALSE(not_list.ok());
  EXPECT_NE(not_list.diagnostics[0].message.find("expected an array of strings"),
            std::string::npos);
  const auto not_strings = parse_relay_config("[admin]\nread_networks = [10]\n", "n.toml");
  ASSERT_FALSE(not_strings.ok());
  EXPECT_NE(not_strings.diagnostics[0].message.find("one element is an integer"),
            std::string::npos);
}

}  // namespace
}  // namespace lanrelay

namespace lanrelay {
namespace {

TEST(config_https, defaults_and_settings) {
  const auto defaults = parse_relay_config("", "empty.toml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.config.https.enabled);
  EXPECT_EQ(defaults.config.https.port, 4128);
  EXPECT_TRUE(defaults.config.https.certificate.empty());
  EXPECT_EQ(defaults.config.https.handshake_timeout, std::chrono::seconds(10));
  EXPECT_NE(default_relay_config_text().find("[https]\n"), std::string::npos);

  const auto r = parse_relay_config(R"([https]
enabled = false
port = 0
certificate = "/etc/lanrelay/tls.crt"
private_key = "/etc/lanrelay/tls.key"
handshake_timeout = "2s"
)",
                                    "https.toml");
  ASSERT_TRUE(r.ok()) << all_messages(r);
  EXPECT_FALSE(r.config.https.enabled);
  EXPECT_EQ(r.config.https.port, 0);
  EXPECT_EQ(r.config.https.private_key, "/etc/lanrelay/tls.key");
  EXPECT_EQ(r.config.https.handshake_timeout, std::chrono::seconds(2));

  const auto bad = parse_relay_config("[https]\nport = 70000\nhandshake_timeout = \"1ms\"\n", "b.toml");
  EXPECT_EQ(bad.diagnostics.size(), 2u) << all_messages(bad);
}

}  // namespace
}  // namespace lanrelay
