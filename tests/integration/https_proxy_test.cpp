// lanrelay through an HTTPS proxy (TLS to the proxy itself, `https://proxy:3129`): Debian's squid
// (squid-openssl) with an https_port whose certificate a test CA signed (squid_fixture.hpp,
// listen::http_and_https), asking for a Basic login, in front of an nginx origin that only squid
// can reach:
//   - http_fetch trusts the proxy through proxy_settings::ca_file and logs in over the TLS;
//   - the relay's mirror syncs through it with [upstream_proxy] ca_file;
//   - `lanrelay fetch --resolve-proxy` takes it from the environment with --proxy-ca-file;
//   - a proxy certificate the configured CA did not sign (and one checked against the system
//     store) fails before any request reaches squid, with an error that names the proxy's TLS hop
//     and its address, in the client, the mirror status and the agent's route report.
// squid_rig_test.cpp proves the same port with curl's command line.

#include "lanrelay/upstream/http_client.hpp"

#include "au_upstream.hpp"
#include "proxied_origin.hpp"
#include "relayd_harness.hpp"
#include "squid_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::string& pattern_v1 = proxied_origin::pattern;

struct cli_result {
  int status = -1;
  std::string output;
};

class https_proxy : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-https-proxy.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    // Reachable through squid only: a client that went direct gets 403.
    origin_ = std::make_unique<proxied_origin>(root_);
    ASSERT_NO_FATAL_FAILURE(origin_->start());
    proxy_ = std::make_unique<squid>(proxy_auth_scheme::basic, nullptr,
                                     squid::listen::http_and_https);
  }
  void TearDown() override {
    relay_.reset();
    proxy_.reset();
    origin_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  std::string origin_base() const { return origin_->base(); }

  std::string good_proxy_url() const { return proxy_->tls_url_with(squid::user, squid::password); }

  // One GET of server.ini through the HTTPS proxy, its CA file `ca` (none: the system store).
  result<fetch_response> fetch_index(const std::optional<fs::path>& ca) {
    fetch_request request;
    request.url = boost::urls::url(origin_base() + "/activeupdate/server.ini");
    request.proxy = proxy_settings{.proxy = boost::urls::url(good_proxy_url()),
                                   .auth = proxy_auth_scheme::basic,
                                   .address = std::nullopt,
                                   .ca_file = ca};
    body_.clear();
    last_request_ = request;
    return http_fetch_blocking(request, [this](std::span<const std::byte> chunk) -> result<void> {
      body_.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
      return {};
    });
  }

  // The relay mirrors the origin through the HTTPS proxy, trusting `ca` for it. A failed sync is
  // tried again an hour later.
  relayd& start_relay(const fs::path& ca) {
    const std::string config =
        "[upstream_proxy]\nca_file = \"" + ca.string() + "\"\n"
        "[mirror]\npublic_url = \"http://relay.lan:4127\"\n"
        "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + origin_base() +
        "/activeupdate/\"\njitter = \"0ms\"\nretry = \"1h\"\nproxy = \"" + good_proxy_url() +
        "\"\n";
    relay_ = std::make_unique<relayd>(config);
    return *relay_;
  }

  // `lanrelay fetch --resolve-proxy` of the pattern: the environment names the HTTPS proxy (step
  // 1), the credentials are bound to it, the segment is not asked.
  cli_result agent_fetch(const fs::path& proxy_ca) {
    const fs::path out = root_ / ("cli-" + std::to_string(++cli_runs_) + ".out");
    process p({LANRELAY_CLI_PATH, "--log-level", "debug", "fetch", "--kind", "file", "--name",
               "pattern", "--version", "1", "--no-discovery", "--upstream",
               origin_base() + "/activeupdate/" + pattern_v1, "--output",
               (root_ / "fetched.zip").string(), "--state-dir", (root_ / "agent").string(),
               "--resolve-proxy", "--no-segment", "--check-timeout", "10s", "--credentials-env",
               "LR_PROXY_LOGIN", "--credentials-proxy", proxy_->tls_host_port(),
               "--proxy-ca-file", proxy_ca.string()},
              {.output = out,
               .environment = {"http_proxy=" + proxy_->tls_url(),
                               "LR_PROXY_LOGIN=" + std::string(squid::user) + ":" +
                                   squid::password}});
    const auto status = p.wait_for(120s);
    return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, read_file(out)};
  }

  // "TLS to the proxy at localhost:<TLS port> failed: ": the words of the proxy's TLS hop.
  std::string proxy_tls_hop() const {
    return "TLS to the proxy at " + proxy_->tls_host_port() + " failed: ";
  }

  fs::path root_;
  std::unique_ptr<proxied_origin> origin_;
  std::unique_ptr<squid> proxy_;
  std::unique_ptr<relayd> relay_;
  std::string body_;
  fetch_request last_request_;
  int cli_runs_ = 0;
};

