// proxyhelperd as a process on loopback: configuration checks, the key created once and kept,
// health checks through a real tinyproxy to a real nginx, signed answers over real UDP sockets,
// PAC over HTTP, and SIGTERM.

#include "free_port.hpp"
#include "notify_socket.hpp"
#include "relayd_harness.hpp"

#include "lanrelay/segment/proxy_codec.hpp"

#include <boost/json.hpp>

#include <signal.h>
#include <sys/stat.h>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace proxy = proxy_protocol;

bool can_connect(std::uint16_t port) {
  try {
    raw_connection c(port);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

class proxyhelperd_process : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-proxyhelperd.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    daemon_.reset();
    tinyproxy_.reset();
    nginx_.reset();
    fs::remove_all(dir_);
  }

  // `extra` is appended (more [[proxy]] tables, say).
  fs::path write_config(const std::string& proxy_url, const std::string& probe_url,
                        const std::string& extra = "", const std::string& interval = "200ms") {
    const fs::path file = dir_ / "proxyhelperd.toml";
    std::ofstream(file) << "[state]\ndir = \"" << (dir_ / "state").string() << "\"\n"
                        << "[http]\nlisten = \"127.0.0.1\"\nport = 0\n"
                        << "[https]\nport = 0\n"
                        << "[query]\nipv6 = false\n"
                        << "[health]\nprobe_url = \"" << probe_url
                        << "\"\ninterval = \"" << interval << "\"\ntimeout = \"1s\"\n"
                        << "[[proxy]]\nurl = \"" << proxy_url << "\"\n"
                        << extra;
    return file;
  }

  struct started {
    std::string public_key;
    std::uint16_t udp = 0;
    std::uint16_t http = 0;
  };

  started start(const fs::path& config, std::vector<std::string> environment = {}) {
    udp_port_ = free_port(SOCK_DGRAM);
    const fs::path log = dir_ / "proxyhelperd.log";
    fs::remove(log);
    daemon_.emplace(std::vector<std::string>{PROXYHELPERD_PATH, "--config", config.string(),
                                             "--query-port", std::to_string(udp_port_)},
                    process::options{.output = log, .environment = std::move(environment)});
    started s;
    EXPECT_TRUE(eventually(10s, [&] {
      return read_file(log).find("listening on udp") != std::string::npos;
    })) << read_file(log);
    const auto text = read_file(log);
    const auto key_at = text.find("public key lanrelay-ed25519:");
    if (key_at != std::string::npos) {
      s.public_key = text.substr(key_at + 11, text.find('\n', key_at) - key_at - 11);
    }
    const auto http_at = text.find("http 127.0.0.1:");
    if (http_at != std::string::npos) {
      s.http = static_cast<std::uint16_t>(std::stoul(text.substr(http_at + 15)));
    }
    s.udp = udp_port_;
    return s;
  }

  std::string get(std::uint16_t port, const std::string& target) {
    raw_connection c(port);
    c.send_all("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return c.read_response().message.body();
  }

  // Sends a proxy query from loopback; the answer datagram, or empty after `timeout`.
  std::vector<std::byte> ask(std::uint16_t port, std::uint64_t txid,
                             std::chrono::milliseconds timeout = 1s) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const auto query = proxy::encode(proxy::query{txid, 0x5151});
    ::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    pollfd p{fd, POLLIN, 0};
    std::vector<std::byte> answer;
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      answer.resize(proxy::max_datagram);
      const auto n = ::recv(fd, answer.data(), answer.size(), 0);
      answer.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    ::close(fd);
    return answer;
  }

  void start_nginx_and_tinyproxy() {
    nginx_port_ = free_port(SOCK_STREAM);
    fs::create_directories(dir_ / "www");
    std::ofstream(dir_ / "www" / "probe.txt") << "ok\n";
    std::ofstream(dir_ / "nginx.conf")
        << (::geteuid() == 0 ? "user root;\n" : "") << "master_process off;\nworker_processes 1;\n"
        << "pid " << (dir_ / "nginx.pid").string() << ";\nerror_log " << (dir_ / "nginx-error.log").string()
        << ";\nevents { worker_connections 64; }\nhttp { access_log off;\n"
        << "  client_body_temp_path " << (dir_ / "body").string() << "; proxy_temp_path "
        << (dir_ / "proxy").string() << "; fastcgi_temp_path " << (dir_ / "fastcgi").string()
        << "; uwsgi_temp_path " << (dir_ / "uwsgi").string() << "; scgi_temp_path "
        << (dir_ / "scgi").string() << ";\n  server { listen 127.0.0.1:" << nginx_port_
        << "; root " << (dir_ / "www").string() << "; } }\n";
    nginx_.emplace(std::vector<std::string>{"/usr/sbin/nginx", "-c", (dir_ / "nginx.conf").string(),
                                            "-p", dir_.string() + "/", "-g", "daemon off;"},
                   process::options{.output = dir_ / "nginx.out"});
    proxy_port_ = free_port(SOCK_STREAM);
    std::ofstream(dir_ / "tinyproxy.conf") << "Port " << proxy_port_ << "\nListen 127.0.0.1\n"
                                           << "Timeout 10\nMaxClients 16\nAllow 127.0.0.1\n"
                                           << "LogLevel Warning\n";
    tinyproxy_.emplace(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c",
                                                (dir_ / "tinyproxy.conf").string()},
                       process::options{.output = dir_ / "tinyproxy.out"});
    ASSERT_TRUE(eventually(10s, [&] { return can_connect(nginx_port_) && can_connect(proxy_port_); }))
        << read_file(dir_ / "nginx.out") << read_file(dir_ / "tinyproxy.out");
  }

  fs::path dir_;
  std::optional<process> daemon_;
  std::optional<process> nginx_;
  std::optional<process> tinyproxy_;
  std::uint16_t udp_port_ = 0;
  std::uint16_t nginx_port_ = 0;
  std::uint16_t proxy_port_ = 0;
};

