// lanrelay through proxies that ask for a login, one per scheme (squid_fixture.hpp: Debian's
// squid with basic_ncsa_auth, digest_file_auth, ntlm_fake_auth, and negotiate_kerberos_auth
// against a KDC of the test's own), in front of an nginx origin with an ActiveUpdate tree:
//   - the relay's mirror syncs through the proxy, and with wrong credentials fails with an error
//     that names the proxy and the scheme, after a bounded number of requests (squid's access
//     log counts them: no retry in a tight loop);
//   - `lanrelay fetch --resolve-proxy` learns the proxy and its scheme from proxyhelperd's
//     signed answer (proxy auth field) and downloads through it; with wrong credentials it fails
//     clearly, again after a bounded number of requests;
//   - proxyhelperd's health check logs in with the proxy's scheme when it has credentials, and
//     wrong ones make the proxy unhealthy.
// squid_rig_test.cpp proves the same proxies with curl's command line.
//
// The client logs in to HTTP proxies with Basic only until the libcurl client replaces it: the
// other schemes are skipped while http_fetch answers proxy_auth_unsupported for them, and only
// then (nothing broader).

#include "lanrelay/segment/proxy_codec.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include "au_upstream.hpp"
#include "proxied_origin.hpp"
#include "kdc_fixture.hpp"
#include "relayd_harness.hpp"
#include "squid_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::string& pattern_v1 = proxied_origin::pattern;
constexpr std::string_view admin_token = "proxy-auth-test-token-0123456789";
// A mirror sync tries server.ini `attempts` (3) times, with a growing wait between tries; one try
// is one request for Basic and Digest with credentials sent at once, up to three for a client
// that first asks without credentials and then runs NTLM's or Negotiate's handshake. Four per
// try leaves room; a retry loop makes hundreds.
constexpr std::size_t max_requests_per_failed_sync = 3 * 4;

struct cli_result {
  int status = -1;
  std::string output;
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

class proxy_auth : public testing::TestWithParam<proxy_auth_scheme> {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-proxy-auth.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    // Reachable through squid only: a client that went direct gets 403.
    origin_ = std::make_unique<proxied_origin>(root_);
    ASSERT_NO_FATAL_FAILURE(origin_->start());
    if (GetParam() == proxy_auth_scheme::negotiate) {
      realm_ = std::make_unique<kdc>();
    }
    proxy_ = std::make_unique<squid>(GetParam(), realm_.get());
    // Exactly the client's refusal of the scheme, nothing broader: once the client logs in with
    // it, these tests run and must pass.
    if (client_refuses_scheme()) {
      GTEST_SKIP() << "http_fetch answers proxy_auth_unsupported for "
                   << to_string(GetParam()) << " proxies";
    }
  }
  void TearDown() override {
    helper_.reset();
    relay_.reset();
    proxy_.reset();
    realm_.reset();
    origin_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  std::string origin_base() const { return origin_->base(); }
  std::string scheme() const { return std::string(to_string(GetParam())); }
  bool negotiate() const { return GetParam() == proxy_auth_scheme::negotiate; }

  // Asked of a port where nothing listens, so that the question leaves no line in squid's log:
  // a client that refuses the scheme says so before connecting, one that does not fails to
  // connect.
  bool client_refuses_scheme() const {
    fetch_request request;
    request.url = boost::urls::url(origin_base() + "/activeupdate/server.ini");
    request.proxy = proxy_settings{
        boost::urls::url("http://alice:secret@localhost:" + std::to_string(free_port())), GetParam()};
    const auto response = http_fetch_blocking(request, [](std::span<const std::byte>) -> result<void> {
      return {};
    });
    return !response && response.error() == http_errc::proxy_auth_unsupported;
  }

  // Environment of a Kerberos client logging in from `keytab` alone (what the relay's keytab
  // setting and a unit's KRB5_CLIENT_KTNAME do); empty for the other schemes.
  std::vector<std::string> kerberos_environment(const fs::path& keytab) const {
    if (!negotiate()) {
      return {};
    }
    auto environment = proxy_->client_environment();
    environment.push_back("KRB5_CLIENT_KTNAME=" + keytab.string());
    environment.push_back("KRB5CCNAME=MEMORY:");
    return environment;
  }

  // The relay mirrors the origin through the proxy, logging in as `user` (`keytab`'s principal
  // for Negotiate). A failed sync is tried again an hour later: only the syncs a test asks for
  // reach the proxy after the first one.
  relayd& start_relay(const std::string& user, const std::string& password, const fs::path& keytab) {
    std::string config = "[admin]\ntoken = \"" + std::string(admin_token) + "\"\n";
    if (GetParam() != proxy_auth_scheme::basic) {
      config += "[upstream_proxy]\nauth = \"" + scheme() + "\"\n";
      if (negotiate()) {
        config += "keytab = \"" + keytab.string() + "\"\n";
      }
    }
    config += "[mirror]\npublic_url = \"http://relay.lan:4127\"\n";
    config += "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + origin_base() +
              "/activeupdate/\"\njitter = \"0ms\"\nretry = \"1h\"\nproxy = \"" +
              (negotiate() ? proxy_->url() : proxy_->url_with(user, password)) + "\"\n";
    relay_ = std::make_unique<relayd>(config, std::vector<std::string>{}, 0,
                                      kerberos_environment(keytab));
    return *relay_;
  }

  cli_result cli(std::vector<std::string> args, std::vector<std::string> environment = {}) {
    args.insert(args.begin(), LANRELAY_CLI_PATH);
    const fs::path out = root_ / ("cli-" + std::to_string(++cli_runs_) + ".out");
    environment.push_back("LANRELAY_ADMIN_TOKEN=" + std::string(admin_token));
    process p(args, {.output = out, .environment = environment});
    const auto status = p.wait_for(120s);
    return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, read_file(out)};
  }

