// A whole segment in network namespaces: an upstream nginx, relays and peers running the real
// lanrelayd, and agents running the real `lanrelay fetch`, all on one bridge. Nothing here can
// reach the machine's own interfaces.

#include "segment_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::size_t agent_count = 12;

class discovery_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-segment")) {
      return;
    }
    write_payload(4 << 20, 7);
    lan_ = &add_segment();
  }

  const segment::host& start_upstream() {
    const auto& host = lan_->add_host("upstream");
    start_upstream_server(host);
    return host;
  }

  enum class holding { nothing, payload, corrupted_payload };

  // Starts lanrelayd on a new host; with `holding` the item is put in its cache first.
  const segment::host& start_daemon(const std::string& name, const std::string& role,
                                    holding what, const std::string& extra_config = "") {
    const auto& host = lan_->add_host(name);
    const fs::path state = state_dir(name);
    if (what != holding::nothing) {
      hold_payload(state);
      if (what == holding::corrupted_payload) {
        // Same size, other bytes: the daemon still offers the digest of the original.
        std::fstream object(state / "cache" / "objects" / payload_sha_,
                            std::ios::in | std::ios::out | std::ios::binary);
        object.seekp(1000);
        object.write("CORRUPT", 7);
      }
    }
    start_relay_daemon(host, name,
                       "[relay]\nrole = \"" + role + "\"\n[peers]\nretry_after = \"1s\"\n"
                       "[log]\nlevel = \"info\"\n" + extra_config);
    return host;
  }

  // Runs `lanrelay fetch` on every host in `agents` at once and waits for all of them.
  std::vector<fetch_run> fetch_all(const std::vector<const segment::host*>& agents,
                                   bool with_digest = true, bool as_peer = false,
                                   const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--upstream", upstream_url()};
    if (with_digest) {
      const auto digest = digest_args();
      args.insert(args.end(), digest.begin(), digest.end());
    }
    if (as_peer) {
      args.push_back("--peer");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return fetch_payload(agents, args, 60s);
  }

  segment* lan_ = nullptr;
};

TEST_F(discovery_segment, agents_get_the_item_from_the_relay_and_never_from_upstream) {
  start_upstream();
  const auto& relay = start_daemon("relay", "relay", holding::payload);
  auto agents = add_agents(*lan_, agent_count);
  lan_->shape_ports("200mbit");  // transfers overlap, so the peer cap is put to work

  const auto results = fetch_all(agents);
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << r.log;
    EXPECT_EQ(json_text(r.report, "source"), "relay") << r.log;
  }
  EXPECT_EQ(upstream_requests(), 0u);

  const auto stats = daemon_stats(relay);
  std::printf("relay stats after %zu agents: %s\n", agent_count, json::serialize(stats).c_str());
  ASSERT_TRUE(stats.contains("peak_active_transfers")) << json::serialize(stats);
  EXPECT_LE(stats.at("peak_active_transfers").to_number<std::uint64_t>(), 10u);
  const auto& discovery = stats.at("discovery").as_object();
  EXPECT_GE(discovery.at("offers_sent").to_number<std::uint64_t>(), agent_count);
  EXPECT_EQ(discovery.at("malformed").to_number<std::uint64_t>(), 0u);
  if (stats.at("refused_busy").to_number<std::uint64_t>() > 0) {
    EXPECT_EQ(stats.at("peak_active_transfers").to_number<std::uint64_t>(), 10u);
  }
}

