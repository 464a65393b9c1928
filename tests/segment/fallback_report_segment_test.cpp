// Agents that fall back say so, later (issue 15; docs/protocol.md, "Fallback reports"): on a
// segment in network namespaces, an agent whose fetch found the segment silent (its relay
// stopped) goes to the upstream, and its next fetch, with the relay up, reports that fallback in
// its query; the relay's metrics show it once. A forged query with huge counts adds a bounded
// amount.

#include "process.hpp"
#include "segment.hpp"
#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <random>
#include <regex>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

class fallback_report_segment : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported() || std::system("command -v nginx >/dev/null") != 0) {
      GTEST_SKIP() << "segment tests need root, iproute2, nftables and nginx";
    }
    work_ = make_work_dir("lanrelay-fallback-report");
    ASSERT_FALSE(work_.empty());
    fs::create_directories(work_ / "www");
    payload_ = work_ / "www" / "payload.bin";
    std::mt19937_64 random(15);
    std::string bytes(256 * 1024, '\0');
    for (auto& c : bytes) {
      c = static_cast<char>(random());
    }
    std::ofstream(payload_, std::ios::binary) << bytes;
    payload_size_ = fs::file_size(payload_);
    payload_sha_ = to_hex(sha256_of_file(payload_).value());
    lan_.emplace(static_cast<std::uint8_t>(61));
  }

  void TearDown() override {
    processes_.clear();
    lan_.reset();
    if (!work_.empty()) {
      fs::remove_all(work_);
    }
  }

  // `lanrelay fetch` of the payload on `agent`, with its own state directory; the JSON report.
  json::object fetch(const segment::host& agent) {
    const fs::path dir = work_ / agent.name;
    fs::create_directories(dir);
    fs::remove(dir / "payload.bin");
    fs::remove(dir / "fetch.out");  // the output is appended to: one report per fetch
    process p({LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", "payload", "--version", "1",
               "--output", (dir / "payload.bin").string(), "--upstream",
               "http://" + upstream_ + "/payload.bin", "--state-dir", (dir / "state").string(),
               "--sha256", payload_sha_, "--size", std::to_string(payload_size_), "--json",
               "--log-level", "info"},
              process::options{.netns = agent.netns, .output = dir / "fetch.out"});
    const auto status = p.wait_for(120s);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << read_file(dir / "fetch.out");
    return fetch_report(read_file(dir / "fetch.out"));
  }

  bool start_relay(const segment::host& relay) {
    return start_lanrelayd(processes_, relay, work_ / "relay" / "lanrelayd.toml",
                           work_ / "relay" / ("lanrelayd-" + std::to_string(++starts_) + ".log"));
  }

  // lanrelay_agent_fallbacks_total{reason="<reason>"} of the relay; nullopt when not exported.
  std::optional<double> reported(const segment::host& relay, const std::string& reason) {
    const auto text = http_get_in_netns(relay.netns, "127.0.0.1", 4127, "/-/metrics", 10s);
    const std::regex sample("lanrelay_agent_fallbacks_total\\{reason=\"" + reason + "\"\\} ([0-9.e+]+)");
    std::smatch m;
    if (!std::regex_search(text, m, sample)) {
      return std::nullopt;
    }
    return std::stod(m[1].str());
  }

  std::optional<segment> lan_;
  std::deque<process> processes_;
  fs::path work_;
  fs::path payload_;
  std::uint64_t payload_size_ = 0;
  std::string payload_sha_;
  std::string upstream_;
  int starts_ = 0;
};