  // proxyhelperd on loopback advertising the proxy with its scheme; returns its public key once
  // `event` is in its log. `extra` goes into the [[proxy]] table.
  std::string start_helper(const std::string& extra = "", std::vector<std::string> environment = {},
                           const std::string& event = "event=proxy_healthy") {
    helper_udp_ = free_port();
    const fs::path config = root_ / "proxyhelperd.toml";
    spew(config, "[state]\ndir = \"" + (root_ / "helper-state").string() + "\"\n" +
                     "[http]\nlisten = \"127.0.0.1\"\nport = 0\n[https]\nport = 0\n"
                     "[query]\nipv6 = false\n"
                     "[health]\nprobe_url = \"" + origin_base() + "/activeupdate/server.ini\"\n"
                     "interval = \"1h\"\ntimeout = \"10s\"\n"
                     "[[proxy]]\nurl = \"" + proxy_->url() + "\"\nneeds_credentials = true\n"
                     "auth = \"" + scheme() + "\"\n" + extra);
    const fs::path log = root_ / "proxyhelperd.log";
    helper_ = std::make_unique<process>(
        std::vector<std::string>{PROXYHELPERD_PATH, "--config", config.string(), "--query-port",
                                 std::to_string(helper_udp_)},
        process::options{.output = log, .environment = std::move(environment)});
    // By default: advertised once its first health check passed (anonymous: 407 from a proxy
    // that needs credentials counts as up).
    EXPECT_TRUE(eventually(60s, [&] { return read_file(log).find(event) != std::string::npos; }))
        << read_file(log);
    const auto text = read_file(log);
    const auto key_at = text.find("public key lanrelay-ed25519:");
    EXPECT_NE(key_at, std::string::npos) << text;
    return key_at == std::string::npos
               ? std::string()
               : text.substr(key_at + 11, text.find('\n', key_at) - key_at - 11);
  }

  // `lanrelay fetch` of the pattern from the origin with --resolve-proxy: the environment names a
  // proxy that refuses connections (step 1 fails), so the route comes from proxyhelperd.
  cli_result agent_fetch(const std::string& key, const std::string& user,
                         const std::string& password, const fs::path& keytab) {
    const std::string dead_proxy = "http://127.0.0.1:" + std::to_string(free_port());
    std::vector<std::string> environment = kerberos_environment(keytab);
    environment.push_back("http_proxy=" + dead_proxy);
    environment.push_back("https_proxy=" + dead_proxy);
    std::vector<std::string> args{
        "--log-level", "debug", "fetch", "--kind", "file", "--name", "pattern", "--version", "1",
        "--no-discovery", "--upstream", origin_base() + "/activeupdate/" + pattern_v1,
        "--output", (root_ / "fetched.zip").string(), "--state-dir", (root_ / "agent").string(),
        "--resolve-proxy", "--proxy-key", key, "--proxy-target", "127.0.0.1", "--proxy-port",
        std::to_string(helper_udp_), "--proxy-window", "3s", "--check-timeout", "10s"};
    if (!negotiate()) {
      environment.push_back("LR_PROXY_LOGIN=" + user + ":" + password);
      for (const char* a : {"--credentials-env", "LR_PROXY_LOGIN", "--credentials-proxy"}) {
        args.emplace_back(a);
      }
      args.push_back(proxy_->host_port());
    }
    return cli(args, environment);
  }

  fs::path root_;
  std::unique_ptr<proxied_origin> origin_;
  std::unique_ptr<kdc> realm_;
  std::unique_ptr<squid> proxy_;
  std::unique_ptr<relayd> relay_;
  std::unique_ptr<process> helper_;
  std::uint16_t helper_udp_ = 0;
  int cli_runs_ = 0;
};

