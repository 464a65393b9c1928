// Secrets never leave their place (issue 11): a password planted in every place an administrator
// may put one — http_proxy for proxy = "auto", the credentials file, a mirror source URL, the
// relay's PAC URL, proxyhelperd's probe URL and proxyhelperd's proxy list — must appear in no
// response of any HTTP endpoint of either daemon, in no output of the commands that show their
// state, and in no log line, with both daemons logging at debug level.
//
// Real processes: lanrelayd, proxyhelperd and the lanrelay command; nginx as the mirror's
// upstream; tinyproxy as the proxy that needs credentials.

#include "au_upstream.hpp"
#include "relayd_harness.hpp"

#include "lanrelay/relay/request_target.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::string_view proxy_user = "relay";
constexpr std::string_view env_password = "EnvPw7q1x";        // http_proxy
constexpr std::string_view file_password = "FilePw3k9z";      // [upstream_proxy] credentials_file
constexpr std::string_view source_password = "SrcPw5m2v";     // [[mirror.source]] url
constexpr std::string_view pac_password = "PacPw4t7u";        // [upstream_proxy] pac_url
constexpr std::string_view probe_password = "ProbePw8n4c";    // proxyhelperd [health] probe_url
constexpr std::string_view list_password = "ListPw6b2r";      // proxyhelperd [[proxy]] url
constexpr std::string_view admin_token = "secrets-test-token-0123456789";

std::string base64(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
            alphabet[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], '='};
  }
  return out;
}

// Each planted secret in the forms it could leak in: as typed, and as a Basic credential.
std::vector<std::string> secret_forms() {
  std::vector<std::string> out;
  for (const auto password : {env_password, file_password, source_password, pac_password,
                              probe_password, list_password}) {
    out.emplace_back(password);
    out.push_back(base64(std::string(proxy_user) + ":" + std::string(password)));
  }
  out.emplace_back(base64("mirror:" + std::string(source_password)));
  return out;
}

// Fails the test for each planted secret found in `text`, naming where it was shown.
void expect_no_secret(const std::string& where, const std::string& text) {
  for (const auto& secret : secret_forms()) {
    const auto at = text.find(secret);
    EXPECT_EQ(at, std::string::npos)
        << where << " shows a planted secret (" << secret << "): ..."
        << text.substr(at > 80 ? at - 80 : 0, 200) << "...";
  }
}

// The status, every header field and the body.
std::string dump(const raw_connection::response& r) {
  std::string out = std::to_string(r.message.result_int()) + "\n";
  for (const auto& field : r.message) {
    out += std::string(field.name_string()) + ": " + std::string(field.value()) + "\n";
  }
  return out + r.message.body();
}

// A target for each resource kind the relay serves (request_target.hpp). No default: a new kind
// does not compile until it is listed here, so this test keeps covering every endpoint.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
std::vector<std::string> relay_targets_for(relay::resource_kind kind) {
  switch (kind) {
    case relay::resource_kind::cache_item:
      return {"/cache/pattern/nosuch/1.0", "/cache/nokind/x/1"};
    case relay::resource_kind::mirror_file:
      return {"/activeupdate/vendor/server.ini", "/activeupdate/vendor/pattern/nosuch.zip",
              "/activeupdate/nosource/server.ini"};
    case relay::resource_kind::mirror_status:
      return {"/-/mirror"};
    case relay::resource_kind::mirror_sync:
      return {"/-/mirror/sync", "/-/mirror/sync/vendor"};
    case relay::resource_kind::healthz:
      return {"/-/healthz"};
    case relay::resource_kind::catalog:
      return {"/-/catalog"};
    case relay::resource_kind::signed_catalog:
      return {"/-/catalog.signed"};
    case relay::resource_kind::piece_list:
      return {"/-/pieces/" + std::string(64, '0')};
    case relay::resource_kind::piece_have:
      return {"/-/have/" + std::string(64, '0')};
    case relay::resource_kind::stats:
      return {"/-/stats"};
    case relay::resource_kind::status_page:
      return {"/", "/?refresh=1"};
    case relay::resource_kind::status:
      return {"/-/status"};
    case relay::resource_kind::metrics:
      return {"/-/metrics"};
    case relay::resource_kind::log_level:
      return {"/-/log-level"};
  }
  return {};
}
#pragma GCC diagnostic pop

