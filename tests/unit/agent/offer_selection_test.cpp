#include "lanrelay/agent/offer_selection.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace lanrelay::agent {
namespace {

sha256_digest digest_of(std::uint8_t seed) {
  sha256_digest d{};
  d.fill(std::byte{seed});
  return d;
}

// An offer as `url`'s host sends it (URLs here name IPv4 hosts).
candidate make(std::string url, std::string version, std::uint16_t free_slots,
               std::uint8_t content = 1, std::uint64_t size = 100) {
  candidate c;
  const auto host = url.substr(7, url.find('/', 7) - 7);
  c.from = boost::asio::ip::udp::endpoint(
      boost::asio::ip::make_address(host.substr(0, host.find(':'))), 4126);
  c.offer.kind = item_kind::installer;
  c.offer.name = "agent-x64";
  c.offer.version = std::move(version);
  c.offer.size = size;
  c.offer.sha256 = digest_of(content);
  c.offer.url = std::move(url);
  c.offer.free_slots = free_slots;
  return c;
}

const wanted_item installer_14_0{item_kind::installer, "agent-x64", "14.0", std::nullopt};

std::optional<trusted_digest> trust_all_content_1(const discovery::offer&) {
  return trusted_digest{100, digest_of(1)};
}

TEST(offer_selection, installer_qualifies_on_major_minor_only) {
  std::mt19937_64 random(1);
  auto s = select_offers({make("http://10.0.0.1/1", "14.0.1", 1), make("http://10.0.0.2/1", "14.1.0", 1),
                          make("http://10.0.0.3/1", "13.9.9999", 1), make("http://10.0.0.4/1", "15.0", 1)},
                         installer_14_0, trust_all_content_1, random);
  EXPECT_EQ(s.ordered.size(), 3u);
  EXPECT_EQ(s.not_qualifying, 1u);
}

TEST(offer_selection, wrong_name_kind_or_sha_does_not_qualify) {
  std::mt19937_64 random(1);
  auto other_name = make("http://10.0.0.1/1", "14.0", 1);
  other_name.offer.name = "agent-x86";
  auto other_kind = make("http://10.0.0.2/1", "14.0", 1);
  other_kind.offer.kind = item_kind::file;
  wanted_item exact = installer_14_0;
  exact.sha256 = digest_of(1);
  auto s = select_offers({other_name, other_kind, make("http://10.0.0.3/1", "14.0", 1, 2),
                          make("http://10.0.0.4/1", "14.0", 1, 1)},
                         exact, trust_all_content_1, random);
  ASSERT_EQ(s.ordered.size(), 1u);
  EXPECT_EQ(s.ordered[0].offer.url, "http://10.0.0.4/1");
  EXPECT_EQ(s.not_qualifying, 3u);
}

TEST(offer_selection, offers_without_trusted_digest_are_not_used) {
  std::mt19937_64 random(1);
  const trust_lookup nothing = [](const discovery::offer&) -> std::optional<trusted_digest> {
    return std::nullopt;
  };
  auto s = select_offers({make("http://10.0.0.1/1", "14.0", 1)}, installer_14_0, nothing, random);
  EXPECT_TRUE(s.ordered.empty());
  EXPECT_EQ(s.untrusted, 1u);

  // A digest that vouches for other bytes, or another size, is no trust either.
  s = select_offers({make("http://10.0.0.1/1", "14.0", 1, 2), make("http://10.0.0.2/1", "14.0", 1, 1, 99)},
                    installer_14_0, trust_all_content_1, random);
  EXPECT_TRUE(s.ordered.empty());
  EXPECT_EQ(s.untrusted, 2u);
}

TEST(offer_selection, duplicate_urls_are_tried_once) {
  std::mt19937_64 random(1);
  auto s = select_offers({make("http://10.0.0.1/1", "14.0", 1), make("http://10.0.0.1/1", "14.0", 1)},
                         installer_14_0, trust_all_content_1, random);
  EXPECT_EQ(s.ordered.size(), 1u);
  EXPECT_EQ(s.ordered[0].digest.size, 100u);
}

TEST(offer_selection, free_slots_first) {
  std::mt19937_64 random(7);
  for (int round = 0; round < 50; ++round) {
    auto s = select_offers({make("http://10.0.0.11/1", "14.0", 0), make("http://10.0.0.12/1", "14.0", 3),
                            make("http://10.0.0.13/1", "14.0", 0), make("http://10.0.0.14/1", "14.0", 1)},
                           installer_14_0, trust_all_content_1, random);
    ASSERT_EQ(s.ordered.size(), 4u);
    EXPECT_GT(s.ordered[0].offer.free_slots, 0);
    EXPECT_GT(s.ordered[1].offer.free_slots, 0);
    EXPECT_EQ(s.ordered[2].offer.free_slots, 0);
    EXPECT_EQ(s.ordered[3].offer.free_slots, 0);
  }
}

TEST(offer_selection, first_choice_is_uniform) {
  std::mt19937_64 random(2024);
  std::map<std::string, int> first;
  constexpr int rounds = 6000;
  for (int round = 0; round < rounds; ++round) {
    auto s = select_offers({make("http://10.0.0.1/1", "14.0", 2), make("http://10.0.0.2/1", "14.0", 2),
                            make("http://10.0.0.3/1", "14.0", 2)},
                           installer_14_0, trust_all_content_1, random);
    ++first[s.ordered[0].offer.url];
  }
  ASSERT_EQ(first.size(), 3u);
  for (const auto& [url, count] : first) {
    // Expected 2000 each; 5 standard deviations (~183) is a bound a fair shuffle never misses.
    EXPECT_NEAR(count, rounds / 3, 183) << url;
  }
}

TEST(offer_selection, an_offer_must_name_its_sender) {
  std::mt19937_64 random(1);
  auto third_host = make("http://10.0.0.9:4127/1", "14.0", 1);
  third_host.from = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("10.0.0.66"), 4126);
  auto host_name = make("http://10.0.0.2/1", "14.0", 1);
  host_name.offer.url = "http://relay.corp:4127/1";  // not an address: cannot be the sender
  auto s = select_offers({third_host, host_name, make("http://10.0.0.3:4127/1", "14.0", 1)},
                         installer_14_0, trust_all_content_1, random);
  ASSERT_EQ(s.ordered.size(), 1u);
  EXPECT_EQ(s.ordered[0].offer.url, "http://10.0.0.3:4127/1");
  EXPECT_EQ(s.foreign_host, 2u);
}

