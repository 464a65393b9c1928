// IPv6-only segments (issue 17): no IPv4 address on any host of the LAN, discovery by the
// link-local group ff12::4126 alone, and downloads from the address the offer names: a link-local
// one (reached through the interface the offer arrived on) or a ULA. Everything runs the real
// binaries (lanrelayd, lanrelay, proxyhelperd, nginx, tinyproxy) in namespaces; nothing can
// reach the machine's own interfaces.
//
//   lan (IPv6 only):  upstream (nginx at fd99::1, a prefix only it has; every other host routes
//                     fd99::/64 onto the link), relays, peers, agents, a proxy and proxyhelperd
//   internet (IPv4):  www (nginx), reached from the LAN only through the proxy (test 5)

#include "segment_fixture.hpp"

#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <fstream>
#include <map>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::string_view upstream_address = "fd99::1";

// The URL of the first download attempt of a fetch report.
std::string first_url(const fetch_run& r) {
  const auto* attempts = r.report.if_contains("attempts");
  if (attempts == nullptr || !attempts->is_array() || attempts->as_array().empty()) {
    return {};
  }
  return json_text(attempts->as_array().front().as_object(), "url");
}

class ipv6_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-ipv6")) {
      return;
    }
    write_payload(1 << 20, 17);
    lan_ = &add_segment(86, segment::addressing::ipv6_only);
  }

  // A host on the LAN that reaches the upstream's prefix on the link.
  const segment::host& add_host(const std::string& name) {
    const auto& host = lan_->add_host(name);
    run_checked("ip -n " + host.netns + " -6 route add fd99::/64 dev eth0");
    return host;
  }

  // nginx at [fd99::1]:80 serving the payload; its access log counts upstream requests.
  void start_upstream() {
    const auto& host = lan_->add_host("upstream");
    run_checked("ip -n " + host.netns + " -6 addr add " + std::string(upstream_address) +
                "/64 dev eth0 nodad");
    std::ofstream(work_ / "www" / "ready.txt") << "ok\n";
    upstream_address_ = "[" + std::string(upstream_address) + "]";
    std::string failure;
    ASSERT_TRUE(start_web_server(processes_, host, work_ / "nginx", work_ / "www", "/ready.txt",
                                 &failure, {"127.0.0.1", std::string(upstream_address)}))
        << failure;
  }

  // lanrelayd on a new host (or on `existing`), holding the payload when asked; returns once it
  // answers HTTP and has joined the discovery group on eth0.
  const segment::host& start_daemon(const std::string& name, const std::string& role, bool holding,
                                    const segment::host* existing = nullptr) {
    const auto& host = existing != nullptr ? *existing : add_host(name);
    if (holding) {
      hold_payload(state_dir(name));
    }
    start_relay_daemon(host, name,
                       "[relay]\nrole = \"" + role + "\"\n[log]\nlevel = \"info\"\n",
                       "event=discovery_joined group=ff12::4126 interface=eth0");
    daemons_[name] = &processes_.back();
    return host;
  }

  // `lanrelay fetch` on every host in `agents` at once, with the payload's digest unless `extra`
  // brings another trust source.
  std::vector<fetch_run> fetch_all(const std::vector<const segment::host*>& agents,
                                   std::vector<std::string> extra = {}, bool with_digest = true,
                                   std::string upstream = {}) {
    std::vector<std::string> args{"--upstream", upstream.empty() ? upstream_url() : upstream};
    if (with_digest) {
      const auto digest = digest_args();
      args.insert(args.end(), digest.begin(), digest.end());
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return fetch_payload(agents, args);
  }

  // `lanrelay discover --json` on `agent`: the offers, or an empty array.
  json::array discover(const segment::host& agent) {
    const fs::path out = work_ / (agent.name + "-discover.out");
    process p({LANRELAY_CLI_PATH, "discover", "--kind", "file", "--name", "payload", "--version",
               "1", "--json", "--window", "500ms"},
              process::options{.netns = agent.netns, .output = out});
    EXPECT_TRUE(p.wait_for(60s));
    boost::system::error_code ec;
    auto parsed = json::parse(read_file(out), ec);
    return !ec && parsed.is_array() ? parsed.as_array() : json::array{};
  }

  void expect_from_responder(const fetch_run& r, std::string_view source,
                             const std::string& address) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << r.log;
    EXPECT_EQ(json_text(r.report, "source"), source) << r.log;
    EXPECT_NE(first_url(r).find("//[" + address + "]:4127/"), std::string::npos) << r.log;
  }

  segment* lan_ = nullptr;
  std::map<std::string, process*> daemons_;
};