constexpr relay::resource_kind all_relay_kinds[] = {
    relay::resource_kind::cache_item,  relay::resource_kind::mirror_file,
    relay::resource_kind::mirror_status, relay::resource_kind::mirror_sync,
    relay::resource_kind::healthz,     relay::resource_kind::catalog,
    relay::resource_kind::signed_catalog, relay::resource_kind::piece_list,
    relay::resource_kind::piece_have,  relay::resource_kind::stats,
    relay::resource_kind::status_page, relay::resource_kind::status,
    relay::resource_kind::metrics,     relay::resource_kind::log_level,
};

// proxyhelperd's endpoints (proxyhelper/src/pac_server.cpp), and a path it does not serve.
const std::vector<std::string> proxyhelper_targets = {
    "/proxy.pac", "/wpad.dat", "/-/healthz", "/-/stats", "/-/status", "/-/metrics", "/", "/nosuch"};

class secrets : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-secrets.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    spew(root_ / "www" / "hello.txt", "hello\n");
    spew(root_ / "www" / "activeupdate" / "server.ini",
         "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n[PATTERN]\r\n");
    upstream_ = std::make_unique<nginx>(root_ / "nginx", root_ / "www");
    ASSERT_NO_FATAL_FAILURE(upstream_->start());

    // One proxy that needs credentials, accepting both the environment's and the file's.
    proxy_port_ = free_port();
    std::ostringstream conf;
    conf << "User nobody\nGroup nogroup\nPort " << proxy_port_
         << "\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 20\n"
         << "BasicAuth " << proxy_user << " " << env_password << "\n"
         << "BasicAuth " << proxy_user << " " << file_password << "\n";
    spew(root_ / "tinyproxy.conf", conf.str());
    proxy_.emplace(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c",
                                            (root_ / "tinyproxy.conf").string()},
                   process::options{.output = root_ / "tinyproxy.out"});
    ASSERT_TRUE(eventually(10s, [&] { return can_connect(proxy_port_); }))
        << read_file(root_ / "tinyproxy.out");
  }

  void TearDown() override {
    proxy_.reset();
    upstream_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  std::string upstream_base() const {
    return "127.0.0.1:" + std::to_string(upstream_->port());
  }

  // Runs the lanrelay command; its output (stdout and stderr).
  std::string cli(std::vector<std::string> args, std::vector<std::string> environment = {}) {
    args.insert(args.begin(), LANRELAY_CLI_PATH);
    const fs::path out = root_ / ("cli-" + std::to_string(++cli_runs_) + ".out");
    environment.push_back("LANRELAY_ADMIN_TOKEN=" + std::string(admin_token));
    process p(args, process::options{.output = out, .environment = std::move(environment)});
    EXPECT_TRUE(p.wait_for(120s)) << "lanrelay " << args.at(1) << " did not end";
    return read_file(out);
  }

  fs::path root_;
  std::unique_ptr<nginx> upstream_;
  std::optional<process> proxy_;
  unsigned short proxy_port_ = 0;
  int cli_runs_ = 0;
};

