// Agents one router away from their relay, on a subnet that drops broadcast (a cloud): they find
// the relay by DNS-SD (dnsmasq serving SRV/TXT) or by an address plan, and ask it by unicast
// (issue 14). Two segments in network namespaces joined by a router namespace; nothing here
// reaches the machine's own interfaces.
//
//   site 10.77.0.0/16: upstream (nginx), relay (lanrelayd), router (seg77 side; dnsmasq)
//   cloud 10.78.0.0/16: router (seg78 side), agents; broadcast dropped in the switch

#include "segment_fixture.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::size_t agent_count = 20;
constexpr std::uint16_t dns_port = 5353;

class unicast_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-unicast", {"nginx", "dnsmasq"})) {
      return;
    }
    write_payload(16 << 20, 14);
    std::ofstream(work_ / "resolv.conf") << "search cloud.test\n";

    site_ = &add_segment(77);
    cloud_ = &add_segment(78);
    upstream_host_ = &site_->add_host("upstream");
    relay_host_ = &site_->add_host("relay");
    router_ = &site_->add_host("router");
    router_cloud_ = &cloud_->attach(*router_);
    agents_ = add_agents(*cloud_, agent_count);
    run_checked("ip netns exec " + router_->netns + " sysctl -qw net.ipv4.ip_forward=1");
    for (const auto* h : {upstream_host_, relay_host_}) {
      run_checked("ip -n " + h->netns + " route add 10.78.0.0/16 via " + router_->address);
    }
    for (const auto* a : agents_) {
      run_checked("ip -n " + a->netns + " route add 10.77.0.0/16 via " + router_cloud_->address);
    }
    cloud_->block_broadcast();
    start_upstream_server(*upstream_host_);
  }

  // lanrelayd on the relay host, holding the payload, answering the cloud by unicast.
  void start_relay(const std::string& extra_config = "") {
    const fs::path state = state_dir("relay");
    ASSERT_NO_FATAL_FAILURE(hold_payload(state));
    auto store = content_store::open({.dir = state / "cache"}).value();
    std::ofstream(work_ / "tiny.bin") << std::string(4096, 't');
    ASSERT_TRUE(store->add_file(work_ / "tiny.bin", item_key{item_kind::file, "tiny", "1"}));
    store.reset();
    start_relay_daemon(*relay_host_, "relay",
                       "[discovery]\nunicast_networks = [\"10.78.0.0/16\"]\n"
                       "[log]\nlevel = \"info\"\n" + extra_config);
  }

  // dnsmasq in the router namespace on the router's site address, port 5353, publishing the
  // relay under _lanrelay._udp.cloud.test with `txt` as its TXT record.
  process& start_dns(const std::string& txt) {
    const fs::path dir = work_ / "dnsmasq";
    fs::create_directories(dir);
    processes_.emplace_back(
        std::vector<std::string>{
            "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", "--listen-address=" + router_->address,
            "--port=" + std::to_string(dns_port), "--user=root", "--pid-file=",
            "--log-queries", "--log-facility=" + (dir / "queries.log").string(),
            "--host-record=relay.cloud.test," + relay_host_->address,
            "--srv-host=_lanrelay._udp.cloud.test,relay.cloud.test,4126,0,0",
            "--txt-record=_lanrelay._udp.cloud.test," + txt},
        process::options{.netns = router_->netns, .output = dir / "out.log"});
    auto& dns = processes_.back();
    EXPECT_TRUE(eventually(60s, [&] {
      return read_file(dir / "queries.log").find("started") != std::string::npos;
    })) << read_file(dir / "out.log");
    return dns;
  }

  fs::path agent_config(const std::string& text) {
    const fs::path file = work_ / ("agent-" + std::to_string(configs_++) + ".toml");
    std::ofstream(file) << text;
    return file;
  }

  std::string dns_config(const std::string& server) const {
    return "[discovery]\ndns_sd = true\nresolv_conf = \"" + (work_ / "resolv.conf").string() +
           "\"\ndns_server = \"" + server + "\"\nresolver_timeout = \"2s\"\n";
  }

  // Creates <work>/<name>/site.key; returns {public key, its DNS-SD TXT text}.
  std::pair<std::string, std::string> generate_site_key(const std::string& name) {
    const fs::path dir = work_ / name;
    fs::create_directories(dir);
    EXPECT_FALSE(lanrelay::test::generate_site_key(dir / "site.key", dir / "generate.out").empty());
    process show({LANRELAY_CLI_PATH, "key", "show", (dir / "site.key").string()},
                 process::options{.output = dir / "show.out"});
    EXPECT_TRUE(show.wait_for(30s));
    std::istringstream lines(read_file(dir / "show.out"));
    std::string key;
    std::string txt_line;
    std::getline(lines, key);
    std::getline(lines, txt_line);
    const std::string prefix = "dns-sd-txt ";
    EXPECT_EQ(txt_line.rfind(prefix, 0), 0u) << read_file(dir / "show.out");
    return {key, txt_line.substr(prefix.size())};
  }

  std::vector<fetch_run> fetch_all(const std::vector<const segment::host*>& agents,
                                   const std::vector<std::string>& extra) {
    std::vector<std::string> args = digest_args();
    args.insert(args.end(), {"--upstream", upstream_url()});
    args.insert(args.end(), extra.begin(), extra.end());
    return fetch_payload(agents, args);
  }

  std::uint64_t relay_queries() {
    const auto stats = daemon_stats(*relay_host_);
    const auto* discovery = stats.if_contains("discovery");
    return discovery != nullptr ? discovery->as_object().at("queries").to_number<std::uint64_t>()
                                : ~std::uint64_t{0};
  }

  // Every agent got the bytes from the relay and none went upstream.
  void expect_all_from_relay(const std::vector<fetch_run>& results) {
    for (const auto& r : results) {
      EXPECT_EQ(r.exit_status, 0) << r.log;
      EXPECT_TRUE(r.bytes_ok) << r.log;
      EXPECT_EQ(json_text(r.report, "source"), "relay") << r.log;
    }
    EXPECT_EQ(upstream_requests(), 0u);
  }

  segment* site_ = nullptr;
  segment* cloud_ = nullptr;
  const segment::host* upstream_host_ = nullptr;
  const segment::host* relay_host_ = nullptr;
  const segment::host* router_ = nullptr;
  const segment::host* router_cloud_ = nullptr;
  std::vector<const segment::host*> agents_;
  int configs_ = 0;
};