// (1) Link-local addresses only: the offer names the relay's fe80:: address, the agent reaches it
// through the interface the offer arrived on, for the signed catalog and for the item.
TEST_F(ipv6_segment, link_local_only_the_catalog_and_the_item_come_from_the_relay) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const std::string site_key = make_site_key("relay");
  const auto& relay = start_daemon("relay", "relay", true);
  const auto& agent = add_host("agent");

  const auto offers = discover(agent);
  ASSERT_EQ(offers.size(), 1u) << json::serialize(offers);
  const auto& offer = offers[0].as_object();
  EXPECT_EQ(json_text(offer, "address"), relay.link_local) << json::serialize(offer);
  EXPECT_EQ(json_text(offer, "interface"), "eth0") << json::serialize(offer);
  EXPECT_EQ(json_text(offer, "zone"), "eth0") << json::serialize(offer);
  EXPECT_EQ(json_text(offer, "url").find("http://[" + relay.link_local + "]:4127/"), 0u)
      << json::serialize(offer);

  // No digest from the caller: the catalog signed with the site key vouches for the bytes.
  const auto results = fetch_all({&agent}, {"--site-key", site_key}, /*with_digest=*/false);
  expect_from_responder(results[0], "relay", relay.link_local);
  EXPECT_EQ(upstream_requests(), 0u);
}

// (2) A ULA prefix as well: the relay offers its ULA, from its ULA.
TEST_F(ipv6_segment, with_a_ula_prefix_the_relay_offers_its_routable_address) {
  lan_->add_ipv6_prefix("fd86::");
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const auto& relay = start_daemon("relay", "relay", true);
  const auto& agent = add_host("agent");

  const auto offers = discover(agent);
  ASSERT_EQ(offers.size(), 1u) << json::serialize(offers);
  const auto& offer = offers[0].as_object();
  EXPECT_EQ(json_text(offer, "address"), relay.ipv6) << json::serialize(offer);
  EXPECT_EQ(json_text(offer, "from"), relay.ipv6) << json::serialize(offer);
  EXPECT_EQ(json_text(offer, "interface"), "eth0") << json::serialize(offer);
  EXPECT_TRUE(offer.at("zone").is_null()) << json::serialize(offer);

  const auto results = fetch_all({&agent});
  expect_from_responder(results[0], "relay", relay.ipv6);
  EXPECT_EQ(upstream_requests(), 0u);
}

// (3) Two agents on two ports of the bridge, at once.
TEST_F(ipv6_segment, two_agents_on_different_ports_both_get_the_item_from_the_relay) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const auto& relay = start_daemon("relay", "relay", true);
  const auto& first = add_host("agent0");
  const auto& second = add_host("agent1");
  for (const auto* agent : {&first, &second}) {
    const auto offers = discover(*agent);
    ASSERT_EQ(offers.size(), 1u) << json::serialize(offers);
    EXPECT_EQ(json_text(offers[0].as_object(), "address"), relay.link_local);
    EXPECT_EQ(json_text(offers[0].as_object(), "zone"), "eth0");
  }

  const auto results = fetch_all({&first, &second});
  for (const auto& r : results) {
    expect_from_responder(r, "relay", relay.link_local);
  }
  EXPECT_EQ(upstream_requests(), 0u);
  const auto stats = daemon_stats(relay);
  ASSERT_TRUE(stats.contains("transfers_completed")) << json::serialize(stats);
  EXPECT_EQ(stats.at("transfers_completed").to_number<std::uint64_t>(), 2u);
}

