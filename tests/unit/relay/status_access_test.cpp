// access_policy: the one decision behind every monitoring and admin endpoint.

#include "lanrelay/relay/admin_access.hpp"

#include <gtest/gtest.h>

namespace lanrelay::relay {
namespace {

namespace ip = boost::asio::ip;
using boost::beast::http::status;

const std::string token = "0123456789abcdef-token";

access_policy policy(std::vector<std::string> networks, std::string admin_token = token) {
  auto p = access_policy::from_config(admin_settings{std::move(admin_token), std::move(networks)});
  EXPECT_TRUE(p);
  return p ? *p : access_policy{};
}

std::optional<ip::address> addr(const char* text) { return ip::make_address(text); }

TEST(status_access, without_networks_anyone_reads) {
  const auto p = policy({});
  EXPECT_TRUE(p.check(endpoint_access::read, addr("192.0.2.7"), "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, std::nullopt, "").allowed);
}

TEST(status_access, listed_networks_limit_readers_ipv4_mapped_included) {
  const auto p = policy({"10.0.0.0/8", "127.0.0.1", "fd00::/8"});
  EXPECT_TRUE(p.check(endpoint_access::read, addr("10.20.30.40"), "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.1"), "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("::ffff:127.0.0.1"), "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("::ffff:10.1.1.1"), "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("fd12::1"), "").allowed);

  const auto outside = p.check(endpoint_access::read, addr("192.168.1.5"), "");
  EXPECT_FALSE(outside.allowed);
  EXPECT_EQ(outside.status, status::forbidden);
  EXPECT_NE(outside.message.find("read_networks"), std::string::npos);
  EXPECT_FALSE(p.check(endpoint_access::read, addr("127.0.0.2"), "").allowed);
  EXPECT_FALSE(p.check(endpoint_access::read, addr("fe80::1"), "").allowed);
  EXPECT_FALSE(p.check(endpoint_access::read, std::nullopt, "").allowed);
  // Admin needs the network too, even with the right token.
  EXPECT_FALSE(p.check(endpoint_access::admin, addr("192.168.1.5"), "Bearer " + token).allowed);
}

TEST(status_access, admin_needs_the_configured_token) {
  const auto p = policy({});
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("10.0.0.1"), "Bearer " + token).allowed);
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("10.0.0.1"), "bearer  " + token + " ").allowed);

  const std::vector<std::string> wrong{"", "Bearer", "Bearer ", "Basic " + token,
                                      "Bearer " + token + "x", "Bearer " + token.substr(1),
                                      "Bearer wrong-token-wrong-token", "Bearer" + token};
  for (const auto& bad : wrong) {
    const auto d = p.check(endpoint_access::admin, addr("10.0.0.1"), bad);
    EXPECT_FALSE(d.allowed) << bad;
    EXPECT_EQ(d.status, status::unauthorized) << bad;
    EXPECT_TRUE(d.challenge) << bad;
  }
}

TEST(status_access, without_a_token_admin_endpoints_are_refused_with_403) {
  const auto p = policy({}, "");
  EXPECT_FALSE(p.token_configured());
  const auto d = p.check(endpoint_access::admin, addr("127.0.0.1"), "Bearer anything-at-all-here");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, status::forbidden);
  EXPECT_FALSE(d.challenge);
  EXPECT_NE(d.message.find("no [admin] token is configured"), std::string::npos);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.1"), "").allowed);
  // The default policy is the same: readable, admin off.
  EXPECT_FALSE(access_policy{}.check(endpoint_access::admin, addr("127.0.0.1"), "").allowed);
}

TEST(status_access, a_bad_network_is_an_error) {
  EXPECT_FALSE(access_policy::from_config(admin_settings{"", {"10.0.0.0/40"}}));
  EXPECT_FALSE(access_policy::from_config(admin_settings{"", {"lan"}}));
}

}  // namespace
}  // namespace lanrelay::relay
