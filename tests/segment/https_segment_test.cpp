// HTTPS on the segment, pinned through the site key: an agent that pins the site key fetches the
// relay's catalog and an item over HTTPS; a machine presenting another certificate at the relay's
// address is refused; admin calls from another host are refused over plain HTTP and accepted over
// pinned HTTPS. Real lanrelayd and `lanrelay` in network namespaces.

#include "process.hpp"
#include "segment.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/site_key.hpp"
#include "lanrelay/content/store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <random>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string admin_token = "segment-admin-token-0123456789";

class https_segment : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported()) {
      GTEST_SKIP() << "segment tests need root, iproute2 and nftables";
    }
    char pattern[] = "/tmp/lanrelay-https-segment.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    work_ = pattern;
    std::mt19937_64 random(11);
    payload_.resize(700 * 1024);
    for (auto& c : payload_) {
      c = static_cast<char>(random());
    }
    payload_sha_ = to_hex(sha256_of(std::as_bytes(std::span(payload_.data(), payload_.size()))));
    auto key = site_key::generate();
    ASSERT_TRUE(key);
    fs::create_directories(work_ / "keys");
    ASSERT_TRUE(key->save(work_ / "keys" / "site.key"));
    site_public_ = key->public_key().to_string();
    lan_.emplace(81);
  }

  void TearDown() override {
    relay_.reset();
    lan_.reset();
    if (!work_.empty()) {
      fs::remove_all(work_);
    }
  }

  // lanrelayd on `host` holding the payload; `signed_catalog`: with the site key. Returns its log.
  fs::path start_relay(const segment::host& host, const std::string& name, bool signed_catalog,
                       const std::string& extra_config = "") {
    const fs::path state = work_ / name / "state";
    fs::create_directories(state);
    {
      auto store = content_store::open({.dir = state / "cache"}).value();
      auto writer = store->begin_add(item_key{item_kind::file, "payload", "1"}).value();
      EXPECT_TRUE(writer.write(std::as_bytes(std::span(payload_.data(), payload_.size()))));
      EXPECT_TRUE(writer.commit(payload_.size(), std::nullopt));
    }
    const fs::path config = work_ / name / "lanrelayd.toml";
    std::ofstream out(config);
    out << "[state]\ndir = \"" << state.string() << "\"\n[log]\nlevel = \"debug\"\n"
        << "[admin]\ntoken = \"" << admin_token << "\"\n" << extra_config;
    if (signed_catalog) {
      out << "[trust]\nsite_key = \"" << (work_ / "keys" / "site.key").string() << "\"\n";
    }
    out.close();
    const fs::path log = work_ / name / "lanrelayd.log";
    relay_.emplace(std::vector<std::string>{LANRELAYD_PATH, "--config", config.string()},
                   process::options{.netns = host.netns, .output = log});
    EXPECT_TRUE(eventually(60s, [&] {
      return read_file(log).find("event=discovery_listening") != std::string::npos &&
             !http_get_in_netns(host.netns, host.address, 4127, "/-/healthz", 10s).empty();
    })) << read_file(log);
    return log;
  }

  struct run_result {
    int exit_status = -1;
    std::string output;
  };

  run_result run(const segment::host& where, const std::string& name,
                 std::vector<std::string> args, std::vector<std::string> environment = {}) {
    args.insert(args.begin(), LANRELAY_CLI_PATH);
    const fs::path out = work_ / (name + ".out");
    fs::remove(out);
    process p(args, process::options{.netns = where.netns, .output = out,
                                     .environment = std::move(environment)});
    const auto status = p.wait_for(60s);
    return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, read_file(out)};
  }

  run_result fetch(const segment::host& agent, const std::string& name,
                   const std::string& mode = "require") {
    return run(agent, name,
               {"fetch", "--kind", "file", "--name", "payload", "--version", "1", "--output",
                (work_ / "agent" / "payload.bin").string(), "--state-dir",
                (work_ / "agent" / "state").string(), "--site-key", site_public_, "--relay-https",
                mode, "--busy-patience", "0s", "--json", "--log-level", "debug"});
  }

  static json::object report_of(const std::string& output) {
    const auto start = output.find("{\"source\"");
    if (start == std::string::npos) {
      return {};
    }
    boost::system::error_code ec;
    auto parsed = json::parse(output.substr(start, output.find('\n', start) - start), ec);
    return !ec && parsed.is_object() ? parsed.as_object() : json::object{};
  }

  fs::path work_;
  std::string payload_;
  std::string payload_sha_;
  std::string site_public_;
  std::optional<segment> lan_;
  std::optional<process> relay_;
};

