// The real lanrelayd on 127.0.0.1 (discovery off): /-/metrics and /-/status after real traffic —
// whole downloads, a HEAD, a range, a 503 while the only slot is held by a slow reader — move
// exactly the counters they should; the exposition parses with the Prometheus Python client;
// the admin endpoint takes its body over the wire and wants the token.

#include "au_upstream.hpp"
#include "relayd_harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace lanrelay::test {
namespace {

const std::string admin_token = "integration-token-0123456789";

// "name{labels}" -> value, for every sample line of an exposition.
std::map<std::string, double> parse_samples(const std::string& text) {
  std::map<std::string, double> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end == std::string::npos ? text.size() : end + 1;
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

class metrics_integration : public testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<relayd>("[peers]\nmax_peers = 1\n[admin]\ntoken = \"" + admin_token +
                                      "\"\nread_networks = [\"127.0.0.0/8\"]\n");
    small_ = random_bytes(small_size, 11);
    big_ = random_bytes(big_size, 12);
    relay_->add({item_kind::installer, "agent-x64", "14.0.1234"}, small_);
    relay_->add({item_kind::pattern, "vsapi", "16.679.00"}, big_);
  }

  std::string scrape_text() {
    auto res = relay_->request("GET", "/-/metrics");
    EXPECT_TRUE(res.complete);
    EXPECT_EQ(res.message.result(), http::status::ok);
    EXPECT_EQ(res.message[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    return res.message.body();
  }
  std::map<std::string, double> scrape() { return parse_samples(scrape_text()); }

  static constexpr std::size_t small_size = 200 * 1024 + 3;
  static constexpr std::size_t big_size = 32 << 20;  // far more than loopback buffers hold
  std::unique_ptr<relayd> relay_;
  std::string small_;
  std::string big_;
};

TEST_F(metrics_integration, counters_follow_real_traffic) {
  auto before = scrape();
  EXPECT_EQ(before["lanrelay_cache_items"], 2);
  EXPECT_EQ(before["lanrelay_cache_bytes"], static_cast<double>(small_size + big_size));
  EXPECT_EQ(before["lanrelay_transfer_slots"], 1);
  EXPECT_EQ(before["lanrelay_served_bytes_total"], 0);

  // One transfer slot: the client has every byte before the relay has released the slot, so each
  // download waits for the release (an event); on a busy machine the next one found it taken.
  const auto slot_released = [&] {
    return eventually(30s, [&] { return scrape()["lanrelay_transfers_running"] == 0; });
  };
  const std::string small_path = "/cache/installer/agent-x64/14.0.1234";
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(slot_released());
    auto got = relay_->request("GET", small_path);
    ASSERT_EQ(got.message.result(), http::status::ok);
    ASSERT_EQ(got.message.body().size(), small_size);
  }
  ASSERT_TRUE(slot_released());
  EXPECT_EQ(relay_->request("HEAD", small_path).message.result(), http::status::ok);
  ASSERT_TRUE(slot_released());
  auto range = relay_->request("GET", small_path, "Range: bytes=100-1099\r\n");
  ASSERT_EQ(range.message.result(), http::status::partial_content);

  ASSERT_TRUE(slot_released());

  // A slow reader holds the only slot: the next download is refused as busy.
  raw_connection slow(relay_->port(), 4096);
  ASSERT_TRUE(slow.connected());
  ASSERT_TRUE(slow.send_all("GET /cache/pattern/vsapi/1667900 HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto head = slow.read_head();
  ASSERT_TRUE(head);
  ASSERT_NE(head->find("200 OK"), std::string::npos) << *head;
  auto busy = relay_->request("GET", small_path);
  ASSERT_EQ(busy.message.result(), http::status::service_unavailable);

  auto during = scrape();
  EXPECT_EQ(during["lanrelay_transfers_running"], 1);
  EXPECT_EQ(during["lanrelay_transfers_refused_busy_total"], 1);

  auto status = relay_->request("GET", "/-/status");
  ASSERT_EQ(status.message.result(), http::status::ok);
  const auto json = boost::json::parse(status.message.body()).as_object();
  const auto& running = json.at("transfers").at("list").as_array();
  ASSERT_EQ(running.size(), 1U);
  EXPECT_EQ(running[0].at("item").as_string(), "/cache/pattern/vsapi/1667900");
  EXPECT_EQ(running[0].at("client").as_string(), "127.0.0.1");
  EXPECT_EQ(running[0].at("length").to_number<std::uint64_t>(), big_size);
  EXPECT_LT(running[0].at("bytes_sent").to_number<std::uint64_t>(), big_size);

  slow.close();  // the reader vanishes: the transfer is aborted and its slot freed
  ASSERT_TRUE(eventually(10s, [&] { return scrape()["lanrelay_transfers_running"] == 0; }));

  auto after = scrape();
  const double whole = 2.0 * small_size + 1000;
  const double served = after["lanrelay_served_bytes_total"];
  EXPECT_GE(served, whole);  // plus what the slow reader's socket took before it closed
  EXPECT_LT(served, whole + big_size);
  EXPECT_EQ(after["lanrelay_transfers_completed_total"], 3);  // two whole, one range
  EXPECT_EQ(after["lanrelay_transfers_aborted_total"], 1);
  EXPECT_EQ(after["lanrelay_transfers_refused_busy_total"], 1);
  EXPECT_EQ(after["lanrelay_upstream_fetched_bytes_total"], 0);
  EXPECT_EQ(after["lanrelay_wan_spared_bytes"], served);
  EXPECT_EQ(after["lanrelay_http_bad_requests_total"], 0);
  EXPECT_EQ(after["lanrelay_hash_mismatches_total{where=\"relay\"}"], 0);
  // Requests: the scrapes and status requests count too; everything here was one request each.
  EXPECT_GE(after["lanrelay_http_requests_total"] - before["lanrelay_http_requests_total"], 8);
  EXPECT_EQ(after["lanrelay_cache_items"], 2);

  // Everything served shows in the 24-hour history, and the peer table has the loopback client.
  const auto final_status =
      boost::json::parse(relay_->request("GET", "/-/status").message.body()).as_object();
  double history = 0;
  for (const auto& v : final_status.at("traffic").at("served").as_array()) {
    history += v.to_number<double>();
  }
  EXPECT_EQ(history, served);
  const auto& peers = final_status.at("top_peers").as_array();
  ASSERT_EQ(peers.size(), 1U);
  EXPECT_EQ(peers[0].at("client").as_string(), "127.0.0.1");
  EXPECT_EQ(peers[0].at("bytes").to_number<double>(), served);
  EXPECT_EQ(peers[0].at("transfers").to_number<int>(), 4);
}

// The Prometheus project's Python client parses the whole exposition (Debian
// python3-prometheus-client): names, HELP/TYPE lines, label escaping and values are valid.
TEST_F(metrics_integration, exposition_parses_with_the_prometheus_client) {
  ASSERT_EQ(relay_->request("GET", "/cache/installer/agent-x64/14.0.1234").message.result(),
            http::status::ok);
  const auto text = scrape_text();
  const auto file = relay_->dir() / "metrics.txt";
  std::ofstream(file) << text;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "families = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n"
      "values = {s.name: s.value for f in families for s in f.samples if not s.labels}\n"
      "print(len(families), int(values['lanrelay_served_bytes_total']))\n";
  const auto script_file = relay_->dir() / "parse.py";
  std::ofstream(script_file) << script;
  const std::string command =
      "/usr/bin/python3 " + script_file.string() + " " + file.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (const auto n = std::fread(buf, 1, sizeof buf, pipe)) {
    output.append(buf, n);
  }
  const int status = ::pclose(pipe);
  ASSERT_EQ(status, 0) << "the Prometheus client could not parse /-/metrics (install "
                          "python3-prometheus-client, deploy/install-deps.sh):\n"
                       << output << "\n---\n" << text;
  const auto counted = parse_samples(text).size();
  EXPECT_GT(counted, 20U);
  EXPECT_NE(output.find(" " + std::to_string(small_size) + "\n"), std::string::npos) << output;
}

TEST_F(metrics_integration, log_level_changes_over_the_wire_with_the_token) {
  const auto put = [&](std::string_view body, std::string_view auth) {
    raw_connection c(relay_->port());
    std::string text = "PUT /-/log-level HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n";
    if (!auth.empty()) {
      text += "Authorization: " + std::string(auth) + "\r\n";
    }
    text += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
    EXPECT_TRUE(c.send_all(text));
    return c.read_response();
  };
  EXPECT_EQ(put("warn", "").message.result(), http::status::unauthorized);
  EXPECT_EQ(put("warn", "Bearer wrong-token-wrong-token").message.result(),
            http::status::unauthorized);
  EXPECT_EQ(put(std::string(2000, 'x'), "Bearer " + admin_token).message.result(),
            http::status::payload_too_large);
  const auto ok = put("warn", "Bearer " + admin_token);
  ASSERT_TRUE(ok.complete);
  EXPECT_EQ(ok.message.result(), http::status::ok);
  EXPECT_EQ(relay_->request("GET", "/-/log-level").message.body(), "warn\n");
  EXPECT_NE(relay_->log().find("event=log_level_changed level=warn client=127.0.0.1"),
            std::string::npos);
  // At warn, a debug event (a refused request) is no longer written.
  const auto size = relay_->log().size();
  EXPECT_EQ(relay_->request("GET", "/cache/file/none%2e/1").message.result(),
            http::status::bad_request);
  EXPECT_EQ(relay_->log().size(), size);
}

// SIGHUP with a new [admin] token: the old one stops working at once, no restart.
TEST_F(metrics_integration, a_reload_rotates_the_admin_token) {
  const std::string rotated = "rotated-token-0123456789abcdef";
  const auto put = [&](const std::string& token) {
    raw_connection c(relay_->port());
    EXPECT_TRUE(c.send_all("PUT /-/log-level HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                           token + "\r\nContent-Length: 5\r\n\r\ndebug"));
    return c.read_response().message.result();
  };
  ASSERT_EQ(put(admin_token), http::status::ok);
  std::ofstream(relay_->dir() / "relayd.toml")
      << "[discovery]\nenabled = false\n[peers]\nmax_peers = 1\n[admin]\ntoken = \"" << rotated
      << "\"\nread_networks = [\"127.0.0.0/8\"]\n";
  relay_->proc().signal(SIGHUP);
  ASSERT_TRUE(eventually(10s, [&] {
    return relay_->log().find("event=reloaded applied=admin.token") != std::string::npos;
  })) << relay_->log();
  EXPECT_EQ(put(admin_token), http::status::unauthorized);
  EXPECT_EQ(put(rotated), http::status::ok);
}

// `lanrelay status HOST:PORT` prints the same status for a terminal, and `--json` the document.
TEST_F(metrics_integration, lanrelay_status_prints_the_relays_status) {
  ASSERT_EQ(relay_->request("GET", "/cache/installer/agent-x64/14.0.1234").message.result(),
            http::status::ok);
  const auto run = [&](std::vector<std::string> extra) {
    const auto out = relay_->dir() / ("status" + std::to_string(extra.size()) + ".out");
    std::vector<std::string> argv{LANRELAY_CLI_PATH, "status",
                                  "127.0.0.1:" + std::to_string(relay_->port())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process cli(argv, process::options{.output = out});
    const auto status = cli.wait_for(10s);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(out);
    return read_file(out);
  };
  const auto text = run({});
  EXPECT_NE(text.find("lanrelay relay "), std::string::npos) << text;
  EXPECT_NE(text.find("agent-x64"), std::string::npos) << text;
  EXPECT_NE(text.find("14.0.1234"), std::string::npos) << text;
  EXPECT_NE(text.find("1667900"), std::string::npos) << text;
  EXPECT_NE(text.find("127.0.0.1"), std::string::npos) << text;  // the top peer
  EXPECT_NE(text.find("none configured"), std::string::npos) << text;

  const auto json = boost::json::parse(run({"--json"})).as_object();
  EXPECT_EQ(json.at("cache").at("item_count").to_number<int>(), 2);
  EXPECT_EQ(json.at("totals").at("bytes_served").to_number<std::uint64_t>(), small_size);

  process refused({LANRELAY_CLI_PATH, "status", "127.0.0.1:1"},
                  process::options{.output = relay_->dir() / "refused.out"});
  const auto status = refused.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_NE(read_file(relay_->dir() / "refused.out").find("is lanrelayd running there"),
            std::string::npos);
}

// The relay's end of `client`, duplicated out of the relay process (pidfd_getfd, Linux 5.6; the
// test runs as root) and found by its peer address: whether it has TCP_NODELAY set. nullopt
// when it cannot be found.
std::optional<bool> relay_side_has_nodelay(pid_t relay, int client) {
  sockaddr_in local{};
  socklen_t local_size = sizeof local;
  if (::getsockname(client, reinterpret_cast<sockaddr*>(&local), &local_size) != 0) {
    return std::nullopt;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, relay, 0));
  if (pidfd < 0) {
    return std::nullopt;
  }
  std::optional<bool> found;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(relay) + "/fd", ec)) {
    const int target = std::atoi(entry.path().filename().c_str());
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target, 0));
    if (fd < 0) {
      continue;
    }
    sockaddr_in peer{};
    socklen_t peer_size = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) == 0 &&
        peer.sin_family == AF_INET && peer.sin_port == local.sin_port &&
        peer.sin_addr.s_addr == local.sin_addr.s_addr) {
      int on = 0;
      socklen_t on_size = sizeof on;
      if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &on_size) == 0) {
        found = on != 0;
      }
    }
    ::close(fd);
    if (found) {
      break;
    }
  }
  ::close(pidfd);
  return found;
}

