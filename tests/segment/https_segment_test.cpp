// HTTPS on the segment, pinned through the site key: an agent that pins the site key fetches the
// relay's catalog and an item over HTTPS; a machine presenting another certificate at the relay's
// address is refused; admin calls from another host are refused over plain HTTP and accepted over
// pinned HTTPS. Real lanrelayd and `lanrelay` in network namespaces.

#include "segment_fixture.hpp"

#include "lanrelay/base/site_key.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string admin_token = "segment-admin-token-0123456789";

class https_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-https-segment", {})) {
      return;
    }
    write_payload(700 * 1024, 11);
    auto key = site_key::generate();
    ASSERT_TRUE(key);
    fs::create_directories(work_ / "keys");
    ASSERT_TRUE(key->save(work_ / "keys" / "site.key"));
    site_public_ = key->public_key().to_string();
    lan_ = &add_segment(81);
  }

  // lanrelayd on `host` as `name`, holding the payload; `signed_catalog`: with the site key.
  // Returns its log.
  fs::path start_relay(const segment::host& host, const std::string& name, bool signed_catalog,
                       const std::string& extra_config = "") {
    hold_payload(state_dir(name));
    start_relay_daemon(host, name,
                       "[log]\nlevel = \"debug\"\n[admin]\ntoken = \"" + admin_token + "\"\n" +
                           extra_config +
                           (signed_catalog ? "[trust]\nsite_key = \"" +
                                                 (work_ / "keys" / "site.key").string() + "\"\n"
                                           : ""));
    return daemon_log(name);
  }

  cli_run run(const segment::host& where, const std::string& name,
              const std::vector<std::string>& args,
              const std::vector<std::string>& environment = {}) {
    return run_lanrelay(args, work_ / (name + ".out"), where.netns, environment);
  }

  cli_run fetch(const segment::host& agent, const std::string& name,
                const std::string& mode = "require") {
    return run(agent, name,
               {"fetch", "--kind", "file", "--name", "payload", "--version", "1", "--output",
                (work_ / "agent" / "payload.bin").string(), "--state-dir",
                (work_ / "agent" / "state").string(), "--site-key", site_public_, "--relay-https",
                mode, "--busy-patience", "0s", "--json", "--log-level", "debug"});
  }

  std::string site_public_;
  segment* lan_ = nullptr;
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
  auto report = fetch_report(first.output);
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
  EXPECT_EQ(fetch_report(second.output).at("source").as_string(), "relay");

  // Another machine at the relay's address: same item, its own certificate, no site key. The
  // agent's pin refuses its HTTPS, its plain HTTP has no signed catalog, so nothing it offers is
  // trusted and (with no upstream) the fetch fails.
  processes_.back().kill();  // the relay, the test's only process
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