TEST_F(secrets, no_endpoint_output_or_log_line_of_either_daemon_shows_a_planted_password) {
  const std::string proxy_address = "127.0.0.1:" + std::to_string(proxy_port_);
  const fs::path credentials = root_ / "proxy-credentials";
  spew(credentials, std::string(proxy_user) + ":" + std::string(file_password) + "\n");
  fs::permissions(credentials, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);

  // The relay: proxy = "auto" finds the environment's proxy (with its password), the source URL
  // carries a password, a PAC URL with a password is tried first and fails.
  const std::string relay_config =
      "[admin]\ntoken = \"" + std::string(admin_token) + "\"\n" +
      "[mirror]\npublic_url = \"http://relay.lan:4127\"\n"
      "[upstream_proxy]\nask_segment = false\n"
      "credentials_file = \"" + credentials.string() + "\"\n"
      "credentials_proxy = \"" + proxy_address + "\"\n"
      "[[mirror.source]]\nname = \"vendor\"\n"
      "url = \"http://mirror:" + std::string(source_password) + "@" + upstream_base() +
      "/activeupdate/\"\nproxy = \"auto\"\njitter = \"0ms\"\n";
  const std::vector<std::string> relay_environment = {
      "http_proxy=http://" + std::string(proxy_user) + ":" + std::string(env_password) + "@" +
          proxy_address,
      "https_proxy=", "no_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY="};
  relayd relay(relay_config, {}, 0, relay_environment);
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());

  // A sync through the route (its errors quote URLs), then every endpoint.
  const std::string synced = cli({"mirror", "sync", "--relay", where, "--json"});
  expect_no_secret("lanrelay mirror sync", synced);
  ASSERT_TRUE(eventually(30s, [&] {
    const auto status = relay.request("GET", "/-/mirror");
    boost::system::error_code ec;
    const auto v = json::parse(status.message.body(), ec);
    return !ec && v.is_array() && !v.as_array().empty() &&
           !v.at(0).at("route").as_string().empty();
  })) << relay.log();
  // The route was found through the environment's proxy and is shown, without its password.
  const auto mirror = json::parse(relay.request("GET", "/-/mirror").message.body());
  const std::string route(mirror.at(0).at("route").as_string());
  EXPECT_NE(route.find("http://***@" + proxy_address), std::string::npos) << route;
  EXPECT_EQ(std::string(mirror.at(0).at("upstream").as_string()),
            "http://***@" + upstream_base() + "/activeupdate/");

  std::size_t endpoints = 0;
  for (const auto kind : all_relay_kinds) {
    for (const auto& target : relay_targets_for(kind)) {
      for (const auto* method : {"GET", "HEAD", "POST"}) {
        const std::string headers = std::string("Authorization: Bearer ") +
                                    std::string(admin_token) + "\r\nContent-Length: 0\r\n";
        const auto res = relay.request(method, target, headers);
        expect_no_secret(std::string("lanrelayd ") + method + " " + target, dump(res));
        ++endpoints;
      }
      expect_no_secret("lanrelayd GET " + target + " without a token",
                       dump(relay.request("GET", target)));
    }
  }
  EXPECT_GE(endpoints, 3u * 12u);

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"status", where},
           {"status", where, "--json"},
           {"mirror", "status", "--relay", where},
           {"mirror", "status", "--relay", where, "--json"}}) {
    expect_no_secret("lanrelay " + args[0] + " " + args[1], cli(args));
  }
  // The command's own route finding: the same environment, and the credentials bound to the
  // proxy.
  std::vector<std::string> cli_environment = relay_environment;
  cli_environment.push_back("PROXY_LOGIN=" + std::string(proxy_user) + ":" +
                            std::string(file_password));
  for (const auto* json_flag : {"", "--json"}) {
    std::vector<std::string> args{"--log-level", "debug", "proxy", "resolve", "--no-segment",
                                  "--credentials-env", "PROXY_LOGIN", "--credentials-proxy",
                                  proxy_address,
                                  "http://mirror:" + std::string(source_password) + "@" +
                                      upstream_base() + "/hello.txt"};
    if (*json_flag != '\0') {
      args.emplace_back(json_flag);
    }
    const std::string resolved = cli(args, cli_environment);
    expect_no_secret("lanrelay proxy resolve", resolved);
    EXPECT_NE(resolved.find("***@"), std::string::npos) << resolved;
  }

  // proxyhelperd: a probe URL with a password, at debug level.
  const fs::path helper_config = root_ / "proxyhelperd.toml";
  spew(helper_config, "[state]\ndir = \"" + (root_ / "helper-state").string() + "\"\n" +
                          "[http]\nlisten = \"127.0.0.1\"\nport = 0\n[https]\nport = 0\n"
                          "[query]\nipv6 = false\n"
                          "[health]\nprobe_url = \"http://probe:" + std::string(probe_password) +
                          "@" + upstream_base() + "/hello.txt\"\ninterval = \"200ms\"\n"
                          "[[proxy]]\nurl = \"http://" + proxy_address +
                          "\"\nneeds_credentials = true\n");
  const fs::path helper_log = root_ / "proxyhelperd.log";
  std::optional<process> helper;
  helper.emplace(std::vector<std::string>{PROXYHELPERD_PATH, "--config", helper_config.string(),
                                          "--query-port", std::to_string(free_port()),
                                          "--log-level", "debug"},
                 process::options{.output = helper_log});
  ASSERT_TRUE(eventually(20s, [&] {
    const auto text = read_file(helper_log);
    return text.find("http 127.0.0.1:") != std::string::npos &&
           text.find("event=proxy_healthy") != std::string::npos;
  })) << read_file(helper_log);
  const auto text = read_file(helper_log);
  const auto http_port = static_cast<std::uint16_t>(
      std::stoul(text.substr(text.find("http 127.0.0.1:") + 15)));
  for (const auto& target : proxyhelper_targets) {
    for (const auto* method : {"GET", "HEAD", "POST"}) {
      raw_connection c(http_port);
      ASSERT_TRUE(c.send_all(std::string(method) + " " + target +
                             " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      expect_no_secret(std::string("proxyhelperd ") + method + " " + target,
                       dump(c.read_response(10s, std::string_view(method) == "HEAD")));
    }
  }
  helper.reset();

  // proxyhelperd refuses a password in its proxy list and in its PAC URL, without repeating it.
  const fs::path refused_config = root_ / "refused.toml";
  spew(refused_config,
       "[state]\ndir = \"" + (root_ / "helper-state").string() + "\"\n" +
           "[http]\nlisten = \"127.0.0.1\"\nport = 0\npac_url = \"http://pac:" +
           std::string(list_password) + "@" + upstream_base() + "/proxy.pac\"\n" +
           "[health]\nprobe_url = \"http://" + upstream_base() + "/hello.txt\"\n" +
           "[[proxy]]\nurl = \"http://" + std::string(proxy_user) + ":" +
           std::string(list_password) + "@" + proxy_address + "\"\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {PROXYHELPERD_PATH, "--check-config", refused_config.string()},
           {PROXYHELPERD_PATH, "--config", refused_config.string(), "--log-level", "debug"}}) {
    const fs::path out = root_ / "refused.out";
    process p(args, process::options{.output = out});
    const auto status = p.wait_for(30s);
    ASSERT_TRUE(status);
    EXPECT_NE(WEXITSTATUS(*status), 0);
    EXPECT_NE(read_file(out).find("***@"), std::string::npos) << read_file(out);
    expect_no_secret("proxyhelperd " + args[1] + " of a refused configuration", read_file(out));
  }

  // And the relay's log, the whole run at debug level: the planted passwords were used (the
  // proxy was reached through them) but never written.
  relay.proc().signal(SIGTERM);
  relay.wait_exit(30s);
  expect_no_secret("lanrelayd's log", relay.log());
  expect_no_secret("proxyhelperd's log", read_file(helper_log));
  EXPECT_NE(relay.log().find("***@"), std::string::npos) << "the route is logged, redacted";
}

// A PAC URL with a password is redacted where the relay reports that it could not be used.
TEST_F(secrets, a_pac_url_with_a_password_is_never_shown) {
  const std::string relay_config =
      "[upstream_proxy]\nask_segment = false\npac_url = \"http://pac:" +
      std::string(pac_password) + "@127.0.0.1:" + std::to_string(free_port()) +
      "/proxy.pac\"\n[[mirror.source]]\nname = \"vendor\"\nurl = \"http://" + upstream_base() +
      "/activeupdate/\"\nproxy = \"auto\"\njitter = \"0ms\"\n";
  relayd relay(relay_config, {}, 0,
               {"http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY="});
  ASSERT_TRUE(eventually(30s, [&] {
    return relay.log().find("event=mirror_route") != std::string::npos;
  })) << relay.log();
  for (const auto& target : {"/-/mirror", "/-/status", "/"}) {
    expect_no_secret(std::string("lanrelayd GET ") + target, dump(relay.request("GET", target)));
  }
  expect_no_secret("lanrelayd's log", relay.log());
  EXPECT_NE(relay.log().find("http://***@127.0.0.1"), std::string::npos) << relay.log();
}

}  // namespace
}  // namespace lanrelay::test