// Found while measuring the monitoring overhead: a response head and a small body are two writes,
// and with Nagle's algorithm the body waited for the client's delayed ACK (~40 ms per item; 25
// keep-alive GETs of 1 KiB took 1.1 s). With TCP_NODELAY they take a few milliseconds. Timing
// the requests is what a busy machine breaks, so the test reads the option off the relay's own
// socket instead; the timing lives in tests/bench (http_bench.sh).
TEST_F(metrics_integration, small_items_on_a_keep_alive_connection_do_not_wait_for_delayed_acks) {
  const std::string one_kib = random_bytes(1024, 13);
  relay_->add({item_kind::file, "tiny", "1"}, one_kib);
  raw_connection c(relay_->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send_all("GET /cache/file/tiny/1 HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto res = c.read_response();
    ASSERT_TRUE(res.complete);
    ASSERT_EQ(res.message.body(), one_kib);
  }
  const auto nodelay = relay_side_has_nodelay(relay_->proc().pid(), c.fd());
  ASSERT_TRUE(nodelay) << "the relay's end of the connection was not found";
  EXPECT_TRUE(*nodelay) << "the relay's connection has Nagle's algorithm on";
}

// A mirror source against a real nginx upstream: "update now" needs the admin token, and its
// result shows in /-/metrics (syncs by result, age of the last success, upstream bytes), in
// /-/status and on the status page.
TEST(metrics_mirror, a_sync_shows_in_metrics_status_and_page) {
  char pattern[] = "/tmp/lanrelay-metrics-mirror.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path root = pattern;
  au_tree tree(root / "www");
  const std::string zip = "pattern/vsapi667905.zip";
  const auto zip_size = tree.add(zip, 300'000);
  tree.publish("[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n"
               "[PATTERN]\r\nP.4=" + zip + ",1667905," + std::to_string(zip_size) + "\r\n");
  nginx upstream(root / "nginx", root / "www");
  upstream.start();
  {
    relayd relay("[admin]\ntoken = \"" + admin_token +
                 "\"\n[[mirror.source]]\nname = \"au-main\"\nurl = \"http://127.0.0.1:" +
                 std::to_string(upstream.port()) + "/activeupdate/\"\n");
    const auto sync = [&](std::string_view auth) {
      raw_connection c(relay.port());
      std::string text = "POST /-/mirror/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n";
      if (!auth.empty()) {
        text += "Authorization: " + std::string(auth) + "\r\n";
      }
      EXPECT_TRUE(c.send_all(text + "\r\n"));
      return c.read_response(60s);
    };
    EXPECT_EQ(sync("").message.result(), http::status::unauthorized);
    const auto synced = sync("Bearer " + admin_token);
    ASSERT_TRUE(synced.complete);
    ASSERT_EQ(synced.message.result(), http::status::ok) << synced.message.body();

    auto metrics = parse_samples(relay.request("GET", "/-/metrics").message.body());
    const double ok = metrics["lanrelay_mirror_syncs_total{source=\"au-main\",result=\"ok\"}"];
    const double unchanged =
        metrics["lanrelay_mirror_syncs_total{source=\"au-main\",result=\"not_modified\"}"];
    EXPECT_GE(ok, 1);  // the start-up sync may have run first; then ours found it unchanged
    EXPECT_EQ(metrics["lanrelay_mirror_syncs_total{source=\"au-main\",result=\"failed\"}"], 0);
    EXPECT_GE(ok + unchanged, 1);
    const double age = metrics["lanrelay_mirror_last_success_age_seconds{source=\"au-main\"}"];
    EXPECT_GE(age, 0);
    EXPECT_LT(age, 60);
    EXPECT_GE(metrics["lanrelay_upstream_fetched_bytes_total"], static_cast<double>(zip_size));

    const auto status =
        boost::json::parse(relay.request("GET", "/-/status").message.body()).as_object();
    ASSERT_TRUE(status.at("mirrors").at("configured").as_bool());
    const auto& source = status.at("mirrors").at("sources").as_array().at(0);
    EXPECT_EQ(source.at("name").as_string(), "au-main");
    EXPECT_TRUE(source.at("has_snapshot").as_bool());
    EXPECT_FALSE(source.at("last_success").is_null());
    EXPECT_GE(status.at("totals").at("bytes_fetched_upstream").to_number<std::uint64_t>(),
              zip_size);

    const auto page = relay.request("GET", "/").message.body();
    EXPECT_NE(page.find("<td>au-main</td>"), std::string::npos);
    EXPECT_EQ(page.find("No mirror source is configured."), std::string::npos);
  }
  upstream.kill();
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace lanrelay::test