// The one exception: a URL on another host that a verified catalog names, byte for byte.
TEST(offer_selection, a_url_the_catalog_names_may_name_another_host) {
  std::mt19937_64 random(1);
  const std::set<std::string, std::less<>> named_urls{"http://relay.corp:4127/1",
                                                      "http://10.0.0.9:4127/1"};
  const catalog_url_lookup named = [&](std::string_view url) { return named_urls.contains(url); };
  const auto from = [](candidate c, const char* sender) {
    c.from = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address(sender), 4126);
    return c;
  };
  auto by_name = from(make("http://10.0.0.2/1", "14.0", 1), "10.0.0.2");
  by_name.offer.url = "http://relay.corp:4127/1";
  const auto third_host = from(make("http://10.0.0.9:4127/1", "14.0", 1), "10.0.0.66");
  // Named URLs compare exactly: another port, path, query or spelling is another URL.
  const auto other_port = from(make("http://10.0.0.9:4128/1", "14.0", 1), "10.0.0.67");
  const auto other_query = from(make("http://10.0.0.9:4127/1?x", "14.0", 1), "10.0.0.68");
  const auto other_path = from(make("http://10.0.0.9:4127/1/../1", "14.0", 1), "10.0.0.69");
  const auto own = make("http://10.0.0.3:4127/1", "14.0", 1);
  const std::vector<candidate> offers{by_name, third_host, other_port, other_query, other_path, own};

  const auto without = select_offers(offers, installer_14_0, trust_all_content_1, random);
  EXPECT_EQ(without.ordered.size(), 1u);
  EXPECT_EQ(without.foreign_host, 5u);

  const auto s = select_offers(offers, installer_14_0, trust_all_content_1, random, named);
  EXPECT_EQ(s.foreign_host, 3u);
  std::map<std::string, bool> chosen;
  for (const auto& c : s.ordered) {
    chosen[c.offer.url] = c.named_by_catalog;
  }
  EXPECT_EQ(chosen, (std::map<std::string, bool>{{"http://relay.corp:4127/1", true},
                                                 {"http://10.0.0.9:4127/1", true},
                                                 {"http://10.0.0.3:4127/1", false}}));
  // Still one offer per sender, and still only offers with the trusted digest.
  auto twice = third_host;
  twice.offer.url = "http://relay.corp:4127/1";
  auto wrong_bytes = from(make("http://10.0.0.9:4127/1", "14.0", 1, 2), "10.0.0.70");
  const auto again = select_offers({third_host, twice, wrong_bytes}, installer_14_0,
                                   trust_all_content_1, random, named);
  ASSERT_EQ(again.ordered.size(), 1u);
  EXPECT_EQ(again.same_host, 1u);
  EXPECT_EQ(again.untrusted, 1u);
}