TEST_P(proxy_auth, a_mirror_sync_goes_through_the_proxy) {
  relayd& relay = start_relay(squid::user, squid::password, proxy_->client_keytab());
  const auto entry = relay.first_sync_result();
  EXPECT_GT(entry.at("files").to_number<int>(), 0) << json::serialize(entry) << relay.log();
  const auto served = relay.request("GET", "/activeupdate/vendor/" + pattern_v1);
  ASSERT_EQ(served.message.result(), http::status::ok);
  EXPECT_TRUE(served.message.body() == slurp(origin_->tree().file(pattern_v1)));
  // Every file came through squid, as the user.
  std::size_t through = 0;
  for (const auto& line : proxy_->log()) {
    if (line.status == 200) {
      ++through;
      EXPECT_NE(line.user.find(squid::user), std::string::npos) << line.url;
    }
  }
  EXPECT_GE(through, 3u);  // server.ini, the pattern and its signature, the engine
}

TEST_P(proxy_auth, wrong_credentials_fail_the_sync_naming_the_proxy_and_the_scheme_without_a_retry_loop) {
  relayd& relay = start_relay(proxy_->wrong_user_name(), squid::wrong_password,
                              proxy_->wrong_keytab());
  const auto entry = relay.first_sync_result();
  ASSERT_TRUE(entry.at("last_error").is_string()) << json::serialize(entry);
  const std::string error(entry.at("last_error").as_string());
  EXPECT_NE(error.find(proxy_->host_port()), std::string::npos) << error;
  EXPECT_NE(lower(error).find(scheme()), std::string::npos) << error;
  EXPECT_EQ(error.find(squid::wrong_password), std::string::npos) << error;

  const auto first = proxy_->log();
  EXPECT_GE(first.size(), 1u);
  EXPECT_LE(first.size(), max_requests_per_failed_sync);
  for (const auto& line : first) {
    EXPECT_EQ(line.status, 407u) << line.url << " " << line.user;
  }
  // "Update now" fails the same way, with the same bound.
  const auto synced = cli({"mirror", "sync", "vendor", "--relay",
                           "127.0.0.1:" + std::to_string(relay.port())});
  EXPECT_NE(synced.status, 0) << synced.output;
  EXPECT_NE(synced.output.find(proxy_->host_port()), std::string::npos) << synced.output;
  EXPECT_NE(lower(synced.output).find(scheme()), std::string::npos) << synced.output;
  EXPECT_LE(proxy_->log().size(), first.size() + max_requests_per_failed_sync);
}

TEST_P(proxy_auth, an_agent_fetch_goes_through_the_proxy_proxyhelperd_names_with_its_scheme) {
  const auto key = start_helper();
  ASSERT_FALSE(key.empty());
  const auto fetched = agent_fetch(key, squid::user, squid::password, proxy_->client_keytab());
  ASSERT_EQ(fetched.status, 0) << fetched.output << read_file(root_ / "proxyhelperd.log");
  EXPECT_TRUE(slurp(root_ / "fetched.zip") == slurp(origin_->tree().file(pattern_v1)));
  EXPECT_NE(fetched.output.find("decided_by=proxyhelper"), std::string::npos) << fetched.output;
  bool through = false;
  for (const auto& line : proxy_->log()) {
    through = through || (line.status == 200 && line.url.find(pattern_v1) != std::string::npos &&
                          line.user.find(squid::user) != std::string::npos);
  }
  EXPECT_TRUE(through) << read_file(proxy_->dir() / "access.log");
}

TEST_P(proxy_auth, an_agent_fetch_with_wrong_credentials_fails_naming_the_proxy_and_the_scheme) {
  const auto key = start_helper();
  ASSERT_FALSE(key.empty());
  const auto before = proxy_->log().size();
  const auto fetched = agent_fetch(key, proxy_->wrong_user_name(), squid::wrong_password,
                                   proxy_->wrong_keytab());
  EXPECT_NE(fetched.status, 0) << fetched.output;
  EXPECT_FALSE(fs::exists(root_ / "fetched.zip"));
  EXPECT_NE(fetched.output.find(proxy_->host_port()), std::string::npos) << fetched.output;
  EXPECT_NE(lower(fetched.output).find(scheme()), std::string::npos) << fetched.output;
  EXPECT_EQ(fetched.output.find(squid::wrong_password), std::string::npos) << fetched.output;
  const auto after = proxy_->log();
  EXPECT_LE(after.size() - before, max_requests_per_failed_sync);
  for (std::size_t i = before; i < after.size(); ++i) {
    EXPECT_EQ(after[i].status, 407u) << after[i].url << " " << after[i].user;
  }
}

