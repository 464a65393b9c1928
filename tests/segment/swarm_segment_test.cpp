// Swarming on a real segment (issue 16): twelve agents run as peers (lanrelayd with role "peer",
// `lanrelay fetch --peer`) and fetch one item with a piece list at once, taking pieces from the
// relay and from each other while they download. One more peer holds the item with every piece
// corrupted. Every agent must end with the genuine bytes, never ask the upstream, and ask the
// corrupt peer for at most one piece (dropped after its first bad one). Not timed: every wait is
// a hang guard on a process exit.

#include "process.hpp"
#include "segment.hpp"
#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/piece_list.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <deque>
#include <fstream>
#include <map>
#include <random>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
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

class swarm_segment : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported() || std::system("command -v nginx >/dev/null") != 0) {
      GTEST_SKIP() << "segment tests need root, iproute2, nftables and nginx";
    }
    work_ = make_work_dir("lanrelay-swarm");
    ASSERT_FALSE(work_.empty());
    fs::create_directories(work_ / "www");
    payload_ = work_ / "www" / "payload.bin";
    // Six pieces and a bit at the default piece size.
    std::mt19937_64 random(16);
    std::string bytes((6 << 20) + 777, '\0');
    for (auto& c : bytes) {
      c = static_cast<char>(random());
    }
    std::ofstream(payload_, std::ios::binary) << bytes;
    payload_sha_ = sha256_of_file(payload_).value();
    lan_.emplace(static_cast<std::uint8_t>(94));
  }

  void TearDown() override {
    processes_.clear();
    lan_.reset();
    if (!work_.empty()) {
      fs::remove_all(work_);
    }
  }

  // lanrelayd on `host` with its state in <work>/<name>; `holds`: the payload is in its store.
  fs::path start_daemon(const segment::host& host, const std::string& role, bool holds,
                        const std::string& level = "info") {
    const fs::path state = work_ / host.name;
    fs::create_directories(state);
    if (holds) {
      auto store = content_store::open({.dir = state / "cache"}).value();
      EXPECT_TRUE(store->add_file(payload_, item_key{item_kind::file, "payload", "1"}));
    }
    std::ofstream(state / "lanrelayd.toml") << "[state]\ndir = \"" << state.string() << "\"\n"
                                            << "[relay]\nrole = \"" << role << "\"\n"
                                            << "[peers]\nretry_after = \"1s\"\n"
                                            << "[log]\nlevel = \"" << level << "\"\n";
    EXPECT_TRUE(start_lanrelayd(processes_, host, state / "lanrelayd.toml", state / "lanrelayd.log"))
        << read_file(state / "lanrelayd.log");
    return state;
  }

  std::optional<segment> lan_;
  std::deque<process> processes_;
  fs::path work_;
  fs::path payload_;
  sha256_digest payload_sha_{};
  std::string site_key_;
};

TEST_F(swarm_segment, twelve_peers_swarm_an_item_and_skip_the_corrupt_peer_after_its_first_bad_piece) {
  const auto& upstream = lan_->add_host("upstream");
  std::string failure;
  ASSERT_TRUE(start_web_server(processes_, upstream, work_ / "nginx", work_ / "www", "/payload.bin",
                               &failure))
      << failure;

  const auto& relay = lan_->add_host("relay");
  {
    const fs::path state = work_ / relay.name;
    fs::create_directories(state);
    site_key_ = generate_site_key(state / "site.key", work_ / "key.out");
    ASSERT_FALSE(site_key_.empty());
  }
  start_daemon(relay, "relay", true);
  const std::string list = http_get_in_netns(relay.netns, relay.address, 4127,
                                             "/-/pieces/" + to_hex(payload_sha_), 10s);
  const auto pieces = parse_piece_list(std::as_bytes(std::span(list)));
  ASSERT_TRUE(pieces) << "the relay serves no piece list";
  ASSERT_GT(pieces->pieces.size(), 4u);

  // The corrupt peer: the genuine item in its store, then one byte of every piece flipped in
  // the object file (same size, so the store keeps it).
  const auto& rogue = lan_->add_host("rogue");
  {
    const fs::path state = work_ / rogue.name;
    auto store = content_store::open({.dir = state / "cache"}).value();
    ASSERT_TRUE(store->add_file(payload_, item_key{item_kind::file, "payload", "1"}));
    store.reset();
    std::fstream object(state / "cache" / "objects" / to_hex(payload_sha_),
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
  const fs::path rogue_state = start_daemon(rogue, "peer", false, "debug");

  constexpr int agents = 12;
  std::vector<const segment::host*> hosts;
  std::vector<fs::path> states;
  for (int i = 0; i < agents; ++i) {
    hosts.push_back(&lan_->add_host("agent" + std::to_string(i)));
    states.push_back(start_daemon(*hosts.back(), "peer", false));
  }

  std::vector<process> fetches;
  for (int i = 0; i < agents; ++i) {
    const std::vector<std::string> argv{
        LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", "payload", "--version", "1",
        "--output", (states[i] / "payload.bin").string(), "--upstream",
        "http://" + upstream.address + "/payload.bin", "--state-dir", states[i].string(),
        "--site-key", site_key_, "--peer", "--json", "--log-level", "info",
        "--busy-patience", "120s", "--deadline", "300s"};
    fetches.emplace_back(argv, process::options{.netns = hosts[i]->netns,
                                                .output = states[i] / "fetch.out"});
  }
  std::uint64_t peer_bytes = 0;
  std::uint64_t relay_bytes = 0;
  for (int i = 0; i < agents; ++i) {
    const auto status = fetches[i].wait_for(300s);
    const std::string log = read_file(states[i] / "fetch.out");
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << hosts[i]->name << "\n" << log;
    EXPECT_EQ(sha256_of_file(states[i] / "payload.bin").value(), payload_sha_) << hosts[i]->name;
    const auto report = fetch_report(log);
    ASSERT_FALSE(report.empty()) << log;
    EXPECT_NE(report.at("source").as_string(), "upstream") << log;
    EXPECT_TRUE(report.at("verified").as_bool());
    peer_bytes += report.at("peer_bytes").to_number<std::uint64_t>();
    relay_bytes += report.at("relay_bytes").to_number<std::uint64_t>();
    // Swarmed: the report names the swarm's pieces.
    EXPECT_NE(log.find("\"url\":\"swarm\""), std::string::npos) << log;
  }
  EXPECT_EQ(peer_bytes + relay_bytes, agents * fs::file_size(payload_));
  EXPECT_EQ(web_server_requests(work_ / "nginx", "payload"), 0u);

  // Each agent took at most one piece from the corrupt peer: the first bad one dropped it (on
  // every address it answers from: one holder per responder). The corrupt peer's own log counts
  // every piece it sent, whoever asked (over IPv4 or IPv6).
  fetches.clear();
  const std::string rogue_log = read_file(rogue_state / "lanrelayd.log");
  std::size_t bad_pieces = 0;
  for (int i = 0; i < agents; ++i) {
    const std::string log = read_file(states[i] / "fetch.out");
    const auto n = lines_with(log, "event=bad_piece", "url=http://");
    EXPECT_LE(n, 1u) << hosts[i]->name << " asked the corrupt peer again\n" << log;
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