TEST_F(proxyhelperd_process, check_config_reports_positions_and_the_default_text_is_valid) {
  const fs::path bad = dir_ / "bad.toml";
  std::ofstream(bad) << "[[proxy]]\nurl = \"http://u:p@proxy:3128\"\n[query]\nport = 0\n";
  process check({PROXYHELPERD_PATH, "--check-config", bad.string()},
                process::options{.output = dir_ / "check.out"});
  const auto status = check.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const auto out = read_file(dir_ / "check.out");
  EXPECT_NE(out.find(bad.string() + ":2:7: proxy.url:"), std::string::npos) << out;
  EXPECT_NE(out.find(bad.string() + ":4:8: query.port:"), std::string::npos) << out;

  process print({PROXYHELPERD_PATH, "--print-default-config"},
                process::options{.output = dir_ / "default.toml"});
  ASSERT_TRUE(print.wait_for(10s));
  std::ofstream(dir_ / "default.toml", std::ios::app) << "\n[[proxy]]\nurl = \"http://p:3128\"\n";
  process recheck({PROXYHELPERD_PATH, "--check-config", (dir_ / "default.toml").string()},
                  process::options{.output = dir_ / "recheck.out"});
  const auto ok = recheck.wait_for(10s);
  ASSERT_TRUE(ok);
  EXPECT_EQ(WEXITSTATUS(*ok), 0) << read_file(dir_ / "recheck.out");
}

TEST_F(proxyhelperd_process, an_unhealthy_proxy_is_not_advertised_and_the_key_survives_restarts) {
  // Nothing listens on the proxy's port: every check is refused.
  const auto config = write_config("http://127.0.0.1:" + std::to_string(free_port(SOCK_STREAM)),
                                   "http://127.0.0.1:9/");
  const auto first = start(config);
  ASSERT_FALSE(first.public_key.empty());
  ASSERT_NE(first.http, 0);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "state" / "proxyhelper.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  EXPECT_TRUE(eventually(30s, [&] {
    const auto stats = json::parse(get(first.http, "/-/stats")).as_object();
    return stats.at("check_failures").to_number<int>() > 0;
  }));
  EXPECT_TRUE(ask(first.udp, 1, 300ms).empty());
  const auto stats = json::parse(get(first.http, "/-/stats")).as_object();
  EXPECT_EQ(stats.at("no_healthy_proxy").to_number<int>(), 1);
  EXPECT_EQ(stats.at("public_key").as_string(), first.public_key);
  EXPECT_NE(get(first.http, "/proxy.pac").find("\"DIRECT\""), std::string::npos);
  EXPECT_EQ(get(first.http, "/-/healthz"), "ok\n");

  // `systemctl reload` sends SIGHUP: an unchanged file changes nothing, and it keeps answering.
  daemon_->signal(SIGHUP);
  EXPECT_TRUE(eventually(30s, [&] {
    return read_file(dir_ / "proxyhelperd.log").find("event=reloaded applied=none") !=
           std::string::npos;
  }));
  EXPECT_EQ(get(first.http, "/-/healthz"), "ok\n");

  daemon_->signal(SIGTERM);
  const auto status = daemon_->wait_for(30s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);

  const auto second = start(config);
  EXPECT_EQ(second.public_key, first.public_key) << "agents pin the key: it must not change";
}

