// Agents that fall back say so, later (issue 15; docs/protocol.md, "Fallback reports"): on a
// segment in network namespaces, an agent whose fetch found the segment silent (its relay
// stopped) goes to the upstream, and its next fetch, with the relay up, reports that fallback in
// its query; the relay's metrics show it once. A forged query with huge counts adds a bounded
// amount.

#include "segment_fixture.hpp"

#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <regex>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

class fallback_report_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-fallback-report")) {
      return;
    }
    write_payload(256 * 1024, 15);
    lan_ = &add_segment(61);
  }

  // `lanrelay fetch` of the payload on `agent`, with its own state directory; the JSON report.
  json::object fetch(const segment::host& agent) {
    auto args = digest_args();
    args.insert(args.end(), {"--upstream", upstream_url()});
    const auto runs = fetch_payload({&agent}, args);
    EXPECT_EQ(runs[0].exit_status, 0) << runs[0].log;
    return runs[0].report;
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

  segment* lan_ = nullptr;
  int starts_ = 0;
};

TEST_F(fallback_report_segment, a_silent_segment_is_reported_to_the_relay_once_it_answers) {
  ASSERT_NO_FATAL_FAILURE(start_upstream_server(lan_->add_host("upstream")));

  // The relay holds the payload, but is stopped when the agent first fetches.
  const auto& relay = lan_->add_host("relay");
  const fs::path state = state_dir("relay");
  ASSERT_NO_FATAL_FAILURE(hold_payload(state));
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
  discovery::query forged{.transaction_id = 0xf0f0, .sender_cookie = 0xbad,
                          .kind = item_kind::file, .name = "payload", .version = "1"};
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
