// The relay's side of fallback reports (docs/protocol.md, "Fallback reports"): the fallbacks an
// answered query carries are counted once per query, bounded, and exported.

#include "lanrelay/relay/discovery_responder.hpp"
#include "lanrelay/relay/monitor.hpp"
#include "lanrelay/relay/slot_pool.hpp"
#include "lanrelay/relay/stats.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace lanrelay::relay {
namespace {

namespace ip = boost::asio::ip;
using discovery::fallback_reason;

class fallback_report_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-fallback-report.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto opened = content_store::open({.dir = dir_ / "cache"});
    ASSERT_TRUE(opened);
    store_ = std::move(*opened);
    std::ofstream(dir_ / "pattern.zip") << "pattern bytes";
    ASSERT_TRUE(store_->add_file(dir_ / "pattern.zip", item_key{item_kind::pattern, "icrc", "1667900"}));
    lan_.name = "eth0";
    lan_.index = 2;
    lan_.ipv4.push_back({ip::make_network_v4("10.77.0.1/16"), ip::make_address_v4("10.77.255.255")});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  responder_core make_core(discovery::responder_role role = discovery::responder_role::relay) {
    return responder_core({.cookie = 7, .role = role, .http_port = 4127, .rate_limit = 1000},
                          *store_, [] { return std::uint16_t{10}; }, counters_.discovery);
  }

  static std::vector<std::byte> query(std::uint64_t transaction,
                                      std::vector<discovery::fallback_count> fallbacks,
                                      std::string version = "1667900") {
    discovery::query q;
    q.transaction_id = transaction;
    q.sender_cookie = 99;
    q.kind = item_kind::pattern;
    q.name = "icrc";
    q.version = std::move(version);
    q.fallbacks = std::move(fallbacks);
    return discovery::encode(q).value();
  }

  std::uint64_t count(fallback_reason r) const {
    return counters_.discovery.agent_fallbacks[static_cast<std::size_t>(r) - 1].load();
  }

  const ip::udp::endpoint agent_{ip::make_address("10.77.3.4"), 40000};
  std::filesystem::path dir_;
  std::unique_ptr<content_store> store_;
  network_interface lan_;
  relay_counters counters_;
  std::chrono::steady_clock::time_point now_{};
};

TEST_F(fallback_report_test, an_answered_query_adds_its_report_once) {
  auto core = make_core();
  const auto q = query(1, {{fallback_reason::segment_silent, 2}, {fallback_reason::holders_busy, 1}});
  ASSERT_TRUE(core.process_packet(q, agent_, &lan_, now_));
  // The agent sends each query up to three times with one transaction id: counted once.
  ASSERT_TRUE(core.process_packet(q, agent_, &lan_, now_));
  ASSERT_TRUE(core.process_packet(q, agent_, &lan_, now_));
  EXPECT_EQ(count(fallback_reason::segment_silent), 2u);
  EXPECT_EQ(count(fallback_reason::holders_busy), 1u);
  EXPECT_EQ(count(fallback_reason::nothing_found), 0u);

  // A later query of the same agent (the report was not settled yet) counts again.
  ASSERT_TRUE(core.process_packet(query(2, {{fallback_reason::segment_silent, 1}}), agent_, &lan_, now_));
  EXPECT_EQ(count(fallback_reason::segment_silent), 3u);
}

TEST_F(fallback_report_test, a_query_nobody_answers_reports_nothing) {
  // The agent keeps its counts until a relay answers; a relay that stayed silent must not count
  // them, or every silent holder on the segment would.
  auto core = make_core();
  EXPECT_FALSE(core.process_packet(query(1, {{fallback_reason::segment_silent, 5}}, "1667800"),
                                   agent_, &lan_, now_));
  EXPECT_EQ(count(fallback_reason::segment_silent), 0u);
}

TEST_F(fallback_report_test, peers_do_not_count_reports) {
  auto core = make_core(discovery::responder_role::peer);
  ASSERT_TRUE(core.process_packet(query(1, {{fallback_reason::segment_silent, 5}}), agent_, &lan_, now_));
  EXPECT_EQ(count(fallback_reason::segment_silent), 0u);
}

TEST_F(fallback_report_test, a_forged_report_is_bounded) {
  auto core = make_core();
  std::vector<discovery::fallback_count> huge;
  for (std::uint8_t code = 1; code <= discovery::fallback_reason_count; ++code) {
    huge.push_back({static_cast<fallback_reason>(code), 0xffff});
  }
  ASSERT_TRUE(core.process_packet(query(1, huge), agent_, &lan_, now_));
  for (std::uint8_t code = 1; code <= discovery::fallback_reason_count; ++code) {
    EXPECT_EQ(count(static_cast<fallback_reason>(code)), discovery::max_reported_fallbacks);
  }
}

TEST_F(fallback_report_test, the_counts_are_exported_by_reason) {
  auto core = make_core();
  ASSERT_TRUE(core.process_packet(query(1, {{fallback_reason::untrusted_offers, 4}}), agent_, &lan_, now_));
  slot_pool slots(10);
  monitor m(*store_, counters_, slots, "relay");
  const auto text = m.render_metrics();
  EXPECT_NE(text.find("lanrelay_agent_fallbacks_total{reason=\"untrusted_offers\"} 4"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lanrelay_agent_fallbacks_total{reason=\"segment_silent\"} 0"),
            std::string::npos);
  const auto json = to_json(take_snapshot(counters_, slots));
  EXPECT_NE(json.find("\"agent_fallbacks\":{\"segment_silent\":0,\"nothing_found\":0,"
                      "\"holders_busy\":0,\"holders_failed\":0,\"untrusted_offers\":4}"),
            std::string::npos)
      << json;
}

}  // namespace
}  // namespace lanrelay::relay