TEST_F(proxyhelperd_process, answers_are_signed_and_list_the_healthy_proxy) {
  ASSERT_NO_FATAL_FAILURE(start_nginx_and_tinyproxy());
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy_port_);
  const auto s = start(write_config(proxy_url, "http://127.0.0.1:" + std::to_string(nginx_port_) +
                                                   "/probe.txt"));
  std::vector<std::byte> answer;
  ASSERT_TRUE(eventually(30s, [&] {
    answer = ask(s.udp, 0xfeed, 300ms);
    return !answer.empty();
  })) << read_file(dir_ / "proxyhelperd.log");
  EXPECT_EQ(answer.size() <= proxy::query_datagram_size, true);
  const auto decoded = proxy::decode_answer(answer);
  ASSERT_TRUE(decoded) << decoded.error().message();
  ASSERT_EQ(decoded->proxies.size(), 1u);
  EXPECT_EQ(decoded->proxies[0].url, proxy_url);
  const auto pinned = parse_public_key(s.public_key).value();
  EXPECT_TRUE(proxy::check_answer(*decoded, answer, 0xfeed, {{pinned}, false},
                                  std::chrono::system_clock::now()));
  EXPECT_NE(get(s.http, "/wpad.dat").find("PROXY 127.0.0.1:" + std::to_string(proxy_port_)),
            std::string::npos);

  // The proxy goes away: within a check interval or two, answers stop.
  tinyproxy_->kill();
  EXPECT_TRUE(eventually(30s, [&] { return ask(s.udp, 0xbeef, 200ms).empty(); }));
}

// What an administrator sees: systemd told when it is ready (and how many proxies are healthy)
// and when it stops; /-/metrics, /-/status and the status page after real queries and health
// checks, before and after the proxy goes away.
TEST_F(proxyhelperd_process, monitoring_shows_queries_and_proxy_health) {
  ASSERT_NO_FATAL_FAILURE(start_nginx_and_tinyproxy());
  notify_socket notify;
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy_port_);
  const auto s = start(write_config(proxy_url, "http://127.0.0.1:" + std::to_string(nginx_port_) +
                                                   "/probe.txt"),
                       {notify.environment()});
  const auto ready = notify.wait_for("READY=1", 30s);
  ASSERT_TRUE(ready) << read_file(dir_ / "proxyhelperd.log");
  EXPECT_NE(ready->find("STATUS=answering on udp " + std::to_string(s.udp)), std::string::npos)
      << *ready;
  ASSERT_TRUE(eventually(30s, [&] { return !ask(s.udp, 0xa1, 300ms).empty(); }));

  const auto status = json::parse(get(s.http, "/-/status")).as_object();
  const auto& recent = status.at("recent_queries").as_array();
  ASSERT_FALSE(recent.empty());
  EXPECT_EQ(recent.at(0).at("outcome").as_string(), "answered");
  EXPECT_EQ(recent.at(0).at("client").as_string(), "127.0.0.1");
  EXPECT_EQ(recent.at(0).at("proxies").at(0).as_string(), proxy_url);
  const auto& p = status.at("proxies").at(0).as_object();
  EXPECT_EQ(p.at("url").as_string(), proxy_url);
  EXPECT_EQ(p.at("state").as_string(), "healthy");
  EXPECT_FALSE(p.at("history").as_array().empty());
  EXPECT_EQ(status.at("public_key").as_string(), s.public_key);

  const std::string label = "{proxy=\"" + proxy_url + "\"}";
  auto metrics = get(s.http, "/-/metrics");
  EXPECT_NE(metrics.find("lanrelay_proxy_healthy" + label + " 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lanrelay_proxy_queries_answered_total "), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("lanrelay_proxy_queries_answered_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lanrelay_proxy_health_checks_total{proxy=\"" + proxy_url +
                         "\",result=\"passed\"}"),
            std::string::npos)
      << metrics;

  const auto page = get(s.http, "/");
  EXPECT_NE(page.find("<h1>proxyhelperd</h1>"), std::string::npos);
  EXPECT_NE(page.find(proxy_url), std::string::npos);
  EXPECT_NE(page.find("answered"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);

  // The proxy goes away: the gauge drops, the failed checks count, and the next query is logged
  // as unanswered.
  tinyproxy_->kill();
  EXPECT_TRUE(eventually(30s, [&] {
    return get(s.http, "/-/metrics").find("lanrelay_proxy_healthy" + label + " 0\n") !=
           std::string::npos;
  }));
  EXPECT_TRUE(ask(s.udp, 0xa2, 300ms).empty());
  const auto after = json::parse(get(s.http, "/-/status")).as_object();
  EXPECT_EQ(after.at("recent_queries").at(0).at("outcome").as_string(), "no healthy proxy");
  EXPECT_GT(after.at("proxies").at(0).at("checks_failed").to_number<int>(), 0);

  daemon_->signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 30s));
  EXPECT_TRUE(daemon_->wait_for(30s));
}

