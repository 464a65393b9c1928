#include "lanrelay/relay/discovery_responder.hpp"

#include "lanrelay/content/activeupdate_index.hpp"
#include "lanrelay/relay/mirror_service.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <fstream>

namespace lanrelay::relay {
namespace {

namespace ip = boost::asio::ip;
using namespace std::chrono_literals;

class responder_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-responder.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto opened = content_store::open({.dir = dir_ / "cache"});
    ASSERT_TRUE(opened);
    store_ = std::move(*opened);
    add("installer-14.1.bin", item_kind::installer, "agent-x64", "14.1.2000", "new agent");
    add("pattern.zip", item_kind::pattern, "icrc", "1667900", "pattern bytes");

    lan_.name = "eth0";
    lan_.index = 2;
    lan_.ipv4.push_back({ip::make_network_v4("10.77.0.1/16"), ip::make_address_v4("10.77.255.255")});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void add(const std::string& file, item_kind kind, const std::string& name,
           const std::string& version, const std::string& content) {
    std::ofstream(dir_ / file) << content;
    auto added = store_->add_file(dir_ / file, item_key{kind, name, version});
    ASSERT_TRUE(added) << added.error().message();
  }

  responder_core make_core(std::uint32_t rate_limit = 20) {
    return responder_core({.cookie = 7, .role = discovery::responder_role::relay,
                           .http_port = 4127, .rate_limit = rate_limit},
                          *store_, [this] { return free_slots_; }, counters_);
  }

  static std::vector<std::byte> query_for(item_kind kind, std::string name, std::string version,
                                          std::uint64_t cookie = 99) {
    discovery::query q;
    q.transaction_id = 1234;
    q.sender_cookie = cookie;
    q.kind = kind;
    q.name = std::move(name);
    q.version = std::move(version);
    return discovery::encode(q).value();
  }