TEST_F(unicast_segment, agents_in_the_cloud_find_the_relay_by_dns_sd) {
  const auto [key, txt] = generate_site_key("site");
  start_relay();
  auto& dns = start_dns(txt);
  const auto config = agent_config(dns_config(router_->address + ":" + std::to_string(dns_port)));

  expect_all_from_relay(fetch_all(agents_, {"--agent-config", config.string()}));

  // Remembered per source: with the name server gone, the next fetch still goes straight to
  // the relay DNS-SD found (without the memory: broadcast silent, DNS silent, the upstream).
  dns.kill();
  const auto again = fetch_all({agents_[0]}, {"--agent-config", config.string()});
  EXPECT_EQ(json_text(again[0].report, "source"), "relay") << again[0].log;
  EXPECT_EQ(upstream_requests(), 0u);
}

TEST_F(unicast_segment, agents_in_the_cloud_find_the_relay_by_the_address_plan) {
  start_relay();
  const auto config = agent_config("[[discovery.site]]\nnetworks = [\"10.99.0.0/16\"]\n"
                                   "relays = [\"10.99.0.1\"]\n"
                                   "[[discovery.site]]\nnetworks = [\"10.78.0.0/16\"]\n"
                                   "relays = [\"" + relay_host_->address + "\"]\n");
  expect_all_from_relay(fetch_all(agents_, {"--agent-config", config.string()}));
}

TEST_F(unicast_segment, with_neither_every_agent_falls_back_to_the_upstream_quietly) {
  start_relay();
  const auto results = fetch_all(agents_, {});
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
    EXPECT_EQ(json_text(r.report, "source"), "upstream");
    EXPECT_EQ(json_text(r.report, "fallback_reason"), "no offers");
    EXPECT_EQ(r.log.find(" warning "), std::string::npos) << r.log;
    EXPECT_EQ(r.log.find(" error "), std::string::npos) << r.log;
  }
  EXPECT_EQ(upstream_requests(), agent_count);
  EXPECT_EQ(relay_queries(), 0u);  // the relay is off-link and nobody named it
}

TEST_F(unicast_segment, a_relay_published_with_another_site_key_is_ignored) {
  const auto [pinned, pinned_txt] = generate_site_key("pinned");
  const auto [other, other_txt] = generate_site_key("other");
  start_relay("[trust]\nsite_key = \"" + (work_ / "other" / "site.key").string() + "\"\n");
  start_dns(other_txt);
  const auto config = agent_config(dns_config(router_->address + ":" + std::to_string(dns_port)));

  const auto results =
      fetch_all({agents_[0], agents_[1]}, {"--agent-config", config.string(), "--site-key", pinned});
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok);
    EXPECT_EQ(json_text(r.report, "source"), "upstream") << r.log;
    EXPECT_NE(r.log.find("event=dns_sd_relay_ignored"), std::string::npos) << r.log;
  }
  EXPECT_EQ(relay_queries(), 0u);  // never asked: the digest would have let it serve
}