TEST_F(discovery_segment, first_choices_spread_across_holders) {
  start_upstream();
  std::vector<std::string> holders;
  for (int i = 0; i < 3; ++i) {
    holders.push_back(start_daemon("holder" + std::to_string(i), "relay", holding::payload).address);
  }
  const auto results = fetch_all(add_agents(*lan_, agent_count));
  std::map<std::string, int> first_choice;
  for (const auto& r : results) {
    ASSERT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
    const auto& attempts = r.report.at("attempts").as_array();
    ASSERT_FALSE(attempts.empty()) << r.log;
    const std::string url(attempts[0].as_object().at("url").as_string());
    for (const auto& h : holders) {
      if (url.find("//" + h + ":") != std::string::npos) {
        ++first_choice[h];
      }
    }
  }
  EXPECT_EQ(upstream_requests(), 0u);
  // All twelve picking the same holder of three has probability 3 / 3^12 (about 6e-6).
  EXPECT_GE(first_choice.size(), 2u);
}

TEST_F(discovery_segment, without_broadcast_every_agent_falls_back_to_upstream_quietly) {
  start_upstream();
  start_daemon("relay", "relay", holding::payload);
  auto agents = add_agents(*lan_, agent_count);
  lan_->block_broadcast();

  const auto results = fetch_all(agents);
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
    EXPECT_EQ(json_text(r.report, "source"), "upstream");
    EXPECT_EQ(json_text(r.report, "fallback_reason"), "no offers");
  }
  EXPECT_EQ(upstream_requests(), agent_count);

  // The silence is remembered: the next fetch does not wait for the segment again.
  const auto again = fetch_all({agents[0]});
  EXPECT_EQ(again[0].exit_status, 0);
  EXPECT_NE(json_text(again[0].report, "fallback_reason").find("gave no answers recently"),
            std::string::npos)
      << again[0].log;
}

TEST_F(discovery_segment, ipv6_multicast_alone_finds_the_relay) {
  start_upstream();
  const auto& relay = start_daemon("relay", "relay", holding::payload);
  auto agents = add_agents(*lan_, 2);
  lan_->block_broadcast(segment::family::ipv4);

  const auto results = fetch_all(agents);
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
    EXPECT_EQ(json_text(r.report, "source"), "relay") << r.log;
  }
  EXPECT_EQ(upstream_requests(), 0u);
  EXPECT_NE(read_file(daemon_log(relay.name)).find("event=discovery_joined group=ff12::4126 interface=eth0"),
            std::string::npos);
}

TEST_F(discovery_segment, an_interface_that_appears_later_is_served_without_restart) {
  start_upstream();
  const auto& relay = start_daemon("relay", "relay", holding::payload,
                                   "[discovery]\ninterface_rescan = \"200ms\"\n");
  // A second segment reaches the running relay through a new interface, by IPv6 multicast only:
  // answering there needs the relay to notice the interface and join the group on it.
  segment second(79);
  second.attach(relay);
  second.block_broadcast(segment::family::ipv4);
  const auto& late = second.add_host("late-agent");
  const fs::path log = daemon_log(relay.name);
  ASSERT_TRUE(eventually(60s, [&] {
    return read_file(log).find("event=discovery_joined group=ff12::4126 interface=seg79") != std::string::npos;
  })) << read_file(log);

  const auto results = fetch_all({&late});
  EXPECT_EQ(results[0].exit_status, 0) << results[0].log;
  EXPECT_TRUE(results[0].bytes_ok);
  EXPECT_EQ(json_text(results[0].report, "source"), "relay") << results[0].log;
}

TEST_F(discovery_segment, corrupted_bytes_from_a_peer_are_rejected) {
  start_upstream();
  start_daemon("liar", "peer", holding::corrupted_payload);
  const auto results = fetch_all(add_agents(*lan_, 2));
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << "corrupted bytes were kept";
    EXPECT_EQ(json_text(r.report, "source"), "upstream");
    const auto& attempts = r.report.at("attempts").as_array();
    ASSERT_GE(attempts.size(), 2u) << r.log;
    EXPECT_NE(std::string(attempts[0].as_object().at("outcome").as_string()).find("digest mismatch"),
              std::string::npos)
        << r.log;
  }
  EXPECT_EQ(upstream_requests(), 2u);
}