TEST_F(https_proxy, http_fetch_trusts_the_proxy_by_its_ca_file_and_logs_in_over_tls) {
  const auto response = fetch_index(proxy_->ca_file());
  ASSERT_TRUE(response) << describe_fetch_error(last_request_, response.error());
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(body_, origin_->index());
  const auto log = proxy_->log_once([](const squid_request& line) { return line.status == 200; });
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].user, squid::user);
  EXPECT_NE(log[0].url.find("/activeupdate/server.ini"), std::string::npos) << log[0].url;
}

TEST_F(https_proxy, a_proxy_certificate_the_ca_file_did_not_sign_fails_at_the_proxys_tls_hop) {
  for (const auto& ca : {std::optional<fs::path>(proxy_->other_ca_file()),
                         std::optional<fs::path>()}) {
    const auto response = fetch_index(ca);
    ASSERT_FALSE(response);
    EXPECT_EQ(response.error(), http_errc::proxy_certificate_untrusted)
        << response.error().message();
    const auto text = describe_fetch_error(last_request_, response.error());
    EXPECT_TRUE(text.starts_with(proxy_tls_hop())) << text;
    EXPECT_NE(text.find("not trusted"), std::string::npos) << text;
    EXPECT_EQ(text.find(squid::password), std::string::npos) << text;
  }
  // Not a PEM file: refused before connecting, as the proxy's CA file.
  spew(root_ / "not-a-ca.pem", "not a certificate\n");
  const auto response = fetch_index(root_ / "not-a-ca.pem");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), http_errc::bad_proxy_ca_file);
  EXPECT_TRUE(describe_fetch_error(last_request_, response.error()).starts_with(proxy_tls_hop()));
  // No request reached squid: the TLS handshake stopped each one.
  EXPECT_TRUE(proxy_->log().empty()) << read_file(proxy_->dir() / "access.log");
}

TEST_F(https_proxy, a_mirror_sync_goes_through_the_https_proxy) {
  relayd& relay = start_relay(proxy_->ca_file());
  const auto entry = relay.first_sync_result();
  EXPECT_GT(entry.at("files").to_number<int>(), 0) << json::serialize(entry) << relay.log();
  const auto served = relay.request("GET", "/activeupdate/vendor/" + pattern_v1);
  ASSERT_EQ(served.message.result(), http::status::ok);
  EXPECT_TRUE(served.message.body() == slurp(origin_->tree().file(pattern_v1)));
  std::size_t through = 0;
  for (const auto& line : proxy_->log()) {
    if (line.status == 200) {
      ++through;
      EXPECT_EQ(line.user, squid::user) << line.url;
    }
  }
  EXPECT_GE(through, 3u);  // server.ini, the pattern and its signature, the engine
}

TEST_F(https_proxy, a_mirror_sync_with_a_proxy_certificate_its_ca_did_not_sign_names_the_proxys_tls) {
  relayd& relay = start_relay(proxy_->other_ca_file());
  const auto entry = relay.first_sync_result();
  ASSERT_TRUE(entry.at("last_error").is_string()) << json::serialize(entry);
  const std::string error(entry.at("last_error").as_string());
  EXPECT_NE(error.find(proxy_tls_hop()), std::string::npos) << error;
  EXPECT_NE(error.find("not trusted"), std::string::npos) << error;
  EXPECT_EQ(error.find(squid::password), std::string::npos) << error;
  EXPECT_EQ(entry.at("files").to_number<int>(), 0);
  EXPECT_TRUE(proxy_->log().empty()) << read_file(proxy_->dir() / "access.log");
}

TEST_F(https_proxy, an_agent_fetch_goes_through_the_https_proxy_from_the_environment) {
  const auto fetched = agent_fetch(proxy_->ca_file());
  ASSERT_EQ(fetched.status, 0) << fetched.output;
  EXPECT_TRUE(slurp(root_ / "fetched.zip") == slurp(origin_->tree().file(pattern_v1)));
  EXPECT_NE(fetched.output.find("decided_by=environment"), std::string::npos) << fetched.output;
  EXPECT_EQ(fetched.output.find(squid::password), std::string::npos) << fetched.output;
  bool through = false;
  for (const auto& line : proxy_->log()) {
    through = through || (line.status == 200 && line.url.find(pattern_v1) != std::string::npos &&
                          line.user == squid::user);
  }
  EXPECT_TRUE(through) << read_file(proxy_->dir() / "access.log");
}

TEST_F(https_proxy, an_agent_with_another_proxy_ca_skips_the_proxy_naming_its_tls_hop) {
  const auto fetched = agent_fetch(proxy_->other_ca_file());
  EXPECT_NE(fetched.status, 0) << fetched.output;
  EXPECT_FALSE(fs::exists(root_ / "fetched.zip"));
  EXPECT_NE(fetched.output.find(proxy_tls_hop()), std::string::npos) << fetched.output;
  EXPECT_NE(fetched.output.find("not trusted"), std::string::npos) << fetched.output;
  EXPECT_EQ(fetched.output.find(squid::password), std::string::npos) << fetched.output;
  EXPECT_TRUE(proxy_->log().empty()) << read_file(proxy_->dir() / "access.log");
}

}  // namespace
}  // namespace lanrelay::test
