// lanrelayd under a service manager played by the test (notify_socket.hpp): READY=1 once it
// listens, WATCHDOG=1 pings, STOPPING=1 on SIGTERM, and SIGHUP reloads announced by RELOADING=1
// and READY=1. A reload changes the peer cap, Retry-After and the cache size while transfers run,
// and those transfers end intact; a broken file keeps the running configuration; settings that
// need a restart are named and keep their running values.

#include "notify_socket.hpp"
#include "relayd_harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

constexpr std::size_t big_size = 32 << 20;  // far more than loopback socket buffers hold
constexpr std::string_view big_target = "/cache/installer/agent/14.0.1";

class reload_test : public testing::Test {
 protected:
  // Starts lanrelayd on `toml` (discovery off, see relayd) and waits for READY=1.
  void start(const std::string& toml, std::vector<std::string> environment = {}) {
    environment.push_back(notify_.environment());
    relay_ = std::make_unique<relayd>(toml, std::vector<std::string>{}, 0, environment);
    ASSERT_TRUE(notify_.wait_for("READY=1", 10s)) << relay_->log();
  }

  // Rewrites the configuration file, sends SIGHUP and waits for the reload to end: RELOADING=1,
  // then READY=1, whose message (with STATUS=) is returned.
  std::string reload(const std::string& toml) {
    std::ofstream(relay_->config_file(), std::ios::trunc) << "[discovery]\nenabled = false\n"
                                                           << toml;
    relay_->proc().signal(SIGHUP);
    EXPECT_TRUE(notify_.wait_for("RELOADING=1", 10s)) << relay_->log();
    auto ready = notify_.wait_for("READY=1", 10s);
    EXPECT_TRUE(ready) << relay_->log();
    return ready.value_or("");
  }

  void add_big() {
    big_ = random_bytes(big_size, 7);
    relay_->add({item_kind::installer, "agent", "14.0.1"}, big_);
  }