  const ip::udp::endpoint agent_{ip::make_address("10.77.3.4"), 40000};
  std::filesystem::path dir_;
  std::unique_ptr<content_store> store_;
  network_interface lan_;
  responder_counters counters_;
  std::uint16_t free_slots_ = 10;
  std::chrono::steady_clock::time_point now_{};
};

TEST_F(responder_test, answers_an_installer_query_by_major_minor) {
  auto core = make_core();
  const auto q = query_for(item_kind::installer, "agent-x64", "14.0");
  const auto reply = core.process_packet(q, agent_, &lan_, now_);
  ASSERT_TRUE(reply);
  EXPECT_LE(reply->size(), q.size());
  const auto o = discovery::decode_offer(*reply).value();
  EXPECT_EQ(o.transaction_id, 1234u);
  EXPECT_EQ(o.sender_cookie, 7u);
  EXPECT_EQ(o.version, "14.1.2000");
  EXPECT_EQ(o.size, std::string("new agent").size());
  EXPECT_EQ(o.url, "http://10.77.0.1:4127/cache/installer/agent-x64/14.1.2000");
  EXPECT_EQ(o.free_slots, 10);
  EXPECT_EQ(counters_.queries, 1u);

  EXPECT_FALSE(core.process_packet(query_for(item_kind::installer, "agent-x64", "14.2"), agent_,
                                   &lan_, now_));
  EXPECT_FALSE(core.process_packet(query_for(item_kind::installer, "agent-x86", "14.0"), agent_,
                                   &lan_, now_));
  EXPECT_EQ(counters_.not_held, 2u);
}

TEST_F(responder_test, patterns_need_the_exact_version) {
  auto core = make_core();
  EXPECT_TRUE(core.process_packet(query_for(item_kind::pattern, "icrc", "16.679.00"), agent_, &lan_, now_));
  EXPECT_FALSE(core.process_packet(query_for(item_kind::pattern, "icrc", "1667800"), agent_, &lan_, now_));
}

TEST_F(responder_test, the_url_names_the_address_the_offer_is_sent_from) {
  // Agents use an offer only when its URL host is the datagram's source: a link-local IPv6
  // query is answered from (and with) our link-local address, without the zone.
  auto link_local = ip::make_address_v6("fe80::1");
  link_local.scope_id(2);
  lan_.ipv6_link_local.push_back(link_local);
  auto core = make_core();
  auto sender = ip::make_address_v6("fe80::99");
  sender.scope_id(2);
  const auto reply = core.process_packet(query_for(item_kind::pattern, "icrc", "1667900"),
                                         ip::udp::endpoint(sender, 40000), &lan_, now_);
  ASSERT_TRUE(reply);
  EXPECT_EQ(discovery::decode_offer(*reply).value().url, "http://[fe80::1]:4127/cache/pattern/icrc/1667900");
  // An IPv4 query still gets the IPv4 address on the sender's subnet.
  const auto v4 = core.process_packet(query_for(item_kind::pattern, "icrc", "1667900"), agent_, &lan_, now_);
  ASSERT_TRUE(v4);
  EXPECT_EQ(discovery::decode_offer(*v4).value().url, "http://10.77.0.1:4127/cache/pattern/icrc/1667900");
}

TEST_F(responder_test, an_ipv6_query_gets_a_routable_address_when_the_interface_has_one) {
  // Every address of the interface, as list_interfaces() reports them.
  auto link_local = ip::make_address_v6("fe80::1");
  link_local.scope_id(2);
  lan_.ipv6.push_back({ip::network_v6(link_local, 64)});
  lan_.ipv6_link_local.push_back(link_local);
  lan_.ipv6.push_back({ip::make_network_v6("2001:db8:77::1/64")});
  lan_.ipv6.push_back({ip::make_network_v6("fd00:77::1/64")});
  auto core = make_core();
  const auto q = query_for(item_kind::pattern, "icrc", "1667900");
  // From a link-local source: the first routable address (sent from it, answer_source).
  auto sender = ip::make_address_v6("fe80::99");
  sender.scope_id(2);
  const auto from_link_local = core.process_packet(q, ip::udp::endpoint(sender, 40000), &lan_, now_);
  ASSERT_TRUE(from_link_local);
  EXPECT_EQ(discovery::decode_offer(*from_link_local).value().url,
            "http://[2001:db8:77::1]:4127/cache/pattern/icrc/1667900");
  EXPECT_EQ(answer_source(&lan_, sender).to_string(), "2001:db8:77::1");
  // From a ULA source: the address on the querier's prefix.
  const auto ula = ip::make_address("fd00:77::99");
  const auto from_ula = core.process_packet(q, ip::udp::endpoint(ula, 40000), &lan_, now_);
  ASSERT_TRUE(from_ula);
  EXPECT_EQ(discovery::decode_offer(*from_ula).value().url,
            "http://[fd00:77::1]:4127/cache/pattern/icrc/1667900");
  // An IPv4 query is answered as before, and from the address the kernel chooses.
  const auto v4 = core.process_packet(q, agent_, &lan_, now_);
  ASSERT_TRUE(v4);
  EXPECT_EQ(discovery::decode_offer(*v4).value().url, "http://10.77.0.1:4127/cache/pattern/icrc/1667900");
  EXPECT_TRUE(answer_source(&lan_, agent_.address()).is_unspecified());
}

TEST_F(responder_test, a_query_with_a_sha256_gets_only_those_bytes) {
  auto core = make_core();
  discovery::query q;
  q.transaction_id = 5;
  q.sender_cookie = 99;
  q.kind = item_kind::installer;
  q.name = "agent-x64";
  q.version = "14.0";
  q.sha256 = sha256_of(std::as_bytes(std::span(std::string_view("other bytes"))));
  EXPECT_FALSE(core.process_packet(discovery::encode(q).value(), agent_, &lan_, now_));
  q.sha256 = sha256_of(std::as_bytes(std::span(std::string_view("new agent"))));
  EXPECT_TRUE(core.process_packet(discovery::encode(q).value(), agent_, &lan_, now_));
}

TEST_F(responder_test, busy_parent_still_answers_with_zero_free_slots) {
  auto core = make_core();
  free_slots_ = 0;
  const auto reply = core.process_packet(query_for(item_kind::installer, "agent-x64", "14.0"),
                                         agent_, &lan_, now_);
  ASSERT_TRUE(reply);
  EXPECT_EQ(discovery::decode_offer(*reply)->free_slots, 0);
}

TEST_F(responder_test, own_off_link_and_malformed_packets_are_dropped_and_counted) {
  auto core = make_core();
  EXPECT_FALSE(core.process_packet(query_for(item_kind::installer, "agent-x64", "14.0", 7), agent_,
                                   &lan_, now_));
  EXPECT_EQ(counters_.own_packets, 1u);

  const ip::udp::endpoint stranger{ip::make_address("192.168.5.5"), 4126};
  EXPECT_FALSE(core.process_packet(query_for(item_kind::installer, "agent-x64", "14.0"), stranger,
                                   &lan_, now_));
  EXPECT_FALSE(core.process_packet(query_for(item_kind::installer, "agent-x64", "14.0"), agent_,
                                   nullptr, now_));
  EXPECT_EQ(counters_.off_link, 2u);

  auto q = query_for(item_kind::installer, "agent-x64", "14.0");
  q.resize(100);  // unpadded: could make us an amplifier
  EXPECT_FALSE(core.process_packet(q, agent_, &lan_, now_));
  q[0] = std::byte{'X'};
  EXPECT_FALSE(core.process_packet(q, agent_, &lan_, now_));
  EXPECT_EQ(counters_.malformed, 2u);
  EXPECT_EQ(counters_.queries, 0u);
}

TEST_F(responder_test, rate_limit_per_source) {
  auto core = make_core(5);  // burst of 10, then 5 per second
  const auto q = query_for(item_kind::installer, "agent-x64", "14.0");
  int answered = 0;
  for (int i = 0; i < 30; ++i) {
    answered += core.process_packet(q, agent_, &lan_, now_) ? 1 : 0;
  }
  EXPECT_EQ(answered, 10);
  EXPECT_EQ(counters_.rate_limited, 20u);
  // Another sender is not affected, and the first recovers with time.
  const ip::udp::endpoint neighbour{ip::make_address("10.77.3.5"), 40000};
  EXPECT_TRUE(core.process_packet(q, neighbour, &lan_, now_));
  EXPECT_TRUE(core.process_packet(q, agent_, &lan_, now_ + 1s));
}

// docs/protocol.md, responder rule 1: no single host sends from port 0, a broadcast address or a
// subnet's network address; answering would reflect an offer to a whole subnet or to nobody.
TEST_F(responder_test, port_zero_broadcast_and_network_sources_are_dropped_and_counted) {
  auto core = make_core();
  const auto q = query_for(item_kind::installer, "agent-x64", "14.0");
  for (const auto& source : {ip::udp::endpoint{ip::make_address("10.77.3.4"), 0},
                             ip::udp::endpoint{ip::make_address("255.255.255.255"), 4126},
                             ip::udp::endpoint{ip::make_address("10.77.255.255"), 4126},
                             ip::udp::endpoint{ip::make_address("10.77.0.0"), 4126},
                             ip::udp::endpoint{ip::make_address("::ffff:10.77.255.255"), 4126},
                             ip::udp::endpoint{ip::make_address("fe80::1"), 0},
                             ip::udp::endpoint{ip::make_address("ff02::1"), 4126}}) {
    EXPECT_FALSE(core.process_packet(q, source, &lan_, now_)) << source;
  }
  EXPECT_EQ(counters_.bad_source, 7u);
  EXPECT_EQ(counters_.queries, 0u);
  EXPECT_TRUE(core.process_packet(q, agent_, &lan_, now_));
}

// A flood of invented link-local sources (any fe80:: address counts as on-link) spends the
// newcomer budget of IPv6 on that interface: it is dropped and counted, while a known agent, and
// a new IPv4 agent, are still answered.
TEST_F(responder_test, invented_link_local_sources_cannot_crowd_out_other_senders) {
  auto core = responder_core({.cookie = 7, .role = discovery::responder_role::relay,
                              .http_port = 4127, .rate_limit = 20, .new_source_rate = 50},
                             *store_, [this] { return free_slots_; }, counters_);
  lan_.ipv6_link_local.push_back(ip::make_address_v6("fe80::99%2"));
  const auto q = query_for(item_kind::installer, "agent-x64", "14.0");
  const ip::udp::endpoint known{ip::make_address("fe80::1:2:3:4"), 40000};
  auto now = now_ + 1h;
  ASSERT_TRUE(core.process_packet(q, known, &lan_, now));
  now += 1s;
  ASSERT_TRUE(core.process_packet(q, known, &lan_, now));

  int answered_known = 0;
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    ip::address_v6::bytes_type bytes{0xfe, 0x80};
    bytes[12] = static_cast<unsigned char>(i >> 24);
    bytes[13] = static_cast<unsigned char>(i >> 16);
    bytes[14] = static_cast<unsigned char>(i >> 8);
    bytes[15] = static_cast<unsigned char>(i);
    bytes[11] = 0xee;
    now += 10us;  // 100,000 per second for one second
    core.process_packet(q, {ip::address_v6(bytes), 40000}, &lan_, now);
    if (i % 10'000 == 0) {
      answered_known += core.process_packet(q, known, &lan_, now) ? 1 : 0;
    }
  }
  EXPECT_EQ(answered_known, 10);
  EXPECT_GE(counters_.new_source_limited, 100'000u - 50u * 3);
  EXPECT_TRUE(core.process_packet(q, agent_, &lan_, now));  // a new IPv4 sender
}

// A mirrored ActiveUpdate file is offered under its segment name, with the /activeupdate/ URL.
TEST_F(responder_test, offers_mirrored_activeupdate_files) {
  const std::string path = "pattern/lpt$vpn.679";
  const std::string bytes = "mirrored pattern bytes";
  const auto tree = dir_ / "mirror" / "vendor" / "tree";
  std::filesystem::create_directories(tree / "pattern");
  std::ofstream(tree / path) << bytes;
  std::ofstream(tree / "server.ini") << "[PATTERN]\r\nP.4=" << path << ",1667900," << bytes.size() << "\r\n";

  relay_config config;
  config.state_dir = dir_;
  mirror_source_settings source;
  source.name = "vendor";
  source.url = "http://127.0.0.1:9/activeupdate/";  // never reached: the first sync waits 1h
  source.jitter = std::chrono::milliseconds{3'600'000};
  config.mirror.sources.push_back(source);
  std::filesystem::create_directories(dir_ / "mirror" / "vendor");
  // A recent attempt in state.json puts the first sync an interval away.
  std::ofstream(dir_ / "mirror" / "vendor" / "state.json")
      << R"({"format":1,"generation":1,"last_attempt":)"
      << std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count()
      << "}";
  boost::asio::io_context ioc;
  mirror_service mirrors(ioc, config, "http://relay:4127");
  mirrors.start();
  for (int i = 0; i < 6000 && mirrors.items().empty(); ++i) {  // up to 60 s: a hang guard
    ioc.run_for(10ms);
  }
  ASSERT_EQ(mirrors.items().size(), 1u);

  responder_core core({.cookie = 7, .role = discovery::responder_role::relay, .http_port = 4127,
                       .rate_limit = 20},
                      *store_, [this] { return free_slots_; }, counters_, &mirrors);
  const auto name = activeupdate::segment_item_name(path).value();
  const auto reply = core.process_packet(query_for(item_kind::file, name, std::to_string(bytes.size())),
                                         agent_, &lan_, now_);
  ASSERT_TRUE(reply);
  const auto o = discovery::decode_offer(*reply).value();
  EXPECT_EQ(o.name, name);
  EXPECT_EQ(o.size, bytes.size());
  EXPECT_EQ(o.sha256, sha256_of(std::as_bytes(std::span(std::string_view(bytes)))));
  EXPECT_EQ(o.url, "http://10.77.0.1:4127/activeupdate/vendor/pattern/lpt$vpn.679");
  // Another size is another file.
  EXPECT_FALSE(core.process_packet(query_for(item_kind::file, name, "1"), agent_, &lan_, now_));
  mirrors.stop();
  ioc.run_for(100ms);
}

}  // namespace
}  // namespace lanrelay::relay

