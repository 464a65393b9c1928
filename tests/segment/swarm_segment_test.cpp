// Swarming on a real segment (issue 16): twelve agents run as peers (lanrelayd with role "peer",
// `lanrelay fetch --peer`) and fetch one item with a piece list at once, taking pieces from the
// relay and from each other while they download. One more peer holds the item with every piece
// corrupted. Every agent must end with the genuine bytes, never ask the upstream, and ask the
// corrupt peer for at most one piece (dropped after its first bad one). Not timed: every wait is
// a hang guard on a process exit.

#include "segment_fixture.hpp"

#include "lanrelay/content/piece_list.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Lines of `log` that contain both `a` and `b`.
std::size_t lines_with(const std::string& log, std::string_view a, std::string_view b) {
  std::size_t n = 0;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

class swarm_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-swarm")) {
      return;
    }
    write_payload((6 << 20) + 777, 16);  // six pieces and a bit at the default piece size
    lan_ = &add_segment(94);
  }

  // lanrelayd on `host` as host.name; `holds`: the payload is in its store.
  void start_daemon(const segment::host& host, const std::string& role, bool holds,
                    const std::string& level = "info") {
    if (holds) {
      hold_payload(state_dir(host.name));
    }
    start_relay_daemon(host, host.name,
                       "[relay]\nrole = \"" + role + "\"\n[peers]\nretry_after = \"1s\"\n"
                       "[log]\nlevel = \"" + level + "\"\n");
  }

  segment* lan_ = nullptr;
};

TEST_F(swarm_segment, twelve_peers_swarm_an_item_and_skip_the_corrupt_peer_after_its_first_bad_piece) {
  ASSERT_NO_FATAL_FAILURE(start_upstream_server(lan_->add_host("upstream")));

  const auto& relay = lan_->add_host("relay");
  const std::string site_key = make_site_key(relay.name);
  ASSERT_FALSE(site_key.empty());
  start_daemon(relay, "relay", true);
  const std::string list = http_get_in_netns(relay.netns, relay.address, 4127,
                                             "/-/pieces/" + payload_sha_, 10s);
  const auto pieces = parse_piece_list(std::as_bytes(std::span(list)));
  ASSERT_TRUE(pieces) << "the relay serves no piece list";
  ASSERT_GT(pieces->pieces.size(), 4u);

  // The corrupt peer: the genuine item in its store, then one byte of every piece flipped in
  // the object file (same size, so the store keeps it).
  const auto& rogue = lan_->add_host("rogue");
  {
    const fs::path state = state_dir(rogue.name);
    ASSERT_NO_FATAL_FAILURE(hold_payload(state));
    std::fstream object(state / "cache" / "objects" / payload_sha_,
                        std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(object);
    for (std::size_t i = 0; i < pieces->pieces.size(); ++i) {
      const auto at = static_cast<std::streamoff>(pieces->piece_offset(i) + 100);
      object.seekg(at);
      const char c = static_cast<char>(object.get());
      object.seekp(at);
      object.put(static_cast<char>(c ^ 0x5a));
    }
  }
  start_daemon(rogue, "peer", false, "debug");

  constexpr int agents = 12;
  std::vector<const segment::host*> hosts;
  for (int i = 0; i < agents; ++i) {
    hosts.push_back(&lan_->add_host("agent" + std::to_string(i)));
    start_daemon(*hosts.back(), "peer", false);
  }

  // Each agent's fetch uses its daemon's state directory: what it fetched, its daemon serves.
  const auto runs = fetch_payload(hosts,
                                  {"--upstream", upstream_url(), "--site-key", site_key, "--peer",
                                   "--busy-patience", "120s", "--deadline", "300s"},
                                  300s);
  std::uint64_t peer_bytes = 0;
  std::uint64_t relay_bytes = 0;
  for (int i = 0; i < agents; ++i) {
    const auto& log = runs[i].log;
    ASSERT_EQ(runs[i].exit_status, 0) << hosts[i]->name << "\n" << log;
    EXPECT_TRUE(runs[i].bytes_ok) << hosts[i]->name;
    const auto& report = runs[i].report;
    ASSERT_FALSE(report.empty()) << log;
    EXPECT_NE(report.at("source").as_string(), "upstream") << log;
    EXPECT_TRUE(report.at("verified").as_bool());
    peer_bytes += report.at("peer_bytes").to_number<std::uint64_t>();
    relay_bytes += report.at("relay_bytes").to_number<std::uint64_t>();
    // Swarmed: the report names the swarm's pieces.
    EXPECT_NE(log.find("\"url\":\"swarm\""), std::string::npos) << log;
  }
  EXPECT_EQ(peer_bytes + relay_bytes, agents * payload_size_);
  EXPECT_EQ(upstream_requests("payload"), 0u);

  // Each agent took at most one piece from the corrupt peer: the first bad one dropped it (on
  // every address it answers from: one holder per responder). The corrupt peer's own log counts
  // every piece it sent, whoever asked (over IPv4 or IPv6).
  const std::string rogue_log = read_file(daemon_log(rogue.name));
  std::size_t bad_pieces = 0;
  for (int i = 0; i < agents; ++i) {
    const auto n = lines_with(runs[i].log, "event=bad_piece", "url=http://");
    EXPECT_LE(n, 1u) << hosts[i]->name << " asked the corrupt peer again\n" << runs[i].log;
    bad_pieces += n;
  }
  const std::size_t rogue_transfers = lines_with(rogue_log, "event=transfer_", "item=/cache/file/payload/1");
  EXPECT_LE(rogue_transfers, static_cast<std::size_t>(agents)) << rogue_log;
  EXPECT_GE(rogue_transfers, bad_pieces) << rogue_log;
  // The corrupt peer was a holder like any other: some agents asked it before they knew.
  EXPECT_GT(bad_pieces, 0u) << rogue_log;
}

}  // namespace
}  // namespace lanrelay::test
