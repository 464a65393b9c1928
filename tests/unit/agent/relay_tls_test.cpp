// relay_pins: the relays' TLS certificates learned from signed catalogs, kept in the state dir by
// the relays' identity (site key, relay id), and the pinned https:// route they give.

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

public_key key_of(char fill) {
  public_key key;
  key.bytes.fill(static_cast<std::byte>(fill));
  return key;
}

const public_key site = key_of('s');

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
  relay_pins pins(dir_, {site});
  const auto cert = digest_of("relay certificate");
  const auto http = url("http://10.1.2.3:4127/cache/file/payload/1?x=1");
  EXPECT_FALSE(pins.route(http, {}));
  pins.learn(site, "relay1", {cert});
  const auto route = pins.route(http, relay_https_options{relay_https_mode::prefer, 4444});
  ASSERT_TRUE(route);
  EXPECT_EQ(route->url.buffer(), "https://10.1.2.3:4444/cache/file/payload/1?x=1");
  EXPECT_EQ(route->tls.pinned_certificates, std::vector<sha256_digest>{cert});
  // Off means off; https:// URLs are left alone.
  EXPECT_FALSE(pins.route(http, relay_https_options{relay_https_mode::off, 4128}));
  EXPECT_FALSE(pins.route(url("https://10.1.2.3:4128/x"), {}));
}

TEST_F(relay_tls_test, a_relay_learned_at_one_address_is_pinned_at_its_other_addresses) {
  const auto cert = digest_of("dual-stack relay");
  relay_pins(dir_, {site}).learn(site, "relay1", {cert});
  // The next run meets the same relay's IPv6 offer first: no second bootstrap over HTTP.
  const relay_pins pins(dir_, {site});
  for (const auto* text : {"http://10.1.2.3:4127/-/catalog.signed",
                           "http://[fe80::1234]:4127/-/catalog.signed",
                           "http://[fd86::3]:4127/cache/file/payload/1"}) {
    const auto route = pins.route(url(text), {});
    ASSERT_TRUE(route) << text;
    EXPECT_EQ(route->url.scheme_id(), boost::urls::scheme::https) << text;
    EXPECT_EQ(route->tls.pinned_certificates, std::vector<sha256_digest>{cert}) << text;
  }
}

TEST_F(relay_tls_test, pins_are_those_of_the_site_keys_in_use) {
  const auto other_site = key_of('o');
  {
    relay_pins pins(dir_, {site});
    pins.learn(site, "relay1", {digest_of("a")});
    pins.learn(site, "relay2", {digest_of("b"), digest_of("c")});
    pins.learn(other_site, "relay9", {digest_of("z")});
  }
  const auto certs = relay_pins(dir_, {site}).certificates();
  EXPECT_EQ(certs, (std::vector<sha256_digest>{digest_of("a"), digest_of("b"), digest_of("c")}));
  EXPECT_EQ(relay_pins(dir_, {other_site}).certificates(), std::vector<sha256_digest>{digest_of("z")});
  EXPECT_TRUE(relay_pins(dir_, {key_of('n')}).certificates().empty());
  EXPECT_EQ(relay_pins(dir_).certificates().size(), 4u) << "without site keys: every relay";
}

TEST_F(relay_tls_test, pins_survive_in_the_state_dir_and_an_empty_list_forgets) {
  const auto cert = digest_of("a");
  {
    relay_pins pins(dir_, {site});
    pins.learn(site, "relay1", {cert});
    pins.learn(site, "relay1", {digest_of("renewed")});
    pins.learn(site, "relay2", {cert});
  }
  relay_pins again(dir_, {site});
  EXPECT_EQ(again.certificates(), (std::vector<sha256_digest>{digest_of("renewed"), cert}));
  again.learn(site, "relay1", {});
  again.learn(site, "relay2", {});
  EXPECT_TRUE(relay_pins(dir_, {site}).certificates().empty());
}

TEST_F(relay_tls_test, a_damaged_file_or_one_by_address_is_ignored) {
  std::ofstream(dir_ / "relay-tls.json") << "{\"relay.lan\": [\"zz\", 7], \"x\": 1";
  EXPECT_TRUE(relay_pins(dir_).certificates().empty());
  // The per-address file of earlier versions: learned again from the catalogs.
  std::ofstream(dir_ / "relay-tls.json") << "{\"10.1.2.3\": [\"" + to_hex(digest_of("b")) + "\"]}";
  EXPECT_TRUE(relay_pins(dir_).certificates().empty());
  std::ofstream(dir_ / "relay-tls.json")
      << "{\"" + site.to_string() + "\": {\"relay1\": [\"zz\", 7, \"" + to_hex(digest_of("b")) +
             "\"], \"relay2\": 1}, \"x\": 1}";
  EXPECT_EQ(relay_pins(dir_, {site}).certificates(), std::vector<sha256_digest>{digest_of("b")});
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
