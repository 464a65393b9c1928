#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/health.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace lanrelay::proxyhelper {
namespace {

TEST(proxyhelper_config, reads_scalars_and_proxies) {
  const auto loaded = parse_config(R"(
[state]
dir = "/var/lib/proxyhelper-test"
[query]
answer_lifetime = "2m"
[health]
probe_url = "https://update.vendor.example/"
interval = "10s"
[[proxy]]
url = "http://10.0.0.8:3128"
priority = 20
bypass = ["*.corp.example", "10.0.0.0/8"]
[[proxy]]
url = "http://proxy2.corp.example:8080"
priority = 10
needs_credentials = true
)",
                                   "proxyhelperd.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.front().to_string();
  const auto& c = loaded.config;
  EXPECT_EQ(c.state_dir, "/var/lib/proxyhelper-test");
  EXPECT_EQ(c.answer_lifetime, std::chrono::seconds(120));
  EXPECT_EQ(c.check_interval, std::chrono::seconds(10));
  ASSERT_EQ(c.proxies.size(), 2u);
  EXPECT_EQ(c.proxies[0], (proxy_spec{"http://10.0.0.8:3128", 20, false, {"*.corp.example", "10.0.0.0/8"}}));
  EXPECT_TRUE(c.proxies[1].needs_credentials);
  EXPECT_EQ(signing_key_path(c), "/var/lib/proxyhelper-test/proxyhelper.key");
}

TEST(proxyhelper_config, reports_every_problem_with_its_position) {
  const auto loaded = parse_config(R"([[proxy]]
url = "http://user:secret@proxy:3128"
[[proxy]]
url = "http://ok:3128"
bypass = ["a b"]
[[proxy]]
priority = 3
[query]
answer_lifetime = "2h"
)",
                                   "bad.toml");
  ASSERT_EQ(loaded.diagnostics.size(), 4u);
  EXPECT_EQ(loaded.diagnostics[0].line, 2u);
  EXPECT_NE(loaded.diagnostics[0].message.find("credentials"), std::string::npos);
  EXPECT_EQ(loaded.diagnostics[1].line, 5u);
  EXPECT_NE(loaded.diagnostics[2].message.find("needs 'url'"), std::string::npos)
      << loaded.diagnostics[2].to_string();
  EXPECT_NE(loaded.diagnostics[3].message.find("out of range"), std::string::npos);
}

TEST(proxyhelper_config, a_configuration_without_proxies_is_refused) {
  const auto loaded = parse_config("[log]\nlevel = \"debug\"\n", "empty.toml");
  ASSERT_EQ(loaded.diagnostics.size(), 1u);
  EXPECT_NE(loaded.diagnostics[0].message.find("no [[proxy]]"), std::string::npos);
}

TEST(proxyhelper_config, answers_must_fit_one_datagram) {
  proxyhelper_config c;
  for (int i = 0; i < 8; ++i) {
    c.proxies.push_back({"http://proxy" + std::to_string(i) + "." + std::string(100, 'x') + ":3128",
                         100, false, {std::string(60, 'b'), std::string(60, 'c')}});
  }
  const auto problems = validate(c);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("more than the 1200"), std::string::npos) << problems[0];
}

TEST(proxyhelper_config, default_text_is_a_valid_configuration_once_a_proxy_is_added) {
  const auto text = default_config_text() + "\n[[proxy]]\nurl = \"http://p:3128\"\n";
  const auto loaded = parse_config(text, "default.toml");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.diagnostics.front().to_string());
}