TEST(offer_selection, ipv6_senders_match_without_their_zone) {
  candidate c = make("http://10.0.0.1/1", "14.0", 1);
  c.offer.url = "http://[fe80::1]:4127/1";
  auto from = boost::asio::ip::make_address_v6("fe80::1");
  from.scope_id(3);
  c.from = boost::asio::ip::udp::endpoint(from, 4126);
  EXPECT_TRUE(url_names_sender(c));
  c.offer.url = "http://[fe80::2]:4127/1";
  EXPECT_FALSE(url_names_sender(c));
  c.offer.url = "http://10.0.0.1:4127/1";  // an IPv4 URL in an IPv6 datagram
  EXPECT_FALSE(url_names_sender(c));
}

TEST(offer_selection, one_host_with_many_urls_counts_once) {
  std::mt19937_64 random(1);
  std::vector<candidate> offers;
  for (int port = 1; port <= 8; ++port) {
    offers.push_back(make("http://10.0.0.5:" + std::to_string(8000 + port) + "/1", "14.0", 9));
  }
  offers.push_back(make("http://10.0.0.5:8001/1", "14.0", 9));  // a repeat: not another URL
  offers.push_back(make("http://10.0.0.6:4127/1", "14.0", 1));
  auto s = select_offers(offers, installer_14_0, trust_all_content_1, random);
  ASSERT_EQ(s.ordered.size(), 2u);
  EXPECT_EQ(s.same_host, 7u);
  std::set<std::string> urls;
  for (const auto& c : s.ordered) {
    urls.insert(c.offer.url);
  }
  EXPECT_EQ(urls, (std::set<std::string>{"http://10.0.0.5:8001/1", "http://10.0.0.6:4127/1"}));
}

TEST(offer_selection, first_choice_is_uniform_among_hosts_whatever_their_url_count) {
  // Host .1 answers with five URLs, .2 and .3 with one each: each host is first a third of the
  // time.
  std::mt19937_64 random(99);
  std::map<std::string, int> first;
  constexpr int rounds = 6000;
  for (int round = 0; round < rounds; ++round) {
    std::vector<candidate> offers;
    for (int port = 1; port <= 5; ++port) {
      offers.push_back(make("http://10.0.0.1:" + std::to_string(port) + "/1", "14.0", 2));
    }
    offers.push_back(make("http://10.0.0.2/1", "14.0", 2));
    offers.push_back(make("http://10.0.0.3/1", "14.0", 2));
    auto s = select_offers(offers, installer_14_0, trust_all_content_1, random);
    ++first[s.ordered[0].from.address().to_string()];
  }
  ASSERT_EQ(first.size(), 3u);
  for (const auto& [host, count] : first) {
    EXPECT_NEAR(count, rounds / 3, 183) << host;  // 5 standard deviations
  }
}

}  // namespace
}  // namespace lanrelay::agent