TEST_F(fallback_report_segment, a_silent_segment_is_reported_to_the_relay_once_it_answers) {
  const auto& web = lan_->add_host("upstream");
  upstream_ = web.address;
  std::string failure;
  ASSERT_TRUE(start_web_server(processes_, web, work_ / "nginx", work_ / "www", "/payload.bin", &failure))
      << failure;

  // The relay holds the payload, but is stopped when the agent first fetches.
  const auto& relay = lan_->add_host("relay");
  const fs::path state = work_ / "relay" / "state";
  fs::create_directories(state);
  {
    auto store = content_store::open({.dir = state / "cache"}).value();
    ASSERT_TRUE(store->add_file(payload_, item_key{item_kind::file, "payload", "1"}));
  }
  std::ofstream(work_ / "relay" / "lanrelayd.toml")
      << "[state]\ndir = \"" << state.string() << "\"\n[log]\nlevel = \"info\"\n";
  ASSERT_TRUE(start_relay(relay));
  processes_.back().signal(SIGTERM);
  ASSERT_TRUE(processes_.back().wait_for(60s));

  const auto& agent = lan_->add_host("agent");
  const auto first = fetch(agent);
  EXPECT_EQ(first.at("source").as_string(), "upstream") << first;
  const fs::path agent_state = work_ / "agent" / "state";
  EXPECT_NE(read_file(agent_state / "fallbacks.json").find("\"segment_silent\":1"), std::string::npos)
      << read_file(agent_state / "fallbacks.json");

  // The segment memory would keep the agent off the segment for 10 minutes: let it expire.
  fs::remove(agent_state / "segments.json");
  ASSERT_TRUE(start_relay(relay));
  EXPECT_EQ(reported(relay, "segment_silent"), 0.0);
  const auto second = fetch(agent);
  EXPECT_EQ(second.at("source").as_string(), "relay")
      << read_file(work_ / "agent" / "fetch.out") << read_file(work_ / "relay" / "lanrelayd-2.log");
  EXPECT_EQ(reported(relay, "segment_silent"), 1.0);
  for (const char* other : {"nothing_found", "holders_busy", "holders_failed", "untrusted_offers"}) {
    EXPECT_EQ(reported(relay, other), 0.0) << other;
  }
  EXPECT_EQ(read_file(agent_state / "fallbacks.json"), "{}");
  const auto status = json::parse(http_get_in_netns(relay.netns, "127.0.0.1", 4127, "/-/status", 10s));
  EXPECT_EQ(status.at("counters").at("agent_fallbacks").at("segment_silent").to_number<int>(), 1);

  // Reported once: the next fetch carries nothing more.
  EXPECT_EQ(fetch(agent).at("source").as_string(), "relay");
  EXPECT_EQ(reported(relay, "segment_silent"), 1.0);

  // A forged query claiming 65535 of every reason adds at most max_reported_fallbacks each. It is
  // sent until the relay's offer comes back (copies share a transaction id: counted once).
  discovery::query forged;
  forged.transaction_id = 0xf0f0;
  forged.sender_cookie = 0xbad;
  forged.kind = item_kind::file;
  forged.name = "payload";
  forged.version = "1";
  for (std::uint8_t code = 1; code <= discovery::fallback_reason_count; ++code) {
    forged.fallbacks.push_back({static_cast<discovery::fallback_reason>(code), 0xffff});
  }
  const auto datagram = discovery::encode(forged).value();
  const int fd = socket_in_netns(agent.netns, AF_INET, SOCK_DGRAM);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(discovery::default_port);
  ASSERT_EQ(::inet_pton(AF_INET, relay.address.c_str(), &to.sin_addr), 1);
  bool answered = false;
  for (int attempt = 0; attempt < 30 && !answered; ++attempt) {
    ASSERT_EQ(::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
                       sizeof to),
              static_cast<ssize_t>(datagram.size()));
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) == 1) {
      std::array<std::byte, discovery::max_datagram> reply{};
      const auto n = ::recv(fd, reply.data(), reply.size(), 0);
      if (n > 0) {
        const auto offer = discovery::decode_offer(std::span(reply).first(static_cast<std::size_t>(n)));
        answered = offer && offer->transaction_id == forged.transaction_id;
      }
    }
  }
  ::close(fd);
  ASSERT_TRUE(answered);
  const double bound = discovery::max_reported_fallbacks;
  EXPECT_EQ(reported(relay, "segment_silent"), 1.0 + bound);
  for (const char* other : {"nothing_found", "holders_busy", "holders_failed", "untrusted_offers"}) {
    EXPECT_EQ(reported(relay, other), bound) << other;
  }
}

}  // namespace
}  // namespace lanrelay::test
