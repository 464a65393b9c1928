// access_policy: the one decision behind every monitoring and admin endpoint.

#include "lanrelay/serving/admin_access.hpp"

#include <gtest/gtest.h>

#include <functional>

namespace lanrelay::relay {
namespace {

namespace ip = boost::asio::ip;
using boost::beast::http::status;

const std::string token = "0123456789abcdef-token";
constexpr bool plain_http = false;
constexpr bool https = true;

access_policy policy(std::vector<std::string> networks, std::string admin_token = token) {
  auto p = access_policy::from_config(admin_settings{std::move(admin_token), std::move(networks)});
  EXPECT_TRUE(p);
  return p ? *p : access_policy{};
}

std::optional<ip::address> addr(const char* text) { return ip::make_address(text); }

TEST(status_access, without_networks_only_loopback_reads) {
  const auto p = policy({});
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.1"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("::1"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("::ffff:127.0.0.1"), plain_http, "").allowed);
  const auto lan = p.check(endpoint_access::read, addr("192.0.2.7"), https, "");
  EXPECT_FALSE(lan.allowed);
  EXPECT_EQ(lan.status, status::forbidden);
  EXPECT_NE(lan.message.find("read_networks"), std::string::npos);
  EXPECT_FALSE(p.check(endpoint_access::read, std::nullopt, https, "").allowed);
  EXPECT_FALSE(access_policy{}.check(endpoint_access::read, addr("10.0.0.1"), https, "").allowed);
  EXPECT_TRUE(access_policy{}.check(endpoint_access::read, addr("127.0.0.1"), plain_http, "").allowed);
}

TEST(status_access, listed_networks_add_readers_ipv4_mapped_included) {
  const auto p = policy({"10.0.0.0/8", "fd00::/8"});
  EXPECT_TRUE(p.check(endpoint_access::read, addr("10.20.30.40"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.1"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.2"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("::ffff:10.1.1.1"), plain_http, "").allowed);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("fd12::1"), plain_http, "").allowed);

  const auto outside = p.check(endpoint_access::read, addr("192.168.1.5"), plain_http, "");
  EXPECT_FALSE(outside.allowed);
  EXPECT_EQ(outside.status, status::forbidden);
  EXPECT_NE(outside.message.find("read_networks"), std::string::npos);
  EXPECT_FALSE(p.check(endpoint_access::read, addr("fe80::1"), plain_http, "").allowed);
  EXPECT_FALSE(p.check(endpoint_access::read, std::nullopt, plain_http, "").allowed);
  // Admin needs the network too, even with the right token over HTTPS.
  EXPECT_FALSE(p.check(endpoint_access::admin, addr("192.168.1.5"), https, "Bearer " + token).allowed);
}

TEST(status_access, admin_needs_https_or_loopback_before_the_token) {
  const auto p = policy({"10.0.0.0/8"});
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("10.0.0.1"), https, "Bearer " + token).allowed);
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("127.0.0.1"), plain_http, "Bearer " + token).allowed);
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("::1"), plain_http, "Bearer " + token).allowed);

  // The right token over plain HTTP from another host: refused, 403 (not 401: no challenge that
  // would invite sending it again in clear), with what to do.
  const auto clear = p.check(endpoint_access::admin, addr("10.0.0.1"), plain_http, "Bearer " + token);
  EXPECT_FALSE(clear.allowed);
  EXPECT_EQ(clear.status, status::forbidden);
  EXPECT_FALSE(clear.challenge);
  EXPECT_NE(clear.message.find("HTTPS only"), std::string::npos);
  // The same answer whatever the token: it is not even compared.
  const auto wrong = p.check(endpoint_access::admin, addr("10.0.0.1"), plain_http, "Bearer nope");
  EXPECT_EQ(wrong.status, status::forbidden);
  EXPECT_EQ(wrong.message, clear.message);
}