// proxyhelperd's check logs in with the proxy's scheme when it has credentials: a user and
// password from check_credentials_file, or Kerberos from KRB5_CLIENT_KTNAME for Negotiate. Right
// ones pass (squid logs the probe as the user); wrong ones make the proxy unhealthy, though a
// 407 to an anonymous check would count as up.
TEST_P(proxy_auth, proxyhelperds_health_check_logs_in_with_the_scheme) {
  const fs::path credentials = root_ / "check.cred";
  spew(credentials, std::string(squid::user) + ":" + squid::password + "\n");
  fs::permissions(credentials, fs::perms::owner_read | fs::perms::owner_write);
  const std::string extra =
      negotiate() ? "" : "check_credentials_file = \"" + credentials.string() + "\"\n";
  ASSERT_FALSE(start_helper(extra, kerberos_environment(proxy_->client_keytab())).empty());
  const auto log = proxy_->log_once([](const squid_request& line) { return line.status == 200; });
  const auto probe = std::find_if(log.begin(), log.end(),
                                  [](const squid_request& line) { return line.status == 200; });
  ASSERT_NE(probe, log.end()) << read_file(root_ / "proxyhelperd.log");
  EXPECT_NE(probe->url.find("/activeupdate/server.ini"), std::string::npos) << probe->url;
  EXPECT_NE(probe->user.find(squid::user), std::string::npos) << probe->user;
}

TEST_P(proxy_auth, proxyhelperds_health_check_with_wrong_credentials_marks_the_proxy_unhealthy) {
  const fs::path credentials = root_ / "check.cred";
  spew(credentials, proxy_->wrong_user_name() + ":" + squid::wrong_password + "\n");
  fs::permissions(credentials, fs::perms::owner_read | fs::perms::owner_write);
  const std::string extra =
      negotiate() ? "" : "check_credentials_file = \"" + credentials.string() + "\"\n";
  start_helper(extra, kerberos_environment(proxy_->wrong_keytab()), "event=proxy_unhealthy");
  const auto text = read_file(root_ / "proxyhelperd.log");
  EXPECT_EQ(text.find("event=proxy_healthy"), std::string::npos) << text;
  EXPECT_EQ(text.find(squid::wrong_password), std::string::npos) << text;
  for (const auto& line : proxy_->log_once([](const squid_request& l) { return l.status == 407; })) {
    EXPECT_EQ(line.status, 407u) << line.url << " " << line.user;
  }
}

// proxy = "auto" with the proxy from the relay's environment (http_proxy): the configured scheme
// logs in to it because the configured credentials are bound to it (credentials_proxy; for
// Negotiate credentials_proxy alone, with no credentials file, which the relay once refused).
// The segment is not asked.
TEST_P(proxy_auth, a_source_with_proxy_auto_logs_in_to_the_bound_environment_proxy_with_the_configured_scheme) {
  std::string config = "[upstream_proxy]\nask_segment = false\ncheck_timeout = \"10s\"\nauth = \"" +
                       scheme() + "\"\ncredentials_proxy = \"" + proxy_->host_port() + "\"\n";
  if (negotiate()) {
    config += "keytab = \"" + proxy_->client_keytab().string() + "\"\n";
  } else {
    const fs::path credentials = root_ / "relay.cred";
    spew(credentials, std::string(squid::user) + ":" + squid::password + "\n");
    fs::permissions(credentials, fs::perms::owner_read | fs::perms::owner_write);
    config += "credentials_file = \"" + credentials.string() + "\"\n";
  }
  config += "[mirror]\npublic_url = \"http://relay.lan:4127\"\n";
  config += "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + origin_base() +
            "/activeupdate/\"\njitter = \"0ms\"\nretry = \"1h\"\nproxy = \"auto\"\n";
  auto environment = kerberos_environment(proxy_->client_keytab());
  environment.push_back("http_proxy=" + proxy_->url());
  relay_ = std::make_unique<relayd>(config, std::vector<std::string>{}, 0, environment);
  const auto entry = relay_->first_sync_result();
  EXPECT_GT(entry.at("files").to_number<int>(), 0) << json::serialize(entry) << relay_->log();
  EXPECT_NE(relay_->log().find("(environment)"), std::string::npos) << relay_->log();
  std::size_t through = 0;
  for (const auto& line : proxy_->log()) {
    if (line.status == 200) {
      ++through;
      EXPECT_NE(line.user.find(squid::user), std::string::npos) << line.url;
    }
  }
  EXPECT_GE(through, 3u);
}

INSTANTIATE_TEST_SUITE_P(schemes, proxy_auth,
                         testing::Values(proxy_auth_scheme::basic, proxy_auth_scheme::digest,
                                         proxy_auth_scheme::ntlm, proxy_auth_scheme::negotiate),
                         [](const testing::TestParamInfo<proxy_auth_scheme>& scheme_info) {
                           return std::string(to_string(scheme_info.param));
                         });

}  // namespace
}  // namespace lanrelay::test