  // A download that holds a transfer slot and stalls: its head is read, its body is not. Each
  // comes from a client address of its own, so peers.max_peers_per_client never refuses it.
  std::unique_ptr<raw_connection> stalled_download() {
    const std::string source = "127.0.0." + std::to_string(20 + stalled_clients_++);
    auto c = std::make_unique<raw_connection>(relay_->port(), 4096, source.c_str());
    EXPECT_TRUE(c->connected());
    EXPECT_TRUE(c->send_all("GET " + std::string(big_target) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto head = c->read_head();
    EXPECT_TRUE(head);
    EXPECT_NE(head.value_or("").find("200 OK"), std::string::npos) << head.value_or("no head");
    return c;
  }

  // The rest of a stalled download's body, read to its end.
  static std::string finish(raw_connection& c, std::size_t size) {
    std::string body = std::move(c.pending());
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (body.size() < size &&
           c.read_some(body, deadline, 1 << 20) == raw_connection::read_status::data) {
    }
    return body;
  }

  // A fresh GET of the big item: the status and Retry-After.
  std::pair<http::status, std::string> try_download() {
    auto res = relay_->request("GET", big_target, "Range: bytes=0-99\r\n");
    EXPECT_TRUE(res.complete);
    return {res.message.result(), std::string(res.message[http::field::retry_after])};
  }

  notify_socket notify_;
  int stalled_clients_ = 0;
  std::unique_ptr<relayd> relay_;
  std::string big_;
};

TEST_F(reload_test, peer_cap_follows_reloads_while_transfers_run_intact) {
  start("[peers]\nmax_peers = 2\n");
  add_big();
  auto first = stalled_download();
  auto second = stalled_download();
  EXPECT_EQ(try_download(), std::pair(http::status::service_unavailable, std::string("5")));

  const auto raised = reload("[peers]\nmax_peers = 4\nretry_after = \"7s\"\n");
  EXPECT_NE(raised.find("STATUS=configuration reloaded"), std::string::npos) << raised;
  auto third = stalled_download();
  auto fourth = stalled_download();
  EXPECT_EQ(try_download(), std::pair(http::status::service_unavailable, std::string("7")));
  EXPECT_EQ(relay_->stat("active_transfers"), 4U);

  // Below the running count: nobody is cut off, newcomers wait.
  reload("[peers]\nmax_peers = 1\n");
  EXPECT_EQ(try_download(), std::pair(http::status::service_unavailable, std::string("5")));
  for (auto* c : {first.get(), second.get(), third.get(), fourth.get()}) {
    const std::string body = finish(*c, big_size);
    EXPECT_EQ(body.size(), big_size);
    EXPECT_TRUE(body == big_) << "a transfer running across reloads was damaged";
  }
  ASSERT_TRUE(eventually(10s, [&] { return relay_->stat("active_transfers") == 0; }));
  EXPECT_EQ(relay_->stat("transfers_aborted"), 0U);

  auto only = stalled_download();
  EXPECT_EQ(try_download().first, http::status::service_unavailable);
  only.reset();
  ASSERT_TRUE(eventually(10s, [&] { return relay_->stat("active_transfers") == 0; }));
  EXPECT_EQ(try_download().first, http::status::partial_content);

  const std::string log = relay_->log();
  EXPECT_NE(log.find("event=reloaded applied=peers.max_peers,peers.retry_after"),
            std::string::npos)
      << log;
  EXPECT_TRUE(relay_->alive());
}

TEST_F(reload_test, broken_file_is_reported_and_the_running_configuration_kept) {
  start("[peers]\nmax_peers = 1\n");
  add_big();
  auto running = stalled_download();

  // Line 4 is `max_peers = "many"`: its value starts in column 13.
  const auto ready = reload("[peers]\nmax_peers = \"many\"\n[htttp]\nport = 1\n");
  const std::string where = relay_->config_file().string() + ":4:13";
  EXPECT_NE(ready.find("STATUS=reload failed: " + where), std::string::npos) << ready;
  const std::string log = relay_->log();
  EXPECT_NE(log.find("event=reload_failed problem=\"" + where), std::string::npos) << log;
  EXPECT_NE(log.find("event=reload_failed problem=\"" + relay_->config_file().string() + ":5:"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("event=reload_failed problems=2 hint=\"the running configuration is kept"), std::string::npos);

  EXPECT_EQ(try_download().first, http::status::service_unavailable);  // still max_peers = 1
  EXPECT_TRUE(finish(*running, big_size) == big_);
  EXPECT_TRUE(relay_->alive());

  // Fixed: the next SIGHUP takes it.
  reload("[peers]\nmax_peers = 3\n");
  auto a = stalled_download();
  auto b = stalled_download();
  EXPECT_EQ(try_download().first, http::status::partial_content);
}

TEST_F(reload_test, settings_that_need_a_restart_are_named_and_keep_running_values) {
  start("");
  const auto ready = reload("[http]\nmax_connections = 1\n[trust]\ncatalog_lifetime = \"2h\"\n");
  EXPECT_NE(ready.find("restart to apply http.max_connections,trust.catalog_lifetime"),
            std::string::npos)
      << ready;
  EXPECT_NE(relay_->log().find(
                "event=reload_needs_restart settings=http.max_connections,trust.catalog_lifetime"),
            std::string::npos)
      << relay_->log();

  // Still 2000 connections, not 1.
  raw_connection idle_a(relay_->port());
  raw_connection idle_b(relay_->port());
  ASSERT_TRUE(idle_a.connected() && idle_b.connected());
  auto res = relay_->request("GET", "/-/healthz");
  ASSERT_TRUE(res.complete);
  EXPECT_EQ(res.message.result(), http::status::ok);
}

TEST_F(reload_test, smaller_cache_size_evicts_the_least_recently_used_item_at_once) {
  start("");
  const std::string old_bytes = random_bytes(1 << 20, 11);
  const std::string new_bytes = random_bytes(1 << 20, 12);
  relay_->add({item_kind::file, "old", "1"}, old_bytes);
  relay_->add({item_kind::file, "new", "1"}, new_bytes);
  auto used = relay_->request("GET", "/cache/file/old/1");  // "old" is now the most recently used
  ASSERT_EQ(used.message.result(), http::status::ok);

  reload("[cache]\nmax_size = \"1536KiB\"\n");
  EXPECT_EQ(relay_->request("GET", "/cache/file/new/1").message.result(), http::status::not_found);
  auto kept = relay_->request("GET", "/cache/file/old/1");
  EXPECT_EQ(kept.message.result(), http::status::ok);
  EXPECT_TRUE(kept.message.body() == old_bytes);
  EXPECT_NE(relay_->log().find("event=cache_item_evicted reason=max_size_lowered"), std::string::npos);
}

TEST_F(reload_test, watchdog_pings_and_stopping_is_announced) {
  start("", {"WATCHDOG_USEC=200000"});  // WatchdogSec=200ms: a ping every 100 ms
  // Pings keep coming; their period is the one the daemon logs (half of WatchdogSec), not a
  // time this test measures: a busy machine delays timers. The waits are hang guards.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(notify_.wait_for("WATCHDOG=1", 30s));
  }
  EXPECT_NE(relay_->log().find("event=watchdog_on period_ms=200 ping_ms=100"), std::string::npos);

  relay_->proc().signal(SIGTERM);
  EXPECT_TRUE(notify_.wait_for("STOPPING=1", 30s));
  const auto status = relay_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace lanrelay::test
