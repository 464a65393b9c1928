// The authenticating proxies of squid_fixture.hpp, proved with Debian's curl command line before
// lanrelay is tested through them (proxy_auth_test.cpp): for each scheme, the right credentials
// reach an nginx origin on 127.0.0.1 through squid, and wrong ones get 407. When one of these
// fails, the rig is broken, not lanrelay.

#include "au_upstream.hpp"
#include "kdc_fixture.hpp"
#include "process.hpp"
#include "squid_fixture.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* curl_path = "/usr/bin/curl";
const std::string origin_body = "through the proxy\n";

struct curl_result {
  unsigned status = 0;  // the last HTTP status curl saw (407 when the proxy refused)
  std::string body;
  std::string output;
};

class squid_rig : public testing::TestWithParam<proxy_auth_scheme> {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/lanrelay-squid-rig.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = new fs::path(pattern);
    spew(*root_ / "www" / "hello.txt", origin_body);
    origin_ = new nginx(*root_ / "nginx", *root_ / "www");
    origin_->start();
  }
  static void TearDownTestSuite() {
    delete origin_;
    origin_ = nullptr;
    std::error_code ignored;
    fs::remove_all(*root_, ignored);
    delete root_;
    root_ = nullptr;
  }

  void SetUp() override {
    if (GetParam() == proxy_auth_scheme::negotiate) {
      realm_ = std::make_unique<kdc>();
    }
    proxy_ = std::make_unique<squid>(GetParam(), realm_.get());
  }

  static std::string origin_url() {
    return "http://127.0.0.1:" + std::to_string(origin_->port()) + "/hello.txt";
  }

  static const char* curl_scheme_option(proxy_auth_scheme scheme) {
    switch (scheme) {
      case proxy_auth_scheme::basic:
        return "--proxy-basic";
      case proxy_auth_scheme::digest:
        return "--proxy-digest";
      case proxy_auth_scheme::ntlm:
        return "--proxy-ntlm";
      case proxy_auth_scheme::negotiate:
        return "--proxy-negotiate";
    }
    return "--proxy-basic";
  }

  // curl through the proxy with `user_password` ("user:password"; ":" for Negotiate, which takes
  // the Kerberos credentials of the environment).
  curl_result curl(const std::string& user_password, std::vector<std::string> environment = {}) {
    const int run = ++runs_;
    const fs::path body = *root_ / ("body-" + std::to_string(run));
    const fs::path out = *root_ / ("curl-" + std::to_string(run) + ".out");
    for (auto& e : proxy_->client_environment()) {
      environment.push_back(e);
    }
    process p({curl_path, "-sS", "--max-time", "60", "-o", body.string(), "-w", "%{http_code}",
               "-x", proxy_->url(), curl_scheme_option(GetParam()), "-U", user_password,
               origin_url()},
              {.output = out, .environment = environment});
    const auto status = p.wait_for(120s);
    curl_result r;
    r.output = read_file(out);
    r.body = read_file(body);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << r.output;
    try {
      r.status = static_cast<unsigned>(std::stoul(r.output.substr(r.output.size() - 3)));
    } catch (const std::exception&) {
      ADD_FAILURE() << "curl printed no status: " << r.output;
    }
    return r;
  }

  // The environment of a Kerberos client holding `keytab`'s principal: a ticket from kinit in a
  // file cache of its own.
  std::vector<std::string> kerberos_client(const fs::path& keytab, const char* principal) {
    const auto cache = realm_->kinit(principal, keytab);
    return {"KRB5CCNAME=FILE:" + cache.string()};
  }

  static fs::path* root_;
  static nginx* origin_;
  static int runs_;
  std::unique_ptr<kdc> realm_;
  std::unique_ptr<squid> proxy_;
};

fs::path* squid_rig::root_ = nullptr;
nginx* squid_rig::origin_ = nullptr;
int squid_rig::runs_ = 0;

TEST_P(squid_rig, the_right_credentials_reach_the_origin) {
  curl_result r;
  if (GetParam() == proxy_auth_scheme::negotiate) {
    r = curl(":", kerberos_client(proxy_->client_keytab(), squid::user));
  } else {
    r = curl(std::string(squid::user) + ":" + squid::password);
  }
  EXPECT_EQ(r.status, 200u) << r.output << read_file(proxy_->dir() / "cache.log");
  EXPECT_EQ(r.body, origin_body);
  // The request that went through names the user (NTLM and Negotiate: after a 407 challenge).
  const auto log = proxy_->log_once([](const squid_request& line) { return line.status == 200; });
  const auto passed = std::find_if(log.begin(), log.end(),
                                   [](const squid_request& line) { return line.status == 200; });
  ASSERT_NE(passed, log.end());
  EXPECT_NE(passed->user.find(squid::user), std::string::npos) << passed->user;
}

