#include "lanrelay/proxyhelper/responder.hpp"

#include <gtest/gtest.h>

namespace lanrelay::proxyhelper {
namespace {

namespace net = boost::asio;
namespace proxy = proxy_protocol;
using udp = net::ip::udp;
using namespace std::chrono_literals;

site_key test_key() {
  std::array<std::byte, 32> seed{};
  seed.fill(std::byte{7});
  return site_key::from_seed(seed).value();
}

network_interface segment_interface() {
  network_interface nic;
  nic.name = "eth0";
  nic.index = 2;
  nic.ipv4.push_back({net::ip::make_network_v4("10.77.0.1/16"), net::ip::make_address_v4("10.77.255.255")});
  nic.ipv6_link_local.push_back(net::ip::make_address_v6("fe80::1"));
  return nic;
}

class responder_core_test : public testing::Test {
 protected:
  responder_core make(std::uint32_t rate_limit = 20) {
    return responder_core({0xc00c1e, rate_limit, 300s}, &key_, [this] { return healthy_; },
                          counters_);
  }

  std::vector<std::byte> query_bytes(std::uint64_t txid, std::uint64_t cookie = 0xa6e47) {
    return proxy::encode(proxy::query{txid, cookie});
  }

  site_key key_ = test_key();
  proxyhelper_counters counters_;
  std::vector<proxy::proxy_entry> healthy_{{"http://10.77.0.9:3128", 10, false, {"*.corp"}},
                                           {"http://10.77.0.10:3128", 20, true, {}}};
  network_interface nic_ = segment_interface();
  udp::endpoint agent_{net::ip::make_address("10.77.0.23"), 40000};
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point wall_ = std::chrono::system_clock::now();
};

TEST_F(responder_core_test, answers_an_on_link_query_with_a_signed_answer_of_the_healthy_proxies) {
  auto core = make();
  const auto q = query_bytes(42);
  const auto reply = core.process_packet(q, agent_, &nic_, now_, wall_);
  ASSERT_TRUE(reply);
  EXPECT_LE(reply->size(), q.size());
  const auto a = proxy::decode_answer(*reply);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->proxies, healthy_);
  EXPECT_EQ(a->sender_cookie, 0xc00c1eu);
  EXPECT_TRUE(proxy::check_answer(*a, *reply, 42, {{key_.public_key()}, false}, wall_));
  EXPECT_EQ(a->expires_at, std::chrono::floor<std::chrono::seconds>(wall_ + 300s));
  EXPECT_EQ(counters_.queries, 1u);
}

TEST_F(responder_core_test, link_local_ipv6_senders_are_on_link) {
  auto core = make();
  const udp::endpoint v6(net::ip::make_address("fe80::99"), 40000);
  EXPECT_TRUE(core.process_packet(query_bytes(1), v6, &nic_, now_, wall_));
}

TEST_F(responder_core_test, stays_silent_without_a_healthy_proxy) {
  healthy_.clear();
  auto core = make();
  EXPECT_FALSE(core.process_packet(query_bytes(1), agent_, &nic_, now_, wall_));
  EXPECT_EQ(counters_.no_healthy_proxy, 1u);
}

TEST_F(responder_core_test, drops_by_reason) {
  auto core = make();
  EXPECT_FALSE(core.process_packet(query_bytes(1, 0xc00c1e), agent_, &nic_, now_, wall_));
  EXPECT_EQ(counters_.own_packets, 1u);

  const udp::endpoint far(net::ip::make_address("192.0.2.7"), 40000);
  EXPECT_FALSE(core.process_packet(query_bytes(1), far, &nic_, now_, wall_));
  EXPECT_FALSE(core.process_packet(query_bytes(1), agent_, nullptr, now_, wall_));
  const udp::endpoint port_zero(agent_.address(), 0);
  EXPECT_FALSE(core.process_packet(query_bytes(1), port_zero, &nic_, now_, wall_));
  EXPECT_EQ(counters_.off_link, 2u);
  EXPECT_EQ(counters_.bad_source, 1u);

  auto q = query_bytes(1);
  q.resize(100);  // unpadded: answering it would amplify
  EXPECT_FALSE(core.process_packet(q, agent_, &nic_, now_, wall_));
  EXPECT_EQ(counters_.malformed, 1u);
  EXPECT_EQ(counters_.answers_sent + counters_.queries, 0u);
}

TEST_F(responder_core_test, rate_limits_each_source) {
  auto core = make(5);
  int answered = 0;
  for (int i = 0; i < 30; ++i) {
    answered += core.process_packet(query_bytes(i), agent_, &nic_, now_, wall_) ? 1 : 0;
  }
  EXPECT_EQ(answered, 10);  // the burst: two seconds' worth
  EXPECT_EQ(counters_.rate_limited, 20u);
  // Another source has its own bucket; time refills the first.
  const udp::endpoint other(net::ip::make_address("10.77.0.24"), 40000);
  EXPECT_TRUE(core.process_packet(query_bytes(99), other, &nic_, now_, wall_));
  EXPECT_TRUE(core.process_packet(query_bytes(100), agent_, &nic_, now_ + 1s, wall_));
}

// docs/protocol.md, proxy responder rules: port 0, broadcast and network-address sources are
// dropped and counted as bad_source; a flood of invented link-local sources spends only the
// newcomer budget, so a known agent is still answered.
TEST_F(responder_core_test, bad_sources_are_dropped_and_a_flood_of_invented_ones_is_contained) {
  responder_core core({0xc00c1e, 20, 300s, nullptr, 50}, &key_, [this] { return healthy_; },
                      counters_);
  for (const auto& source : {udp::endpoint{net::ip::make_address("10.77.0.23"), 0},
                             udp::endpoint{net::ip::make_address("255.255.255.255"), 4129},
                             udp::endpoint{net::ip::make_address("10.77.255.255"), 4129},
                             udp::endpoint{net::ip::make_address("10.77.0.0"), 4129}}) {
    EXPECT_FALSE(core.process_packet(query_bytes(1), source, &nic_, now_, wall_)) << source;
  }
  EXPECT_EQ(counters_.bad_source, 4u);

  auto now = now_;
  ASSERT_TRUE(core.process_packet(query_bytes(2), agent_, &nic_, now, wall_));
  now += 1s;
  ASSERT_TRUE(core.process_packet(query_bytes(3), agent_, &nic_, now, wall_));
  int answered_agent = 0;
  for (std::uint32_t i = 0; i < 20'000; ++i) {
    net::ip::address_v6::bytes_type bytes{0xfe, 0x80};
    bytes[13] = static_cast<unsigned char>(i >> 16);
    bytes[14] = static_cast<unsigned char>(i >> 8);
    bytes[15] = static_cast<unsigned char>(i);
    now += 50us;
    core.process_packet(query_bytes(4), {net::ip::address_v6(bytes), 4129}, &nic_, now, wall_);
    if (i % 2'000 == 0) {
      answered_agent += core.process_packet(query_bytes(5), agent_, &nic_, now, wall_) ? 1 : 0;
    }
  }
  EXPECT_EQ(answered_agent, 10);
  EXPECT_GE(counters_.new_source_limited, 20'000u - 50u * 2);
}

TEST_F(responder_core_test, unsigned_mode_sends_answers_without_a_signature) {
  responder_core core({1, 20, 60s}, nullptr, [this] { return healthy_; }, counters_);
  const auto reply = core.process_packet(query_bytes(5), agent_, &nic_, now_, wall_);
  ASSERT_TRUE(reply);
  const auto a = proxy::decode_answer(*reply).value();
  EXPECT_FALSE(a.signature);
  EXPECT_EQ(proxy::check_answer(a, *reply, 5, {{key_.public_key()}, false}, wall_).error(),
            proxy::errc::unsigned_answer);
}

}  // namespace
}  // namespace lanrelay::proxyhelper