TEST_F(unicast_segment, a_silent_name_server_is_asked_once_per_memory_period) {
  start_relay();
  // A "name server" that receives and never answers.
  const int silent = socket_in_netns(router_->netns, AF_INET, SOCK_DGRAM);
  ASSERT_GE(silent, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(5399);
  ::inet_pton(AF_INET, router_->address.c_str(), &at.sin_addr);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  const auto config = agent_config(dns_config(router_->address + ":5399"));

  // Datagrams received until a marker sent from the agent's namespace after the fetch (same
  // path, so whatever the fetch sent arrived before it).
  int marker_tag = 0;
  const auto questions_until_marker = [&] {
    const std::string marker = "marker" + std::to_string(++marker_tag);
    const int from = socket_in_netns(agents_[0]->netns, AF_INET, SOCK_DGRAM);
    EXPECT_GE(from, 0);
    EXPECT_EQ(::sendto(from, marker.data(), marker.size(), 0, reinterpret_cast<sockaddr*>(&at),
                       sizeof at),
              static_cast<ssize_t>(marker.size()));
    ::close(from);
    std::size_t questions = 0;
    timeval guard{60, 0};
    ::setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
    for (;;) {
      char buffer[2048];
      const ssize_t n = ::recv(silent, buffer, sizeof buffer, 0);
      if (n < 0) {
        ADD_FAILURE() << "the marker did not arrive";
        return questions;
      }
      if (std::string_view(buffer, static_cast<std::size_t>(n)) == marker) {
        return questions;
      }
      ++questions;
    }
  };

  const auto first = fetch_all({agents_[0]}, {"--agent-config", config.string()});
  EXPECT_EQ(first[0].exit_status, 0) << first[0].log;
  EXPECT_EQ(json_text(first[0].report, "source"), "upstream");
  EXPECT_EQ(questions_until_marker(), 2u);  // SRV and TXT, one try each

  const auto second = fetch_all({agents_[0]}, {"--agent-config", config.string()});
  EXPECT_EQ(second[0].exit_status, 0) << second[0].log;
  EXPECT_EQ(json_text(second[0].report, "source"), "upstream");
  EXPECT_NE(json_text(second[0].report, "fallback_reason").find("gave no answers recently"),
            std::string::npos);
  EXPECT_EQ(questions_until_marker(), 0u);  // remembered: not asked again
  ::close(silent);
}


// Not a test: the figures of docs/performance.md ("Finding the relay without broadcast").
// Run: segment_tests --gtest_also_run_disabled_tests --gtest_filter='*measure*'
TEST_F(unicast_segment, DISABLED_measure_time_to_first_byte) {
  const auto [key, txt] = generate_site_key("site");
  start_relay();
  start_dns(txt);
  const auto& site_agent = site_->add_host("siteagent");
  const auto tiny_sha = to_hex(sha256_of_file(work_ / "tiny.bin").value());
  const auto dns = agent_config(dns_config(router_->address + ":" + std::to_string(dns_port)));
  const auto plan = agent_config("[[discovery.site]]\nnetworks = [\"10.78.0.0/16\"]\nrelays = [\"" +
                                 relay_host_->address + "\"]\n");
  // The whole `lanrelay fetch` of a 4 KiB item, from exec to exit: its time to the first byte
  // plus a few hundred microseconds of transfer.
  const auto run = [&](const segment::host& agent, const std::string& state,
                       const std::vector<std::string>& extra) {
    const fs::path dir = work_ / "measure";
    fs::create_directories(dir);
    std::vector<std::string> argv{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name", "tiny",
                                  "--version", "1", "--output", (dir / "tiny.bin").string(),
                                  "--upstream", "http://" + upstream_host_->address + "/none",
                                  "--state-dir", (dir / state).string(), "--json", "--sha256",
                                  tiny_sha, "--size", "4096"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto started = std::chrono::steady_clock::now();
    process p(argv, process::options{.netns = agent.netns, .output = dir / "out.log"});
    EXPECT_TRUE(p.wait_for(60s));
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    EXPECT_NE(read_file(dir / "out.log").find("\"source\":\"relay\""), std::string::npos)
        << read_file(dir / "out.log");
    return ms;
  };
  const auto series = [&](const char* name, const segment::host& agent,
                          const std::vector<std::string>& extra) {
    const std::string state = std::string(name) + "-state";
    const double first = run(agent, state, extra);
    std::vector<double> repeated;
    for (int i = 0; i < 10; ++i) {
      repeated.push_back(run(agent, state, extra));
    }
    std::sort(repeated.begin(), repeated.end());
    std::printf("%-14s first %7.1f ms   repeated median %7.1f ms (min %.1f, max %.1f)\n", name,
                first, repeated[5], repeated.front(), repeated.back());
  };
  series("broadcast", site_agent, {});
  series("dns-sd", *agents_[0], {"--agent-config", dns.string()});
  series("address-plan", *agents_[1], {"--agent-config", plan.string()});

  // WAN bytes for the 20 cloud agents fetching the 16 MiB item (found by DNS-SD).
  const auto results = fetch_all(agents_, {"--agent-config", dns.string()});
  std::size_t from_relay = 0;
  for (const auto& r : results) {
    from_relay += json_text(r.report, "source") == "relay" ? 1 : 0;
  }
  std::printf("20 agents x 16 MiB: %zu from the relay, %zu upstream requests\n", from_relay,
              upstream_requests());
}

}  // namespace
}  // namespace lanrelay::test