TEST_P(squid_rig, wrong_credentials_get_407) {
  curl_result r;
  if (GetParam() == proxy_auth_scheme::negotiate) {
    r = curl(":", kerberos_client(proxy_->wrong_keytab(), squid::wrong_user));
  } else {
    r = curl(proxy_->wrong_user_name() + ":" + squid::wrong_password);
  }
  EXPECT_EQ(r.status, 407u) << r.output;
  const auto log = proxy_->log_once([](const squid_request& line) { return line.status == 407; });
  ASSERT_FALSE(log.empty());
  for (const auto& line : log) {
    EXPECT_EQ(line.status, 407u) << line.url << " " << line.user;
  }
}

TEST_P(squid_rig, no_credentials_get_407) {
  process p({curl_path, "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "-x",
             proxy_->url(), origin_url()},
            {.output = *root_ / "anonymous.out"});
  ASSERT_TRUE(p.wait_for(120s));
  EXPECT_EQ(read_file(*root_ / "anonymous.out"), "407");
  fs::remove(*root_ / "anonymous.out");
}

// What lanrelay does with `[upstream_proxy] keytab` (KRB5_CLIENT_KTNAME): the GSS-API library
// gets the ticket from the client keytab itself, with no kinit and no credential cache on disk.
TEST(squid_rig_negotiate, a_client_keytab_alone_logs_in) {
  char pattern[] = "/tmp/lanrelay-squid-rig-kt.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path root = pattern;
  spew(root / "www" / "hello.txt", origin_body);
  nginx origin(root / "nginx", root / "www");
  origin.start();
  kdc realm;
  squid proxy(proxy_auth_scheme::negotiate, &realm);
  auto environment = proxy.client_environment();
  environment.push_back("KRB5CCNAME=MEMORY:");
  environment.push_back("KRB5_CLIENT_KTNAME=" + proxy.client_keytab().string());
  process p({curl_path, "-sS", "--max-time", "60", "-o", (root / "body").string(), "-w",
             "%{http_code}", "-x", proxy.url(), "--proxy-negotiate", "-U", ":",
             "http://127.0.0.1:" + std::to_string(origin.port()) + "/hello.txt"},
            {.output = root / "curl.out", .environment = environment});
  ASSERT_TRUE(p.wait_for(120s));
  EXPECT_EQ(read_file(root / "curl.out"), "200");
  EXPECT_EQ(read_file(root / "body"), origin_body);
  std::error_code ignored;
  fs::remove_all(root, ignored);
}

// The HTTPS port (TLS to the proxy itself, squid_fixture.hpp's listen::http_and_https) with
// Basic: curl trusting the test CA for the proxy gets through as the user; trusting another CA it
// stops at the proxy's certificate (curl's exit 60) before any request reaches squid.
TEST(squid_rig_https, the_tls_port_lets_the_user_through_and_its_certificate_needs_the_test_ca) {
  char pattern[] = "/tmp/lanrelay-squid-rig-tls.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path root = pattern;
  spew(root / "www" / "hello.txt", origin_body);
  nginx origin(root / "nginx", root / "www");
  origin.start();
  squid proxy(proxy_auth_scheme::basic, nullptr, squid::listen::http_and_https);
  const std::string target = "http://127.0.0.1:" + std::to_string(origin.port()) + "/hello.txt";
  const auto run = [&](const fs::path& ca, const std::string& name) {
    process p({curl_path, "-sS", "--max-time", "60", "-o", (root / (name + ".body")).string(),
               "-w", "%{http_code}", "-x", proxy.tls_url(), "--proxy-cacert", ca.string(),
               "--proxy-basic", "-U", std::string(squid::user) + ":" + squid::password, target},
              {.output = root / (name + ".out")});
    return p.wait_for(120s);
  };
  const auto good = run(proxy.ca_file(), "good");
  ASSERT_TRUE(good);
  EXPECT_EQ(read_file(root / "good.out"), "200") << read_file(proxy.dir() / "cache.log");
  EXPECT_EQ(read_file(root / "good.body"), origin_body);
  const auto log = proxy.log_once([](const squid_request& line) { return line.status == 200; });
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].user, squid::user);

  const auto bad = run(proxy.other_ca_file(), "bad");
  ASSERT_TRUE(bad);
  EXPECT_TRUE(WIFEXITED(*bad) && WEXITSTATUS(*bad) == 60) << read_file(root / "bad.out");
  EXPECT_EQ(proxy.log().size(), 1u);
  std::error_code ignored;
  fs::remove_all(root, ignored);
}

INSTANTIATE_TEST_SUITE_P(schemes, squid_rig,
                         testing::Values(proxy_auth_scheme::basic, proxy_auth_scheme::digest,
                                         proxy_auth_scheme::ntlm, proxy_auth_scheme::negotiate),
                         [](const testing::TestParamInfo<proxy_auth_scheme>& scheme_info) {
                           return std::string(to_string(scheme_info.param));
                         });

}  // namespace
}  // namespace lanrelay::test
