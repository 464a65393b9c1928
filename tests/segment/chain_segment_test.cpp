// Relays chain their discovery (issue 14): a branch subnet behind a router, whose segment relay
// does not hold the item its agents want, asks its parent relay on the site subnet
// (discovery.parents), offers the item itself and pulls it from the parent once, verified.
// Two segments in network namespaces joined by a router namespace; nothing here reaches the
// machine's own interfaces.
//
//   site 10.83.0.0/16: upstream (nginx), site relay (holds the item), router (seg83 side)
//   branch 10.84.0.0/16: router (seg84 side), branch relay (holds nothing), 10 agents;
//   broadcast works inside the branch, as on any office LAN

#include "process.hpp"
#include "segment.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <random>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::size_t agent_count = 10;

class chain_segment : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported() || std::system("command -v nginx >/dev/null") != 0) {
      GTEST_SKIP() << "chain segment tests need root, iproute2, nftables and nginx";
    }
    char pattern[] = "/tmp/lanrelay-chain.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    work_ = pattern;
    fs::create_directories(work_ / "www");
    payload_ = work_ / "www" / "payload.bin";
    std::mt19937_64 random(84);
    std::vector<std::uint64_t> words((16 << 20) / sizeof(std::uint64_t));
    for (auto& w : words) {
      w = random();
    }
    std::ofstream(payload_, std::ios::binary)
        .write(reinterpret_cast<const char*>(words.data()),
               static_cast<std::streamsize>(words.size() * sizeof(std::uint64_t)));
    payload_size_ = fs::file_size(payload_);
    payload_sha_ = to_hex(sha256_of_file(payload_).value());

    site_.emplace(83);
    branch_.emplace(84);
    upstream_host_ = &site_->add_host("upstream");
    site_relay_ = &site_->add_host("siterelay");
    router_ = &site_->add_host("router");
    router_branch_ = &branch_->attach(*router_);
    branch_relay_ = &branch_->add_host("branchrelay");
    for (std::size_t i = 0; i < agent_count; ++i) {
      agents_.push_back(&branch_->add_host("agent" + std::to_string(i)));
    }
    run_checked("ip netns exec " + router_->netns + " sysctl -qw net.ipv4.ip_forward=1");
    for (const auto* h : {upstream_host_, site_relay_}) {
      run_checked("ip -n " + h->netns + " route add 10.84.0.0/16 via " + router_->address);
    }
    run_checked("ip -n " + branch_relay_->netns + " route add 10.83.0.0/16 via " +
                router_branch_->address);
    for (const auto* a : agents_) {
      run_checked("ip -n " + a->netns + " route add 10.83.0.0/16 via " + router_branch_->address);
    }
    start_upstream();
  }

  void TearDown() override {
    processes_.clear();
    branch_.reset();
    site_.reset();
    if (!work_.empty()) {
      fs::remove_all(work_);
    }
  }

  void start_upstream() {
    const auto& host = *upstream_host_;
    const fs::path dir = work_ / "nginx";
    fs::create_directories(dir / "logs");
    std::ofstream(dir / "nginx.conf") << "user root;\nworker_processes 1;\npid " << (dir / "nginx.pid").string()
                                      << ";\nerror_log " << (dir / "error.log").string()
                                      << ";\nevents { worker_connections 256; }\n"
                                      << "http { access_log " << (dir / "access.log").string()
                                      << "; sendfile on; server { listen " << host.address
                                      << ":80; root " << (work_ / "www").string() << "; } }\n";
    processes_.emplace_back(std::vector<std::string>{"/usr/sbin/nginx", "-c",
                                                     (dir / "nginx.conf").string(), "-p",
                                                     dir.string(), "-g", "daemon off;"},
                            process::options{.netns = host.netns, .output = dir / "out.log"});
    ASSERT_TRUE(eventually(60s, [&] {
      return !http_get_in_netns(host.netns, host.address, 80, "/payload.bin", 10s).empty();
    })) << read_file(dir / "error.log");
    fs::remove(dir / "access.log");  // the readiness probe does not count
    ::kill(static_cast<pid_t>(std::stol(read_file(dir / "nginx.pid"))), SIGUSR1);  // reopen logs
  }

  std::size_t upstream_requests() const {
    std::ifstream in(work_ / "nginx" / "access.log");
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line);) {
      lines += line.find("/payload.bin") != std::string::npos ? 1 : 0;
    }
    return lines;
  }

  // lanrelayd on `host` with its own state directory; `hold` puts the payload into its cache.
  void start_relay(const segment::host& host, bool hold, const std::string& discovery) {
    const fs::path dir = work_ / host.name;
    const fs::path state = dir / "state";
    fs::create_directories(state);
    if (hold) {
      auto store = content_store::open({.dir = state / "cache"}).value();
      ASSERT_TRUE(store->add_file(payload_, item_key{item_kind::file, "payload", "1"}));
    }
    const fs::path config = dir / "lanrelayd.toml";
    std::ofstream(config) << "[state]\ndir = \"" << state.string() << "\"\n"
                          << "[discovery]\n" << discovery << "[log]\nlevel = \"info\"\n";
    const fs::path log = dir / "lanrelayd.log";
    processes_.emplace_back(std::vector<std::string>{LANRELAYD_PATH, "--config", config.string()},
                            process::options{.netns = host.netns, .output = log});
    ASSERT_TRUE(eventually(60s, [&] {
      return read_file(log).find("event=discovery_listening") != std::string::npos &&
             !http_get_in_netns(host.netns, host.address, 4127, "/-/healthz", 10s).empty();
    })) << read_file(log);
  }

  struct fetch_result {
    int exit_status = -1;
    json::object report;
    bool bytes_ok = false;
    std::string log;
  };

  std::vector<fetch_result> fetch_all() {
    std::vector<process> running;
    std::vector<fs::path> outputs;
    for (const auto* agent : agents_) {
      const fs::path dir = work_ / agent->name;
      fs::create_directories(dir);
      std::vector<std::string> argv{LANRELAY_CLI_PATH, "fetch", "--kind", "file", "--name",
                                    "payload", "--version", "1", "--output",
                                    (dir / "payload.bin").string(), "--upstream",
                                    "http://" + upstream_host_->address + "/payload.bin",
                                    "--state-dir", (dir / "state").string(), "--json",
                                    "--log-level", "info", "--sha256", payload_sha_, "--size",
                                    std::to_string(payload_size_)};
      running.emplace_back(argv, process::options{.netns = agent->netns, .output = dir / "fetch.out"});
      outputs.push_back(dir);
    }
    std::vector<fetch_result> results;
    for (std::size_t i = 0; i < running.size(); ++i) {
      fetch_result r;
      const auto status = running[i].wait_for(120s);
      r.exit_status = status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
      r.log = read_file(outputs[i] / "fetch.out");
      const auto start = r.log.find("{\"source\"");
      if (start != std::string::npos) {
        boost::system::error_code ec;
        auto parsed = json::parse(r.log.substr(start, r.log.find('\n', start) - start), ec);
        if (!ec && parsed.is_object()) {
          r.report = parsed.as_object();
        }
      }
      const auto digest = sha256_of_file(outputs[i] / "payload.bin");
      r.bytes_ok = digest && to_hex(*digest) == payload_sha_;
      results.push_back(std::move(r));
    }
    return results;
  }

  json::object stats(const segment::host& host) {
    auto body = http_get_in_netns(host.netns, "127.0.0.1", 4127, "/-/stats");
    boost::system::error_code ec;
    auto parsed = json::parse(body, ec);
    return !ec && parsed.is_object() ? parsed.as_object() : json::object{};
  }

  static std::uint64_t number(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_number() ? v->to_number<std::uint64_t>() : ~std::uint64_t{0};
  }

  static std::string text(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
  }

  std::string relay_log(const segment::host& host) const {
    return read_file(work_ / host.name / "lanrelayd.log");
  }

  std::optional<segment> site_;
  std::optional<segment> branch_;
  const segment::host* upstream_host_ = nullptr;
  const segment::host* site_relay_ = nullptr;
  const segment::host* router_ = nullptr;
  const segment::host* router_branch_ = nullptr;
  const segment::host* branch_relay_ = nullptr;
  std::vector<const segment::host*> agents_;
  std::deque<process> processes_;
  fs::path work_;
  fs::path payload_;
  std::uint64_t payload_size_ = 0;
  std::string payload_sha_;
};