TEST_F(https_segment, a_pinned_agent_fetches_over_https_and_refuses_another_certificate) {
  const auto& relay_host = lan_->add_host("relay");
  const auto& agent = lan_->add_host("agent");
  // The relay answers an IPv4 broadcast and an IPv6 link-local query alike, and the agent takes
  // either offer at random; what it remembers of the relay's certificate is kept per address.
  // This test follows one address over three runs, so its agent asks over IPv4 only.
  const std::string ipv4_only = "ip netns exec " + agent.netns +
                                " sysctl -qw net.ipv6.conf.all.disable_ipv6=1";
  ASSERT_EQ(std::system(ipv4_only.c_str()), 0);
  const auto log = start_relay(relay_host, "relay", true);
  fs::create_directories(work_ / "agent" / "state");

  // First run: the catalog comes over HTTP (bootstrap), is verified with the site key, and names
  // the relay's certificate; the item then comes over HTTPS pinned to it.
  const auto first = fetch(agent, "fetch1");
  ASSERT_EQ(first.exit_status, 0) << first.output << read_file(log);
  auto report = report_of(first.output);
  EXPECT_EQ(report.at("source").as_string(), "relay") << first.output;
  EXPECT_EQ(report.at("sha256").as_string(), payload_sha_);
  const auto& attempts = report.at("attempts").as_array();
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ(std::string(attempts.back().at("url").as_string())
                .rfind("https://" + relay_host.address + ":4128/", 0),
            0u)
      << first.output;
  EXPECT_TRUE(fs::exists(work_ / "agent" / "state" / "relay-tls.json"));

  // Second run: the relay is known, so the catalog itself comes over pinned HTTPS too.
  const auto second = fetch(agent, "fetch2");
  ASSERT_EQ(second.exit_status, 0) << second.output;
  EXPECT_NE(second.output.find("event=catalog_fetched url=https://" + relay_host.address +
                               ":4128/-/catalog.signed"),
            std::string::npos)
      << second.output;
  EXPECT_EQ(report_of(second.output).at("source").as_string(), "relay");

  // Another machine at the relay's address: same item, its own certificate, no site key. The
  // agent's pin refuses its HTTPS, its plain HTTP has no signed catalog, so nothing it offers is
  // trusted and (with no upstream) the fetch fails.
  relay_.reset();
  start_relay(relay_host, "impostor", false);
  const auto third = fetch(agent, "fetch3");
  EXPECT_NE(third.exit_status, 0) << third.output;
  EXPECT_NE(third.output.find("not the one pinned"), std::string::npos) << third.output;
  EXPECT_EQ(third.output.find("\"source\":\"relay\""), std::string::npos) << third.output;
}

TEST_F(https_segment, admin_calls_from_another_host_need_pinned_https) {
  const auto& relay_host = lan_->add_host("relay");
  const auto& admin = lan_->add_host("admin");
  const auto& stranger = lan_->add_host("stranger");
  // The admin's machine may use monitoring and admin endpoints; the stranger's may not.
  start_relay(relay_host, "relay", true, "read_networks = [\"" + admin.address + "\"]\n");
  const std::vector<std::string> token_env{"LANRELAY_ADMIN_TOKEN=" + admin_token};

  // Plain HTTP from another host, with the right token: refused before the token is looked at.
  const auto plain = run(admin, "sync-plain",
                         {"mirror", "sync", "nosuch", "--relay", relay_host.address}, token_env);
  EXPECT_NE(plain.exit_status, 0);
  EXPECT_NE(plain.output.find("HTTPS only"), std::string::npos) << plain.output;

  // Pinned HTTPS: the admin request passes the access check (the relay then says it has no such
  // mirror source).
  const auto secure = run(admin, "sync-https",
                          {"mirror", "sync", "nosuch", "--relay", relay_host.address,
                           "--site-key", site_public_},
                          token_env);
  EXPECT_NE(secure.exit_status, 0);
  EXPECT_NE(secure.output.find("no mirror source 'nosuch'"), std::string::npos) << secure.output;

  // Reading over pinned HTTPS from a listed network works.
  const auto status = run(admin, "status", {"status", relay_host.address, "--site-key",
                                            site_public_, "--json"});
  EXPECT_EQ(status.exit_status, 0) << status.output;
  EXPECT_NE(status.output.find("\"certificate_sha256\""), std::string::npos) << status.output;

  // Monitoring is off for everyone else, HTTPS or not; health stays open.
  const auto refused = run(stranger, "status-stranger",
                           {"status", relay_host.address, "--site-key", site_public_});
  EXPECT_NE(refused.exit_status, 0);
  EXPECT_NE(refused.output.find("403"), std::string::npos) << refused.output;
  EXPECT_EQ(http_get_in_netns(stranger.netns, relay_host.address, 4127, "/-/healthz", 10s).substr(0, 2), "ok");
  EXPECT_EQ(http_get_in_netns(stranger.netns, relay_host.address, 4127, "/-/stats", 10s).find("{"),
            std::string::npos);
}

}  // namespace
}  // namespace lanrelay::test
