// relay_pins: the relays' TLS certificates learned from signed catalogs, kept in the state dir,
// and the pinned https:// route they give.

#include "lanrelay/agent/relay_tls.hpp"

#include <boost/url/parse.hpp>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace lanrelay::agent {
namespace {

namespace fs = std::filesystem;

sha256_digest digest_of(std::string_view text) {
  return sha256_of(std::as_bytes(std::span(text.data(), text.size())));
}

boost::urls::url url(std::string_view text) { return boost::urls::url(*boost::urls::parse_uri(text)); }

class relay_tls_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-pins.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(relay_tls_test, a_learned_relay_is_reached_over_pinned_https_on_its_https_port) {
  relay_pins pins(dir_);
  const auto cert = digest_of("relay certificate");
  const auto http = url("http://10.1.2.3:4127/cache/file/payload/1?x=1");
  EXPECT_FALSE(pins.route(http, {}));
  pins.learn("10.1.2.3", {cert});
  const auto route = pins.route(http, relay_https_options{relay_https_mode::prefer, 4444});
  ASSERT_TRUE(route);
  EXPECT_EQ(route->url.buffer(), "https://10.1.2.3:4444/cache/file/payload/1?x=1");
  EXPECT_EQ(route->tls.pinned_certificates, std::vector<sha256_digest>{cert});
  // Off means off; other hosts and https:// URLs are left alone.
  EXPECT_FALSE(pins.route(http, relay_https_options{relay_https_mode::off, 4128}));
  EXPECT_FALSE(pins.route(url("http://10.1.2.4:4127/x"), {}));
  EXPECT_FALSE(pins.route(url("https://10.1.2.3:4128/x"), {}));
}

TEST_F(relay_tls_test, pins_survive_in_the_state_dir_and_an_empty_list_forgets) {
  const auto cert = digest_of("a");
  {
    relay_pins pins(dir_);
    pins.learn("relay.lan", {cert});
  }
  relay_pins again(dir_);
  EXPECT_EQ(again.find("relay.lan"), std::vector<sha256_digest>{cert});
  again.learn("relay.lan", {});
  EXPECT_TRUE(relay_pins(dir_).find("relay.lan").empty());
}

TEST_F(relay_tls_test, a_damaged_file_is_ignored) {
  std::ofstream(dir_ / "relay-tls.json") << "{\"relay.lan\": [\"zz\", 7], \"x\": 1";
  relay_pins pins(dir_);
  EXPECT_TRUE(pins.find("relay.lan").empty());
  std::ofstream(dir_ / "relay-tls.json") << "{\"relay.lan\": [\"zz\", 7, \"" +
                                                to_hex(digest_of("b")) + "\"], \"x\": 1}";
  EXPECT_EQ(relay_pins(dir_).find("relay.lan"), std::vector<sha256_digest>{digest_of("b")});
  EXPECT_TRUE(relay_pins(dir_).find("x").empty());
}

TEST(relay_https_mode_text, parses_the_three_modes) {
  EXPECT_EQ(parse_relay_https_mode("off"), relay_https_mode::off);
  EXPECT_EQ(parse_relay_https_mode("prefer"), relay_https_mode::prefer);
  EXPECT_EQ(parse_relay_https_mode("require"), relay_https_mode::require);
  EXPECT_FALSE(parse_relay_https_mode("yes"));
  EXPECT_EQ(to_string(relay_https_mode::require), "require");
}

}  // namespace
}  // namespace lanrelay::agent