TEST(proxyhelper_config, https_and_read_networks) {
  const auto defaults = parse_config("[[proxy]]\nurl = \"http://10.0.0.8:3128\"\n", "d.toml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.config.https.enabled);
  EXPECT_EQ(defaults.config.https.port, 4131);
  EXPECT_TRUE(defaults.config.read_networks.empty());

  const auto loaded = parse_config(R"([https]
port = 0
[admin]
read_networks = ["10.0.0.0/8", "fd00::1"]
[[proxy]]
url = "http://10.0.0.8:3128"
)",
                                   "p.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.front().to_string();
  EXPECT_EQ(loaded.config.https.port, 0);
  EXPECT_EQ(loaded.config.read_networks, (std::vector<std::string>{"10.0.0.0/8", "fd00::1"}));
  EXPECT_TRUE(needs_restart("https.port"));
  EXPECT_FALSE(needs_restart("admin.read_networks"));

  const auto bad = parse_config("[admin]\nread_networks = [\"lan\"]\n[[proxy]]\nurl = "
                                "\"http://10.0.0.8:3128\"\n",
                                "b.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.diagnostics.front().message.find("not a network"), std::string::npos);
}

}  // namespace
}  // namespace lanrelay::proxyhelper

namespace lanrelay::proxyhelper {
namespace {

// [[proxy]] auth: the scheme said in every answer and used by the health check.
TEST(proxyhelper_config, a_proxy_may_name_its_auth_scheme) {
  const auto loaded = parse_config(R"([[proxy]]
url = "http://proxy.corp.example:3128"
needs_credentials = true
auth = "NTLM"
[[proxy]]
url = "http://proxy2.corp.example:3128"
)",
                                   "auth.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.front().to_string();
  EXPECT_EQ(loaded.config.proxies[0].auth, "NTLM");
  EXPECT_EQ(advertised_entry(loaded.config.proxies[0]).auth, proxy_protocol::auth_scheme::ntlm);
  EXPECT_EQ(advertised_entry(loaded.config.proxies[1]).auth, std::nullopt);

  const auto bad = parse_config("[[proxy]]\nurl = \"http://p:3128\"\nauth = \"kerberos\"\n",
                                "bad.toml");
  ASSERT_EQ(bad.diagnostics.size(), 1u);
  EXPECT_EQ(bad.diagnostics[0].line, 3u);
  EXPECT_NE(bad.diagnostics[0].message.find("negotiate"), std::string::npos)
      << bad.diagnostics[0].to_string();
}

TEST(proxyhelper_config, check_credentials_must_be_a_protected_user_password_file) {
  char pattern[] = "/tmp/lanrelay-check-credentials.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  const auto file = dir / "check.cred";
  std::ofstream(file) << "probe:s3cret\n";
  std::filesystem::permissions(file, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write);
  const std::string config = "[[proxy]]\nurl = \"http://p:3128\"\nauth = \"digest\"\n"
                             "check_credentials_file = \"" + file.string() + "\"\n";
  const auto good = parse_config(config, "good.toml");
  EXPECT_TRUE(good.ok()) << good.diagnostics.front().to_string();

  bool logs_in = false;
  const auto settings = check_proxy_settings(good.config.proxies[0], logs_in);
  EXPECT_TRUE(logs_in);
  EXPECT_EQ(settings.auth, proxy_auth_scheme::digest);
  EXPECT_EQ(settings.proxy.user(), "probe");
  EXPECT_EQ(settings.proxy.password(), "s3cret");

  std::filesystem::permissions(file, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  const auto open = parse_config(config, "open.toml");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.diagnostics[0].message.find("check_credentials_file"), std::string::npos)
      << open.diagnostics[0].to_string();
  // At run time an unusable file means a check without credentials, logged.
  const auto anonymous = check_proxy_settings(good.config.proxies[0], logs_in);
  EXPECT_FALSE(logs_in);
  EXPECT_FALSE(anonymous.proxy.has_userinfo());
  std::filesystem::remove_all(dir);
}

TEST(proxyhelper_config, a_check_without_credentials_goes_anonymously) {
  proxy_spec spec{"http://p:3128", 10, true, {}, "ntlm", {}};
  bool logs_in = true;
  const auto settings = check_proxy_settings(spec, logs_in);
  EXPECT_FALSE(logs_in);
  EXPECT_EQ(settings.auth, proxy_auth_scheme::basic);
  EXPECT_FALSE(settings.proxy.has_userinfo());
}

}  // namespace
}  // namespace lanrelay::proxyhelper