TEST(status_access, admin_needs_the_configured_token) {
  const auto p = policy({"10.0.0.0/8"});
  EXPECT_TRUE(p.check(endpoint_access::admin, addr("10.0.0.1"), https, "bearer  " + token + " ").allowed);

  const std::vector<std::string> wrong{"", "Bearer", "Bearer ", "Basic " + token,
                                      "Bearer " + token + "x", "Bearer " + token.substr(1),
                                      "Bearer wrong-token-wrong-token", "Bearer" + token};
  for (const auto& bad : wrong) {
    const auto d = p.check(endpoint_access::admin, addr("10.0.0.1"), https, bad);
    EXPECT_FALSE(d.allowed) << bad;
    EXPECT_EQ(d.status, status::unauthorized) << bad;
    EXPECT_TRUE(d.challenge) << bad;
  }
}

TEST(status_access, without_a_token_admin_endpoints_are_refused_with_403) {
  const auto p = policy({}, "");
  EXPECT_FALSE(p.token_configured());
  const auto d =
      p.check(endpoint_access::admin, addr("127.0.0.1"), plain_http, "Bearer anything-at-all-here");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, status::forbidden);
  EXPECT_FALSE(d.challenge);
  EXPECT_NE(d.message.find("no [admin] token is configured"), std::string::npos);
  EXPECT_TRUE(p.check(endpoint_access::read, addr("127.0.0.1"), plain_http, "").allowed);
  // The default policy is the same: loopback reads, admin off.
  EXPECT_FALSE(access_policy{}.check(endpoint_access::admin, addr("127.0.0.1"), https, "").allowed);
}

TEST(status_access, a_bad_network_is_an_error) {
  EXPECT_FALSE(access_policy::from_config(admin_settings{"", {"10.0.0.0/40"}}));
  EXPECT_FALSE(access_policy::from_config(admin_settings{"", {"lan"}}));
  EXPECT_FALSE(is_valid_network("lan"));
  EXPECT_TRUE(is_valid_network("fd00::/8"));
  EXPECT_TRUE(is_valid_network("192.0.2.1"));
}

// One decision function per request class: content for everyone, monitoring for loopback and
// read_networks, admin and mirror sync for those with the token over HTTPS or on loopback.
TEST(status_access, each_request_class_has_its_rule) {
  const auto p = policy({"10.0.0.0/8"});
  const request_origin outsider{addr("192.168.1.5"), plain_http};
  const request_origin listed_clear{addr("10.0.0.1"), plain_http};
  const request_origin listed_tls{addr("10.0.0.1"), https};
  const request_origin local{addr("::ffff:127.0.0.1"), plain_http};
  const request_origin unknown{std::nullopt, https};
  const std::string bearer = "Bearer " + token;

  EXPECT_TRUE(p.content(outsider).allowed);
  EXPECT_TRUE(p.content(unknown).allowed);

  EXPECT_FALSE(p.monitoring(outsider).allowed);
  EXPECT_TRUE(p.monitoring(listed_clear).allowed);
  EXPECT_TRUE(p.monitoring(local).allowed);
  EXPECT_FALSE(p.monitoring(unknown).allowed);

  for (const auto& decide :
       {std::function([&](const request_origin& o, std::string_view a) { return p.admin(o, a); }),
        std::function(
            [&](const request_origin& o, std::string_view a) { return p.mirror_sync(o, a); })}) {
    EXPECT_FALSE(decide(outsider, bearer).allowed);
    const auto clear = decide(listed_clear, bearer);
    EXPECT_FALSE(clear.allowed);
    EXPECT_EQ(clear.status, status::forbidden);
    EXPECT_NE(clear.message.find("HTTPS"), std::string::npos);
    EXPECT_TRUE(decide(listed_tls, bearer).allowed);
    EXPECT_TRUE(decide(local, bearer).allowed);
    const auto wrong = decide(local, "Bearer nope");
    EXPECT_EQ(wrong.status, status::unauthorized);
    EXPECT_TRUE(wrong.challenge);
    EXPECT_FALSE(decide(unknown, bearer).allowed);
  }
  // Without a token nobody changes anything, loopback included.
  EXPECT_FALSE(policy({}, "").mirror_sync(local, "Bearer ").allowed);
  EXPECT_FALSE(policy({}, "").admin(local, "").allowed);
}

}  // namespace
}  // namespace lanrelay::relay
