// Relays chain their discovery (issue 14): a branch subnet behind a router, whose segment relay
// does not hold the item its agents want, asks its parent relay on the site subnet
// (discovery.parents), offers the item itself and pulls it from the parent once, verified.
// Two segments in network namespaces joined by a router namespace; nothing here reaches the
// machine's own interfaces.
//
//   site 10.83.0.0/16: upstream (nginx), site relay (holds the item), router (seg83 side)
//   branch 10.84.0.0/16: router (seg84 side), branch relay (holds nothing), 10 agents;
//   broadcast works inside the branch, as on any office LAN

#include "segment_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::size_t agent_count = 10;

class chain_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-chain")) {
      return;
    }
    write_payload(16 << 20, 84);
    auto& site = add_segment(83);
    auto& branch = add_segment(84);
    upstream_host_ = &site.add_host("upstream");
    site_relay_ = &site.add_host("siterelay");
    router_ = &site.add_host("router");
    router_branch_ = &branch.attach(*router_);
    branch_relay_ = &branch.add_host("branchrelay");
    agents_ = add_agents(branch, agent_count);
    run_checked("ip netns exec " + router_->netns + " sysctl -qw net.ipv4.ip_forward=1");
    for (const auto* h : {upstream_host_, site_relay_}) {
      run_checked("ip -n " + h->netns + " route add 10.84.0.0/16 via " + router_->address);
    }
    run_checked("ip -n " + branch_relay_->netns + " route add 10.83.0.0/16 via " +
                router_branch_->address);
    for (const auto* a : agents_) {
      run_checked("ip -n " + a->netns + " route add 10.83.0.0/16 via " + router_branch_->address);
    }
    start_upstream_server(*upstream_host_);
  }

  // lanrelayd on `host` with its own state directory; `hold` puts the payload into its cache.
  void start_relay(const segment::host& host, bool hold, const std::string& discovery) {
    if (hold) {
      ASSERT_NO_FATAL_FAILURE(hold_payload(state_dir(host.name)));
    }
    start_relay_daemon(host, host.name,
                       "[discovery]\n" + discovery + "[log]\nlevel = \"info\"\n");
  }

  std::vector<fetch_run> fetch_all() {
    auto args = digest_args();
    args.insert(args.end(), {"--upstream", upstream_url()});
    return fetch_payload(agents_, args);
  }

  static std::uint64_t number(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_number() ? v->to_number<std::uint64_t>() : ~std::uint64_t{0};
  }

  std::string relay_log(const segment::host& host) const { return read_file(daemon_log(host.name)); }

  const segment::host* upstream_host_ = nullptr;
  const segment::host* site_relay_ = nullptr;
  const segment::host* router_ = nullptr;
  const segment::host* router_branch_ = nullptr;
  const segment::host* branch_relay_ = nullptr;
  std::vector<const segment::host*> agents_;
};

TEST_F(chain_segment, a_branch_relay_gets_the_item_from_its_parent_once_for_ten_agents) {
  start_relay(*site_relay_, true, "unicast_networks = [\"10.84.0.0/16\"]\n");
  start_relay(*branch_relay_, false, "parents = [\"" + site_relay_->address + "\"]\n");

  const auto results = fetch_all();
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << r.log;
    EXPECT_EQ(json_text(r.report, "source"), "relay") << r.log;
    // From the branch relay (its IPv4 address, or its link-local IPv6 one: the IPv6 query is
    // answered too), not from the site relay across the router.
    const auto responder = json_text(r.report, "responder");
    EXPECT_TRUE(responder.find(branch_relay_->address + ":") == 0 ||
                responder.starts_with("[fe80:"))
        << r.log;
  }
  EXPECT_EQ(upstream_requests(), 0u);

  // The site relay carried the item over the router once: one transfer, one item's bytes.
  const auto site = daemon_stats(*site_relay_);
  EXPECT_EQ(number(site, "transfers_completed"), 1u) << relay_log(*site_relay_);
  EXPECT_EQ(number(site, "bytes_served"), payload_size_);
  // The branch relay served every agent, and pulled once.
  const auto branch = daemon_stats(*branch_relay_);
  EXPECT_EQ(number(branch, "transfers_completed"), agent_count) << relay_log(*branch_relay_);
  EXPECT_GE(number(branch.at("discovery").as_object(), "parent_offers"), 1u);
  const auto log = relay_log(*branch_relay_);
  std::size_t pulls = 0;
  for (auto at = log.find("event=parent_pull_done"); at != std::string::npos;
       at = log.find("event=parent_pull_done", at + 1)) {
    ++pulls;
  }
  EXPECT_EQ(pulls, 1u) << log;
  EXPECT_EQ(log.find("event=parent_pull_failed"), std::string::npos) << log;
}

TEST_F(chain_segment, without_a_parent_the_branch_agents_fall_back_to_the_upstream) {
  start_relay(*site_relay_, true, "unicast_networks = [\"10.84.0.0/16\"]\n");
  start_relay(*branch_relay_, false, "");

  const auto results = fetch_all();
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << r.log;
    EXPECT_EQ(json_text(r.report, "source"), "upstream") << r.log;
  }
  EXPECT_EQ(upstream_requests(), agent_count);
  EXPECT_EQ(number(daemon_stats(*site_relay_), "transfers_completed"), 0u);
}

}  // namespace
}  // namespace lanrelay::test