TEST_F(chain_segment, a_branch_relay_gets_the_item_from_its_parent_once_for_ten_agents) {
  start_relay(*site_relay_, true, "unicast_networks = [\"10.84.0.0/16\"]\n");
  start_relay(*branch_relay_, false, "parents = [\"" + site_relay_->address + "\"]\n");

  const auto results = fetch_all();
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_status, 0) << r.log;
    EXPECT_TRUE(r.bytes_ok) << r.log;
    EXPECT_EQ(text(r.report, "source"), "relay") << r.log;
    // From the branch relay (its IPv4 address, or its link-local IPv6 one: the IPv6 query is
    // answered too), not from the site relay across the router.
    const auto responder = text(r.report, "responder");
    EXPECT_TRUE(responder.find(branch_relay_->address + ":") == 0 ||
                responder.starts_with("[fe80:"))
        << r.log;
  }
  EXPECT_EQ(upstream_requests(), 0u);

  // The site relay carried the item over the router once: one transfer, one item's bytes.
  const auto site = stats(*site_relay_);
  EXPECT_EQ(number(site, "transfers_completed"), 1u) << relay_log(*site_relay_);
  EXPECT_EQ(number(site, "bytes_served"), payload_size_);
  // The branch relay served every agent, and pulled once.
  const auto branch = stats(*branch_relay_);
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
    EXPECT_EQ(text(r.report, "source"), "upstream") << r.log;
  }
  EXPECT_EQ(upstream_requests(), agent_count);
  EXPECT_EQ(number(stats(*site_relay_), "transfers_completed"), 0u);
}

}  // namespace
}  // namespace lanrelay::test