namespace lanrelay::relay {
namespace {

// Issue 14: agents one router away that found the relay by DNS-SD or an address plan.
class unicast_responder_test : public responder_test {
 protected:
  responder_core make_unicast_core(std::uint32_t rate_limit = 20) {
    return responder_core({.cookie = 7, .role = discovery::responder_role::relay,
                           .http_port = 4127, .rate_limit = rate_limit,
                           .unicast_networks = network_list::parse({"10.78.0.0/16"}).value()},
                          *store_, [this] { return free_slots_; }, counters_);
  }
  const ip::udp::endpoint routed_{ip::make_address("10.78.5.6"), 40000};
  const ip::address arrived_at_ = ip::make_address("10.77.0.1");
};

TEST_F(unicast_responder_test, a_routed_sender_in_the_unicast_networks_is_answered) {
  // A second address on the interface: the URL must name the one the query was sent to.
  lan_.ipv4.insert(lan_.ipv4.begin(),
                   {ip::make_network_v4("10.70.0.1/16"), ip::make_address_v4("10.70.255.255")});
  auto core = make_unicast_core();
  const auto q = query_for(item_kind::pattern, "icrc", "1667900");
  const auto reply = core.process_packet(q, routed_, &lan_, arrived_at_, now_);
  ASSERT_TRUE(reply);
  EXPECT_LE(reply->size(), q.size());
  EXPECT_EQ(discovery::decode_offer(*reply).value().url,
            "http://10.77.0.1:4127/cache/pattern/icrc/1667900");
  EXPECT_EQ(responder_core::reply_source(routed_, &lan_, arrived_at_), arrived_at_);
  // An on-link sender keeps the kernel's choice of source address.
  EXPECT_TRUE(responder_core::reply_source(agent_, &lan_, arrived_at_).is_unspecified());
}

TEST_F(unicast_responder_test, a_routed_sender_outside_the_unicast_networks_is_dropped) {
  auto core = make_unicast_core();
  const ip::udp::endpoint stranger{ip::make_address("10.79.5.6"), 40000};
  EXPECT_FALSE(core.process_packet(query_for(item_kind::pattern, "icrc", "1667900"), stranger,
                                   &lan_, arrived_at_, now_));
  EXPECT_EQ(counters_.off_link, 1u);
  // Without the setting, the routed sender is dropped as before.
  auto plain = make_core();
  EXPECT_FALSE(plain.process_packet(query_for(item_kind::pattern, "icrc", "1667900"), routed_,
                                    &lan_, arrived_at_, now_));
  EXPECT_EQ(counters_.off_link, 2u);
}

TEST_F(unicast_responder_test, rate_limits_apply_to_routed_senders) {
  auto core = make_unicast_core(5);  // burst of 10
  const auto q = query_for(item_kind::pattern, "icrc", "1667900");
  int answered = 0;
  for (int i = 0; i < 30; ++i) {
    answered += core.process_packet(q, routed_, &lan_, arrived_at_, now_) ? 1 : 0;
  }
  EXPECT_EQ(answered, 10);
  EXPECT_EQ(counters_.rate_limited, 20u);
}

}  // namespace
}  // namespace lanrelay::relay