// SIGHUP re-reads the file: a new proxy list is advertised once its new proxy passes a check, a
// proxy that stays keeps its health history, a bad file keeps the running configuration, and a
// changed port is reported as needing a restart.
TEST_F(proxyhelperd_process, reload_changes_the_advertised_proxies_without_a_restart) {
  ASSERT_NO_FATAL_FAILURE(start_nginx_and_tinyproxy());
  notify_socket notify;
  const std::string live = "http://127.0.0.1:" + std::to_string(proxy_port_);
  const std::string dead = "http://127.0.0.1:" + std::to_string(free_port(SOCK_STREAM));
  const std::string probe = "http://127.0.0.1:" + std::to_string(nginx_port_) + "/probe.txt";
  // A long interval: after the first round, only a reload can trigger a check.
  const auto config = write_config(dead, probe, "", "1h");
  const auto s = start(config, {notify.environment()});
  ASSERT_TRUE(notify.wait_for("READY=1", 30s));
  ASSERT_TRUE(eventually(30s, [&] {
    return json::parse(get(s.http, "/-/status")).at("proxies").at(0).at("checks_failed").to_number<int>() > 0;
  }));
  EXPECT_TRUE(ask(s.udp, 1, 300ms).empty());
  const auto log = dir_ / "proxyhelperd.log";

  // The working proxy is added, with a better priority; the dead one stays.
  write_config(dead, probe,
               "[[proxy]]\nurl = \"" + live + "\"\npriority = 1\n[log]\nlevel = \"debug\"\n", "1h");
  daemon_->signal(SIGHUP);
  const auto reloaded = notify.wait_for("READY=1", 30s);
  ASSERT_TRUE(reloaded) << read_file(log);
  EXPECT_NE(reloaded->find("STATUS=configuration reloaded"), std::string::npos) << *reloaded;
  std::vector<std::byte> answer;
  ASSERT_TRUE(eventually(30s, [&] {
    answer = ask(s.udp, 2, 300ms);
    return !answer.empty();
  })) << read_file(log);
  const auto decoded = proxy::decode_answer(answer).value();
  ASSERT_EQ(decoded.proxies.size(), 1u);
  EXPECT_EQ(decoded.proxies[0].url, live);
  EXPECT_NE(read_file(log).find("applied=log.level,proxy"), std::string::npos) << read_file(log);
  const auto status = json::parse(get(s.http, "/-/status"));
  for (const auto& p : status.at("proxies").as_array()) {
    if (p.at("url").as_string() == dead) {
      EXPECT_GE(p.at("checks_failed").to_number<int>(), 2) << "the dead proxy's history was kept";
    }
  }

  // A broken file: reported, the running configuration stays.
  std::ofstream(config) << "[[proxy]]\nurl = \"ftp://nope\"\n";
  daemon_->signal(SIGHUP);
  const auto refused = notify.wait_for("READY=1", 30s);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("STATUS=reload failed: "), std::string::npos) << *refused;
  EXPECT_NE(read_file(log).find("event=reload_failed problem=\"" + config.string() + ":2:"),
            std::string::npos)
      << read_file(log);
  EXPECT_TRUE(eventually(30s, [&] { return !ask(s.udp, 3, 300ms).empty(); }))
      << "the running configuration keeps answering";

  // A new port needs a restart: said so, and the old one keeps answering.
  write_config(live, probe, "", "1h");
  std::string text = read_file(config);
  text.replace(text.find("port = 0"), 8, "port = 1");
  std::ofstream(config) << text;
  daemon_->signal(SIGHUP);
  const auto partial = notify.wait_for("READY=1", 30s);
  ASSERT_TRUE(partial);
  EXPECT_NE(partial->find("restart to apply http.port"), std::string::npos) << *partial;
  EXPECT_EQ(get(s.http, "/-/healthz"), "ok\n");
}

}  // namespace
}  // namespace lanrelay::test
