#include "lanrelay/relay/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

namespace lanrelay {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> messages(const config_load_result& r) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) {
    out.push_back(d.to_string());
  }
  return out;
}

TEST(config, empty_file_gives_defaults) {
  const auto r = parse_relay_config("", "empty.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config.http.port, 4127);
  EXPECT_EQ(r.config.discovery.port, 4126);
  EXPECT_TRUE(r.config.discovery.enabled);
  EXPECT_EQ(r.config.role, "relay");
  EXPECT_EQ(r.config.max_peers, 10u);
  EXPECT_EQ(r.config.state_dir, default_state_dir());
}

TEST(config, every_setting_is_applied) {
  const auto r = parse_relay_config(R"(
[state]
dir = "/srv/lanrelay"
[cache]
max_size = "512MiB"
[http]
listen = "127.0.0.1"
port = 8080
max_connections = 50
max_header_bytes = 4096
header_timeout = "2s"
idle_timeout = "1m"
send_timeout = "1500ms"
threads = 3
[peers]
max_peers = 4
retry_after = "7s"
[shutdown]
grace_period = "0ms"
[relay]
role = "peer"
[discovery]
enabled = false
port = 5000
ipv6 = false
rate_limit = 3
interface_rescan = "2s"
[log]
level = "debug"
)",
                                    "all.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r));
  const relay_config& c = r.config;
  EXPECT_EQ(c.state_dir, "/srv/lanrelay");
  EXPECT_EQ(c.cache_max_size, 512ULL << 20);
  EXPECT_EQ(c.http.listen_address, "127.0.0.1");
  EXPECT_EQ(c.http.port, 8080);
  EXPECT_EQ(c.http.max_connections, 50u);
  EXPECT_EQ(c.http.max_header_bytes, 4096u);
  EXPECT_EQ(c.http.header_timeout, 2s);
  EXPECT_EQ(c.http.idle_timeout, 1min);
  EXPECT_EQ(c.http.send_timeout, 1500ms);
  EXPECT_EQ(c.http.threads, 3u);
  EXPECT_EQ(c.max_peers, 4u);
  EXPECT_EQ(c.retry_after, 7s);
  EXPECT_EQ(c.shutdown_grace, 0ms);
  EXPECT_EQ(c.discovery.port, 5000);
  EXPECT_FALSE(c.discovery.enabled);
  EXPECT_FALSE(c.discovery.ipv6);
  EXPECT_EQ(c.discovery.rate_limit, 3u);
  EXPECT_EQ(c.discovery.interface_rescan, 2s);
  EXPECT_EQ(c.role, "peer");
  EXPECT_EQ(c.log_level, "debug");
}

TEST(config, size_accepts_plain_bytes) {
  const auto r = parse_relay_config("[cache]\nmax_size = 1000\n", "t.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config.cache_max_size, 1000u);
}

TEST(config, every_problem_is_reported_with_its_position) {
  const auto r = parse_relay_config(R"([http]
port = "4127"
prot = 1
max_connections = 0
header_timeout = "10 parsecs"
listen = "everywhere"
[peers]
max_peers = 10
retry_after = 5
[nonsense]
x = 1
[log]
level = "loud"
)",
                                    "bad.toml");
  const auto m = messages(r);
  ASSERT_EQ(m.size(), 8u) << testing::PrintToString(m);
  EXPECT_EQ(m[0], "bad.toml:2:8: http.port: expected an integer from 0 to 65535, got a string");
  EXPECT_EQ(m[1],
            "bad.toml:3:1: unknown setting 'http.prot'; known in [http]: listen, port, "
            "max_connections, max_header_bytes, header_timeout, idle_timeout, send_timeout, "
            "threads");
  EXPECT_EQ(m[2], "bad.toml:4:19: http.max_connections: 0 is out of range (1 to 1000000)");
  EXPECT_NE(m[3].find("bad.toml:5:18: http.header_timeout: expected a duration"), std::string::npos);
  EXPECT_NE(m[4].find("bad.toml:6:10: http.listen: \"everywhere\" is not an IP address"),
            std::string::npos);
  EXPECT_NE(m[5].find("bad.toml:9:15: peers.retry_after: expected a duration"), std::string::npos);
  EXPECT_NE(m[6].find("bad.toml:10:2: unknown section [nonsense]"), std::string::npos);
  EXPECT_NE(m[7].find("bad.toml:13:9: log.level: \"loud\" is not a log level"), std::string::npos);
}

TEST(config, syntax_error_has_position) {
  const auto r = parse_relay_config("[http]\nport = = 3\n", "syntax.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].file, "syntax.toml");
  EXPECT_EQ(r.diagnostics[0].line, 2u);
}

TEST(config, durations_out_of_range_and_fractional_seconds) {
  auto r = parse_relay_config("[http]\nheader_timeout = \"2h\"\n", "t.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("out of range"), std::string::npos);
  r = parse_relay_config("[peers]\nretry_after = \"1500ms\"\n", "t.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("whole number of seconds"), std::string::npos);
}

TEST(config, booleans_and_choices_are_checked) {
  const auto r = parse_relay_config("[discovery]\nenabled = \"yes\"\n[relay]\nrole = \"boss\"\n", "t.toml");
  ASSERT_EQ(r.diagnostics.size(), 2u);
  EXPECT_EQ(r.diagnostics[0].to_string(),
            "t.toml:2:11: discovery.enabled: expected true or false, got a string");
  EXPECT_EQ(r.diagnostics[1].to_string(),
            "t.toml:4:8: relay.role: expected one of \"relay\", \"peer\", got \"boss\"");
}

// Origins only: the catalog appends /cache/<kind>/<name>/<version> to each.
TEST(config, item_origins_are_origins) {
  const auto good = parse_relay_config(
      "[trust]\nitem_origins = [\"http://relay-b.corp:4127\", \"https://[2001:db8::1]\"]\n", "t.toml");
  ASSERT_TRUE(good.ok()) << testing::PrintToString(messages(good));
  EXPECT_EQ(good.config.trust.item_origins,
            (std::vector<std::string>{"http://relay-b.corp:4127", "https://[2001:db8::1]"}));
  for (const char* bad : {"http://relay-b.corp:4127/", "http://relay-b.corp/cache", "ftp://relay-b",
                          "http://user:pw@relay-b", "http://relay-b?x", "relay-b:4127"}) {
    const auto r = parse_relay_config(
        std::string("[trust]\nitem_origins = [\"") + bad + "\"]\n", "t.toml");
    EXPECT_EQ(r.diagnostics.size(), 1u) << bad;
  }
}

TEST(config, relative_state_dir_is_rejected) {
  const auto r = parse_relay_config("[state]\ndir = \"var/lib\"\n", "t.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("not an absolute path"), std::string::npos);
}

TEST(config, missing_file_is_reported) {
  const auto r = load_relay_config("/nonexistent/lanrelay.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].to_string().find("/nonexistent/lanrelay.toml: cannot open"),
            std::string::npos);
}

TEST(config, printed_defaults_parse_back_to_the_defaults) {
  const std::string text = default_relay_config_text();
  const auto r = parse_relay_config(text, "default.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r)) << text;
  const relay_config d = default_relay_config().config;
  EXPECT_EQ(r.config.cache_max_size, d.cache_max_size);
  EXPECT_EQ(r.config.http.header_timeout, d.http.header_timeout);
  EXPECT_EQ(r.config.retry_after, d.retry_after);
  EXPECT_EQ(r.config.shutdown_grace, d.shutdown_grace);
  EXPECT_EQ(r.config.state_dir, d.state_dir);
  EXPECT_NE(text.find("max_size = \"10GiB\""), std::string::npos);
  EXPECT_NE(text.find("# TCP port of the content server"), std::string::npos);
}


TEST(config, mirror_sources_are_read_as_a_list_of_tables) {
  const auto r = parse_relay_config(R"([mirror]
rate_limit = "20MiB"

[[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
interval = "15m"
include = ["PATTERN:lpt$vpn", "path:engine/"]
proxy = "http://user:secret@proxy.corp:8080"

[[mirror.source]]
name = "site"
url = "http://10.0.0.1:4127/activeupdate/vendor/"
keep = 3
)", "m.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r));
  EXPECT_EQ(r.config.mirror.rate_limit, 20ULL << 20);
  ASSERT_EQ(r.config.mirror.sources.size(), 2u);
  const auto& vendor = r.config.mirror.sources[0];
  EXPECT_EQ(vendor.name, "vendor");
  EXPECT_EQ(vendor.url, "https://update.vendor.example/au/");
  EXPECT_EQ(vendor.interval, 15min);
  EXPECT_EQ(vendor.jitter, 5min);
  EXPECT_EQ(vendor.include, (std::vector<std::string>{"PATTERN:lpt$vpn", "path:engine/"}));
  EXPECT_EQ(vendor.proxy, "http://user:secret@proxy.corp:8080");
  EXPECT_EQ(r.config.mirror.sources[1].keep, 3u);
  EXPECT_EQ(r.config.mirror.sources[1].interval, 1h);
}

TEST(config, pull_through_bounds_retry_and_the_disk_floor) {
  const auto defaults = parse_relay_config("", "empty.toml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config.mirror.max_pulls, 4u);
  EXPECT_EQ(defaults.config.mirror.pull_volume, 1ULL << 30);
  EXPECT_EQ(defaults.config.cache_min_free, (space_floor{0, 200}));

  const auto r = parse_relay_config(R"([cache]
min_free = "0.5%"
[mirror]
max_pulls = 2
pull_volume = "300MiB"
[[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
include = ["ENGINE"]
pull_through = ["PATTERN:lpt$vpn", "path:pattern/"]
retry = "30s"
)", "m.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(messages(r));
  EXPECT_EQ(r.config.cache_min_free, (space_floor{0, 50}));
  EXPECT_EQ(r.config.mirror.max_pulls, 2u);
  EXPECT_EQ(r.config.mirror.pull_volume, 300ULL << 20);
  ASSERT_EQ(r.config.mirror.sources.size(), 1u);
  EXPECT_EQ(r.config.mirror.sources[0].pull_through,
            (std::vector<std::string>{"PATTERN:lpt$vpn", "path:pattern/"}));
  EXPECT_EQ(r.config.mirror.sources[0].retry, 30s);
  EXPECT_EQ(defaults.config.mirror.sources.size(), 0u);

  EXPECT_EQ(parse_space_floor("10GiB"), (space_floor{10ULL << 30, 0}));
  EXPECT_EQ(parse_space_floor("0"), space_floor{});
  EXPECT_EQ(parse_space_floor("12.25%"), (space_floor{0, 1225}));
  for (const char* bad : {"", "%", "2.%", "51%", "1.234%", "-1%", "2 %", "x%", "10 apples"}) {
    EXPECT_FALSE(parse_space_floor(bad)) << bad;
  }
  EXPECT_EQ((space_floor{0, 200}).for_total(1'000'000), 20'000u);
  EXPECT_EQ((space_floor{50'000, 200}).for_total(1'000'000), 50'000u);
  EXPECT_EQ((space_floor{0, 5'000}).for_total(~std::uint64_t{0}), ~std::uint64_t{0} / 2);
  EXPECT_EQ((space_floor{0, 1225}).to_string(), "12.25%");
  EXPECT_EQ((space_floor{0, 50}).to_string(), "0.5%");
  EXPECT_EQ((space_floor{1ULL << 20, 0}).to_string(), "1MiB");

  const auto bad = parse_relay_config(R"([cache]
min_free = "60%"
[mirror]
max_pulls = 0
[[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
pull_through = ["nonsense"]
retry = "10ms"
)", "bad.toml");
  const auto problems = messages(bad);
  ASSERT_EQ(problems.size(), 4u) << testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("bad.toml:2:"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("expected a share of the disk"), std::string::npos) << problems[0];
}

TEST(config, a_mirror_source_may_use_a_socks5_proxy_but_no_other_scheme) {
  const auto good = parse_relay_config(R"([[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
proxy = "socks5://user:secret@socks.corp:1080"
rate_limit = "2MiB"
)", "m.toml");
  ASSERT_TRUE(good.ok()) << testing::PrintToString(messages(good));
  EXPECT_EQ(good.config.mirror.sources[0].proxy, "socks5://user:secret@socks.corp:1080");
  EXPECT_EQ(good.config.mirror.sources[0].rate_limit, 2ULL << 20);

  const auto bad = parse_relay_config(R"([[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
proxy = "ftp://proxy.corp:21"
)", "m.toml");
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(messages(bad).size(), 1u);
  EXPECT_NE(messages(bad)[0].find("m.toml:4:"), std::string::npos) << messages(bad)[0];
  EXPECT_NE(messages(bad)[0].find("socks5"), std::string::npos) << messages(bad)[0];
}

TEST(config, proxy_auto_takes_its_resolution_settings_from_upstream_proxy) {
  const auto good = parse_relay_config(R"([upstream_proxy]
proxyhelper_keys = ["lanrelay-ed25519:b5j1SKON+JiPIMmNLdEqStNENsYu1KzVAIuO3Fycf+w="]
window = "1s"

[[mirror.source]]
name = "vendor"
url = "https://update.vendor.example/au/"
proxy = "auto"
)", "m.toml");
  ASSERT_TRUE(good.ok()) << testing::PrintToString(messages(good));
  EXPECT_EQ(good.config.mirror.sources[0].proxy, "auto");
  EXPECT_EQ(good.config.upstream_proxy.window, 1s);
  EXPECT_EQ(good.config.upstream_proxy.proxyhelper_keys.size(), 1u);
  EXPECT_TRUE(good.config.upstream_proxy.ask_segment);
  EXPECT_FALSE(good.config.upstream_proxy.accept_unsigned);

  const auto bad = parse_relay_config(R"([upstream_proxy]
proxyhelper_keys = ["not-a-key"]
)", "m.toml");
  ASSERT_EQ(messages(bad).size(), 1u);
  EXPECT_NE(messages(bad)[0].find("m.toml:2:"), std::string::npos) << messages(bad)[0];
  EXPECT_NE(messages(bad)[0].find("not-a-key"), std::string::npos) << messages(bad)[0];
}

// The credentials file is a secret bound to one proxy: both are checked at load.
TEST(config, credentials_need_their_proxy_and_a_protected_file) {
  char pattern[] = "/tmp/lanrelay-credentials.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  const auto file = dir / "proxy-credentials";
  std::ofstream(file) << "mirror:s3cret\n";
  const auto load = [&](const std::string& extra) {
    return messages(parse_relay_config(
        "[upstream_proxy]\ncredentials_file = \"" + file.string() + "\"\n" + extra, "c.toml"));
  };
  const auto contains = [](const std::vector<std::string>& all, std::string_view what) {
    return std::any_of(all.begin(), all.end(),
                       [&](const std::string& m) { return m.find(what) != std::string::npos; });
  };
  std::filesystem::permissions(file, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  EXPECT_TRUE(load("credentials_proxy = \"proxy.corp.example:3128\"\n").empty())
      << testing::PrintToString(load("credentials_proxy = \"proxy.corp.example:3128\"\n"));
  EXPECT_TRUE(contains(load(""), "credentials_proxy is not"));
  EXPECT_TRUE(contains(load("credentials_proxy = \"proxy.corp.example\"\n"), "is not host:port"));
  EXPECT_TRUE(contains(messages(parse_relay_config(
                           "[upstream_proxy]\ncredentials_proxy = \"p:1\"\n", "c.toml")),
                       "set both or neither"));
  // Negotiate needs no file: credentials_proxy alone names the proxy the Kerberos login is for.
  EXPECT_TRUE(messages(parse_relay_config("[upstream_proxy]\nauth = \"negotiate\"\n"
                                          "credentials_proxy = \"p:1\"\n",
                                          "c.toml"))
                  .empty());

  const std::string bound = "credentials_proxy = \"proxy.corp.example:3128\"\n";
  std::filesystem::permissions(file, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write |
                                         std::filesystem::perms::group_read,
                               std::filesystem::perm_options::replace);
  EXPECT_TRUE(contains(load(bound), "has mode 0640")) << testing::PrintToString(load(bound));
  std::filesystem::permissions(file, std::filesystem::perms::owner_read,
                               std::filesystem::perm_options::replace);
  EXPECT_TRUE(load(bound).empty());  // 0400 is fine

  const auto link = dir / "link";
  std::filesystem::create_symlink(file, link);
  EXPECT_TRUE(contains(messages(parse_relay_config("[upstream_proxy]\ncredentials_file = \"" +
                                                       link.string() + "\"\n" + bound,
                                                   "c.toml")),
                       "symbolic link"));
  if (::geteuid() == 0) {  // another owner: only root can give the file away
    ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
    EXPECT_TRUE(contains(load(bound), "owned by uid 65534"));
  }
  std::filesystem::remove_all(dir);
}

TEST(config, bad_mirror_sources_are_reported_with_their_position) {
  const auto r = parse_relay_config(R"([[mirror.source]]
name = "../etc"
url = "ftp://x/"

[[mirror.source]]
url = "http://up/"
interval = "1m"
colour = "blue"

[[mirror.source]]
name = "a"
url = "http://up/"
include = ["PATTERN", "SOUND:x"]

[[mirror.source]]
name = "b"
url = "http://up/"

[[mirror.source]]
name = "b"
url = "http://other/"
)", "bad.toml");
  const auto m = messages(r);
  ASSERT_EQ(m.size(), 7u) << testing::PrintToString(m);
  EXPECT_NE(m[0].find("bad.toml:2:8: mirror.source.name: \"../etc\" is not a source name"), std::string::npos) << m[0];
  EXPECT_NE(m[1].find("bad.toml:3:7: mirror.source.url: \"ftp://x/\" is not a URL starting with http:// or https://"), std::string::npos) << m[1];
  EXPECT_NE(m[2].find("bad.toml:5:1: [[mirror.source]] needs 'name'"), std::string::npos) << m[2];
  EXPECT_NE(m[3].find("bad.toml:7:12: mirror.source.interval: \"1m\" is out of range"), std::string::npos) << m[3];
  EXPECT_NE(m[4].find("bad.toml:8:1: unknown setting 'colour' in [[mirror.source]]"), std::string::npos) << m[4];
  EXPECT_NE(m[5].find("bad.toml:13:11: mirror.source.include: \"SOUND:x\" is not a component"), std::string::npos) << m[5];
  EXPECT_NE(m[6].find("bad.toml:19:1: [[mirror.source]]: the name \"b\" is used twice"), std::string::npos) << m[6];
  EXPECT_TRUE(r.config.mirror.sources.size() == 1 && r.config.mirror.sources[0].name == "b");
}

TEST(config, mirror_source_must_be_a_list) {
  const auto r = parse_relay_config("[mirror.source]\nname = \"x\"\n", "t.toml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("must be a list of tables: [[mirror.source]]"), std::string::npos)
      << r.diagnostics[0].message;
}

}  // namespace
}  // namespace lanrelay