// (4) A peer serves what it fetched: once the relay is gone, the next agent gets the item from
// the peer's link-local address.
TEST_F(ipv6_segment, a_peer_serves_what_it_fetched) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const auto& relay = start_daemon("relay", "relay", true);
  const auto& peer = start_daemon("peer", "peer", false);
  const auto first = fetch_all({&peer}, {"--peer"});
  expect_from_responder(first[0], "relay", relay.link_local);

  daemons_.at("relay")->kill();
  const auto& agent = add_host("agent");
  const auto offers = discover(agent);
  ASSERT_EQ(offers.size(), 1u) << json::serialize(offers);
  EXPECT_EQ(json_text(offers[0].as_object(), "role"), "peer");
  EXPECT_EQ(json_text(offers[0].as_object(), "address"), peer.link_local);

  const auto results = fetch_all({&agent});
  expect_from_responder(results[0], "peer", peer.link_local);
  EXPECT_EQ(upstream_requests(), 0u);
  EXPECT_EQ(daemon_stats(peer).at("transfers_completed").to_number<std::uint64_t>(), 1u);
}

// (5) proxyhelperd advertises a proxy by its link-local address (the URL carries no zone): the
// helper checks it through its interface on the segment, the agent through the interface the
// answer arrived on, for the connectivity check and for a download through it. With a relay on
// the segment, the item still comes from the relay.
TEST_F(ipv6_segment, a_proxy_advertised_by_its_link_local_address_is_checked_and_used) {
  if (std::system("command -v tinyproxy >/dev/null") != 0) {
    GTEST_SKIP() << "needs tinyproxy (deploy/install-deps.sh --test)";
  }
  // www on an IPv4 network the LAN reaches only through the proxy.
  auto& internet = add_segment(87);
  const auto& www = internet.add_host("www");
  const fs::path www_dir = work_ / "www-nginx";
  std::ofstream(work_ / "www" / "probe.txt") << "ok\n";
  std::string failure;
  ASSERT_TRUE(start_web_server(processes_, www, www_dir, work_ / "www", "/probe.txt", &failure))
      << failure;
  const auto www_payload_requests = [&] { return web_server_requests(www_dir, "/payload.bin"); };

  // tinyproxy on the LAN (IPv6 only there), also attached to the internet.
  const auto& proxy = add_host("proxy");
  const auto& proxy_outside = internet.attach(proxy);
  const fs::path proxy_dir = work_ / "proxy";
  fs::create_directories(proxy_dir);
  std::ofstream(proxy_dir / "tinyproxy.conf")
      << "Port 3128\nTimeout 30\nMaxClients 16\nAllow fe80::/10\nAllow 127.0.0.1\n"
      << "LogLevel Info\nLogFile \"" << (proxy_dir / "tinyproxy.log").string() << "\"\n"
      << "PidFile \"" << (proxy_dir / "tinyproxy.pid").string() << "\"\n";
  processes_.emplace_back(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c",
                                                   (proxy_dir / "tinyproxy.conf").string()},
                          process::options{.netns = proxy.netns, .output = proxy_dir / "out.log"});
  ASSERT_TRUE(eventually(60s, [&] {
    return !http_get_in_netns(proxy.netns, "127.0.0.1", 3128,
                              "http://" + www.address + "/probe.txt", 10s)
                .empty();
  })) << read_file(proxy_dir / "out.log") << proxy_outside.address;
  const std::string proxy_url = "http://[" + proxy.link_local + "]:3128";

  // proxyhelperd advertising it.
  const auto& helper = add_host("helper");
  const fs::path helper_dir = work_ / "helper";
  fs::create_directories(helper_dir);
  std::ofstream(helper_dir / "proxyhelperd.toml")
      << "[state]\ndir = \"" << (helper_dir / "state").string() << "\"\n"
      << "[health]\nprobe_url = \"http://" << www.address << "/probe.txt\"\ninterval = \"300ms\"\n"
      << "timeout = \"10s\"\n[query]\nanswer_lifetime = \"60s\"\n"
      << "[[proxy]]\nurl = \"" << proxy_url << "\"\npriority = 10\n";
  const fs::path helper_log = helper_dir / "out.log";
  processes_.emplace_back(std::vector<std::string>{PROXYHELPERD_PATH, "--config",
                                                   (helper_dir / "proxyhelperd.toml").string()},
                          process::options{.netns = helper.netns, .output = helper_log});
  ASSERT_TRUE(eventually(60s, [&] {
    const auto log = read_file(helper_log);
    return log.find("event=proxy_query_joined group=ff12::4129 interface=eth0") != std::string::npos &&
           log.find("public key lanrelay-ed25519:") != std::string::npos;
  })) << read_file(helper_log);
  const auto log_text = read_file(helper_log);
  const auto at = log_text.find("public key lanrelay-ed25519:");
  const std::string helper_key = log_text.substr(at + 11, log_text.find('\n', at) - at - 11);
  ASSERT_TRUE(eventually(60s, [&] {
    const auto stats = daemon_stats(helper, 4130);
    const auto* proxies = stats.if_contains("proxies");
    return proxies != nullptr && proxies->is_array() && !proxies->as_array().empty() &&
           proxies->as_array()[0].as_object().at("healthy").as_bool();
  })) << read_file(helper_log);

  const auto& agent = add_host("agent");
  const std::string target = "http://" + www.address + "/payload.bin";
  const std::vector<std::string> proxy_args{"--resolve-proxy", "--proxy-key", helper_key,
                                            "--check-timeout", "10s"};
  {
    const fs::path out = work_ / "resolve.out";
    process resolve({LANRELAY_CLI_PATH, "proxy", "resolve", target, "--json", "--proxy-key",
                     helper_key, "--check-timeout", "10s"},
                    process::options{.netns = agent.netns, .output = out});
    const auto status = resolve.wait_for(120s);
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(out);
    const auto text_out = read_file(out);
    const auto start = text_out.find("{\"");
    ASSERT_NE(start, std::string::npos) << text_out;
    boost::system::error_code ec;
    const auto line = json::parse(text_out.substr(start, text_out.find('\n', start) - start), ec);
    ASSERT_FALSE(ec) << text_out;
    EXPECT_EQ(json_text(line.as_object(), "decided_by"), "proxyhelper") << text_out;
    EXPECT_EQ(json_text(line.as_object(), "proxy"), proxy_url) << text_out;
  }

  // Through the proxy when nobody on the segment has the item...
  auto via_proxy = fetch_all({&agent}, [&] {
    auto args = proxy_args;
    args.push_back("--no-discovery");
    return args;
  }(), true, target);
  EXPECT_EQ(via_proxy[0].exit_status, 0) << via_proxy[0].log;
  EXPECT_TRUE(via_proxy[0].bytes_ok) << via_proxy[0].log;
  EXPECT_EQ(json_text(via_proxy[0].report, "source"), "upstream") << via_proxy[0].log;
  // The connectivity checks GET the target too (and stop at the head).
  const auto before_relay = www_payload_requests();
  EXPECT_GE(before_relay, 1u);

  // ...and from the relay once it is there.
  const auto& relay = start_daemon("relay", "relay", true);
  const auto& second = add_host("agent2");
  auto from_relay = fetch_all({&second}, proxy_args, true, target);
  expect_from_responder(from_relay[0], "relay", relay.link_local);
  EXPECT_EQ(www_payload_requests(), before_relay);
}

}  // namespace
}  // namespace lanrelay::test