TEST_F(discovery_segment, offers_without_a_trusted_digest_are_not_used) {
  start_upstream();
  start_daemon("relay", "relay", holding::payload);
  const auto results = fetch_all(add_agents(*lan_, 1), /*with_digest=*/false);
  ASSERT_EQ(results[0].exit_status, 0) << results[0].log;
  EXPECT_TRUE(results[0].bytes_ok);
  EXPECT_EQ(json_text(results[0].report, "source"), "upstream");
  EXPECT_EQ(json_text(results[0].report, "fallback_reason"), "no trusted digest for the offered content");
  EXPECT_EQ(upstream_requests(), 1u);
}

TEST_F(discovery_segment, a_catalog_signed_with_the_pinned_key_makes_offers_trusted) {
  start_upstream();
  const std::string site_key = make_site_key("relay");
  ASSERT_EQ(site_key.rfind("lanrelay-ed25519:", 0), 0u) << site_key;
  start_daemon("relay", "relay", holding::payload);
  auto agents = add_agents(*lan_, 2);

  // No digest from the caller: the relay's signed catalog vouches for the bytes.
  auto trusted = fetch_all({agents[0]}, /*with_digest=*/false, false, {"--site-key", site_key});
  ASSERT_EQ(trusted[0].exit_status, 0) << trusted[0].log;
  EXPECT_TRUE(trusted[0].bytes_ok);
  EXPECT_EQ(json_text(trusted[0].report, "source"), "relay") << trusted[0].log;
  EXPECT_EQ(upstream_requests(), 0u);

  // Another key pinned: the catalog is not believed, the offers are not used.
  const std::string other_key = make_site_key("elsewhere");
  auto untrusted = fetch_all({agents[1]}, /*with_digest=*/false, false, {"--site-key", other_key});
  ASSERT_EQ(untrusted[0].exit_status, 0) << untrusted[0].log;
  EXPECT_TRUE(untrusted[0].bytes_ok);
  EXPECT_EQ(json_text(untrusted[0].report, "source"), "upstream") << untrusted[0].log;
  EXPECT_EQ(upstream_requests(), 1u);
}

TEST_F(discovery_segment, peers_serve_what_they_fetched) {
  start_upstream();
  const auto& relay = start_daemon("relay", "relay", holding::payload);
  // The first agent runs as a peer: after its fetch, its daemon offers the item too.
  const auto& peer = start_daemon("peer0", "peer", holding::nothing);
  auto first = fetch_all({&peer}, true, /*as_peer=*/true);
  ASSERT_EQ(first[0].exit_status, 0) << first[0].log;

  auto agents = add_agents(*lan_, 6);

  // Both now answer a query: the relay and the peer that fetched from it.
  const fs::path listing = work_ / "discover.out";
  process discover({LANRELAY_CLI_PATH, "discover", "--kind", "file", "--name", "payload",
                    "--version", "1", "--json", "--window", "300ms"},
                   process::options{.netns = agents[0]->netns, .output = listing});
  ASSERT_TRUE(discover.wait_for(10s));
  boost::system::error_code ec;
  const auto offers = json::parse(read_file(listing), ec);
  ASSERT_FALSE(ec) << read_file(listing);
  std::set<std::string> roles;
  for (const auto& o : offers.as_array()) {
    roles.insert(std::string(o.as_object().at("role").as_string()));
  }
  EXPECT_EQ(roles, (std::set<std::string>{"relay", "peer"})) << read_file(listing);

  const auto results = fetch_all(agents);
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
  }
  EXPECT_EQ(upstream_requests(), 0u);
  const auto relay_served = daemon_stats(relay).at("transfers_completed").to_number<std::uint64_t>();
  const auto peer_served = daemon_stats(peer).at("transfers_completed").to_number<std::uint64_t>();
  EXPECT_EQ(relay_served + peer_served, 7u);
}

}  // namespace
}  // namespace lanrelay::test
