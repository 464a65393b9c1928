// The real lanrelayd on 127.0.0.1: content served from a store another process fills while it
// runs, ranges and conditional requests, traversal attempts, keep-alive, the peer cap, timeouts
// and graceful shutdown. Every wait has a deadline; the daemon is killed if a test fails.

#include "relayd_harness.hpp"

#include "lanrelay/base/sha256.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

using namespace std::string_literals;

constexpr std::size_t small_size = 100 * 1024 + 7;
constexpr std::size_t big_size = 32 << 20;  // far more than loopback socket buffers hold

std::string etag_of(const item& it) { return "\"" + to_hex(it.sha256) + "\""; }

class relay_integration : public testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<relayd>();
    small_ = random_bytes(small_size, 1);
    // Added after the daemon started: it must see the item without a restart.
    small_item_ = relay_->add({item_kind::file, "small", "1"}, small_);
  }

  std::unique_ptr<relayd> relay_;
  std::string small_;
  item small_item_;
};

TEST_F(relay_integration, get_and_head_serve_an_item_added_while_running) {
  auto get = relay_->request("GET", "/cache/file/small/1");
  ASSERT_TRUE(get.complete);
  EXPECT_EQ(get.message.result(), http::status::ok);
  EXPECT_EQ(get.message.body(), small_);
  EXPECT_EQ(get.message[http::field::content_length], std::to_string(small_size));
  EXPECT_EQ(get.message[http::field::content_type], "application/octet-stream");
  EXPECT_EQ(get.message[http::field::accept_ranges], "bytes");
  EXPECT_EQ(get.message[http::field::etag], etag_of(small_item_));

  auto head = relay_->request("HEAD", "/cache/file/small/1");
  ASSERT_TRUE(head.complete);
  EXPECT_EQ(head.message.result(), http::status::ok);
  EXPECT_EQ(head.message[http::field::content_length], std::to_string(small_size));
  EXPECT_EQ(head.message[http::field::etag], etag_of(small_item_));

  auto pattern = random_bytes(1000, 2);
  relay_->add({item_kind::pattern, "vsapi", "16.679.00"}, pattern);
  auto by_display = relay_->request("GET", "/cache/pattern/vsapi/16.679.00");
  EXPECT_EQ(by_display.message.body(), pattern);
  auto by_number = relay_->request("GET", "/cache/pattern/vsapi/1667900");
  EXPECT_EQ(by_number.message.body(), pattern);

  auto catalog = relay_->request("GET", "/-/catalog");
  ASSERT_TRUE(catalog.complete);
  const auto items = boost::json::parse(catalog.message.body()).at("items").as_array();
  EXPECT_EQ(items.size(), 2U);

  ASSERT_TRUE(relay_->store().remove({item_kind::file, "small", "1"}));
  EXPECT_EQ(relay_->request("GET", "/cache/file/small/1").message.result(),
            http::status::not_found);

  auto health = relay_->request("GET", "/-/healthz");
  EXPECT_EQ(health.message.result(), http::status::ok);
  EXPECT_EQ(health.message.body(), "ok");
  EXPECT_EQ(relay_->request("GET", "/cache/file/missing/1").message.result(),
            http::status::not_found);
  auto post = relay_->request("POST", "/cache/file/small/1", "Content-Length: 0\r\n");
  EXPECT_EQ(post.message.result(), http::status::method_not_allowed);
  EXPECT_EQ(post.message[http::field::allow], "GET, HEAD");
}

TEST_F(relay_integration, ranges) {
  auto part = relay_->request("GET", "/cache/file/small/1", "Range: bytes=100-199\r\n");
  ASSERT_TRUE(part.complete);
  EXPECT_EQ(part.message.result(), http::status::partial_content);
  EXPECT_EQ(part.message[http::field::content_range],
            "bytes 100-199/" + std::to_string(small_size));
  EXPECT_EQ(part.message.body(), small_.substr(100, 100));

  auto tail = relay_->request("GET", "/cache/file/small/1", "Range: bytes=-10\r\n");
  EXPECT_EQ(tail.message.result(), http::status::partial_content);
  EXPECT_EQ(tail.message.body(), small_.substr(small_size - 10));

  auto open_ended = relay_->request("GET", "/cache/file/small/1", "Range: bytes=102400-\r\n");
  EXPECT_EQ(open_ended.message.body(), small_.substr(102400));

  auto beyond = relay_->request("GET", "/cache/file/small/1", "Range: bytes=999999999-\r\n");
  ASSERT_TRUE(beyond.complete);
  EXPECT_EQ(beyond.message.result(), http::status::range_not_satisfiable);
  EXPECT_EQ(beyond.message[http::field::content_range], "bytes */" + std::to_string(small_size));

  auto several = relay_->request("GET", "/cache/file/small/1", "Range: bytes=0-1,5-6\r\n");
  EXPECT_EQ(several.message.result(), http::status::ok);
  EXPECT_EQ(several.message.body(), small_);
}

TEST_F(relay_integration, conditional_requests) {
  const std::string etag = etag_of(small_item_);
  auto cached = relay_->request("GET", "/cache/file/small/1", "If-None-Match: " + etag + "\r\n");
  ASSERT_TRUE(cached.complete);
  EXPECT_EQ(cached.message.result(), http::status::not_modified);
  EXPECT_TRUE(cached.message.body().empty());

  auto weak = relay_->request("GET", "/cache/file/small/1",
                              "If-None-Match: \"x\", W/" + etag + "\r\n");
  EXPECT_EQ(weak.message.result(), http::status::not_modified);
  auto star = relay_->request("GET", "/cache/file/small/1", "If-None-Match: *\r\n");
  EXPECT_EQ(star.message.result(), http::status::not_modified);
  auto stale = relay_->request("GET", "/cache/file/small/1", "If-None-Match: \"old\"\r\n");
  EXPECT_EQ(stale.message.result(), http::status::ok);

  auto resume = relay_->request("GET", "/cache/file/small/1",
                                "Range: bytes=10-19\r\nIf-Range: " + etag + "\r\n");
  EXPECT_EQ(resume.message.result(), http::status::partial_content);
  EXPECT_EQ(resume.message.body(), small_.substr(10, 10));

  auto changed = relay_->request("GET", "/cache/file/small/1",
                                 "Range: bytes=10-19\r\nIf-Range: \"old\"\r\n");
  EXPECT_EQ(changed.message.result(), http::status::ok);
  EXPECT_EQ(changed.message.body(), small_);
}

TEST_F(relay_integration, keep_alive_and_pipelining) {
  raw_connection c(relay_->port());
  ASSERT_TRUE(c.connected());
  const std::string get = "GET /cache/file/small/1 HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send_all(get));
    auto res = c.read_response();
    ASSERT_TRUE(res.complete);
    EXPECT_EQ(res.message.body(), small_);
    EXPECT_TRUE(res.message.keep_alive());
  }
  ASSERT_TRUE(c.send_all("HEAD /cache/file/small/1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.read_response(10s, true).message.result(), http::status::ok);
  ASSERT_TRUE(c.send_all("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.read_response().message.result(), http::status::not_found);

  // Two requests in one segment, answered in order.
  ASSERT_TRUE(c.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n" + get));
  EXPECT_EQ(c.read_response().message.body(), "ok");
  EXPECT_EQ(c.read_response().message.body(), small_);

  ASSERT_TRUE(c.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  auto last = c.read_response();
  EXPECT_FALSE(last.message.keep_alive());
  EXPECT_TRUE(c.closed_within(30s));
  EXPECT_EQ(relay_->stat("connections_accepted"), 2U);  // this one and the stats request
}

TEST_F(relay_integration, traversal_attempts_never_reach_files) {
  const std::string secret = "TOP-SECRET-" + std::to_string(::getpid());
  std::ofstream(relay_->dir() / "state" / "secret.txt") << secret;
  const std::string object = "objects/" + to_hex(small_item_.sha256);

  const std::vector<std::string> targets = {
      "/cache/file/../../secret.txt",
      "/cache/../secret.txt",
      "/../secret.txt",
      "/../../../../../../etc/passwd",
      "/cache/file/small/../../../secret.txt",
      "/cache/file/%2e%2e/%2e%2e/secret.txt",
      "/cache/file/%2E%2E/1",
      "/cache/file/.%2e/1",
      "/cache/file/..%2f..%2fsecret.txt/1",
      "/cache/file/..%2F..%2F..%2Fetc%2Fpasswd/1",
      "/cache/file/..%5c..%5csecret.txt/1",
      "/cache/file/small%00/1",
      "/cache/file/small/1%00.txt",
      "/cache/file/small\\..\\..\\secret.txt/1",
      "/cache/file/%252e%252e/1",
      "/cache/file/%c0%ae%c0%ae/1",
      "//etc/passwd",
      "/./secret.txt",
      "/cache/./file/small/1",
      "/cache//file/small/1",
      "/cache/file/small/1/",
      "/secret.txt",
      "/state/secret.txt",
      "/index.json",
      "/cache/index.json",
      "/" + object,
      "/cache/" + object,
      "/cache/file/small",
      "/etc/passwd",
      "http://127.0.0.1/../../etc/passwd",
      "http://127.0.0.1/cache/file/small/1",
      "127.0.0.1:80",
      "*",
      "file:///etc/passwd",
  };
  for (const auto& target : targets) {
    for (const char* method : {"GET", "HEAD"}) {
      raw_connection c(relay_->port());
      ASSERT_TRUE(c.connected());
      ASSERT_TRUE(c.send_all(std::string(method) + " " + target +
                             " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
      auto res = c.read_response(10s, std::string_view(method) == "HEAD");
      ASSERT_TRUE(res.complete) << target;
      const auto status = res.message.result();
      EXPECT_TRUE(status == http::status::bad_request || status == http::status::not_found)
          << method << " " << target << " -> " << res.message.result_int();
      EXPECT_EQ(res.message.body().find(secret), std::string::npos) << target;
      EXPECT_EQ(res.message.body().find("root:"), std::string::npos) << target;
      EXPECT_EQ(res.message.body().find(small_.substr(0, 64)), std::string::npos) << target;
      EXPECT_NE(res.message[http::field::content_type], "application/octet-stream") << target;
    }
  }

  // Raw bytes Beast itself refuses: answered 400 and closed.
  for (const std::string& request :
       {"GET /cache/file/sm\0all/1 HTTP/1.1\r\nHost: x\r\n\r\n"s,
        std::string("GET /cache/file/small/1\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
        std::string("GET /cache/file/small/1 HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
        std::string("GET\r\n\r\n")}) {
    raw_connection c(relay_->port());
    ASSERT_TRUE(c.send_all(request));
    auto res = c.read_response();
    if (res.complete) {
      EXPECT_EQ(res.message.result(), http::status::bad_request);
      EXPECT_EQ(res.message.body().find(secret), std::string::npos);
    }
    EXPECT_TRUE(c.closed_within(30s));
  }

  // A request body is refused.
  auto with_body = relay_->request("GET", "/cache/file/small/1", "Content-Length: 5\r\n");
  EXPECT_EQ(with_body.message.result(), http::status::payload_too_large);

  EXPECT_EQ(relay_->request("GET", "/-/healthz").message.result(), http::status::ok);
}

TEST_F(relay_integration, oversized_head_gets_431) {
  raw_connection c(relay_->port());
  ASSERT_TRUE(c.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                         std::string(16 * 1024, 'a') + "\r\n\r\n"));
  auto res = c.read_response();
  ASSERT_TRUE(res.complete);
  EXPECT_EQ(res.message.result(), http::status::request_header_fields_too_large);
  EXPECT_TRUE(c.closed_within(30s));
}

// Ten slow readers, each from a client address of its own (peers.max_peers_per_client is 2),
// hold every slot; the eleventh download is refused at once with 503, while HEAD and 304 still
// work; a vanished reader frees its slot.
TEST_F(relay_integration, eleventh_concurrent_download_gets_503) {
  const std::string big = random_bytes(big_size, 3);
  const item big_item = relay_->add({item_kind::installer, "agent", "14.0.1"}, big);
  const std::string get = "GET /cache/installer/agent/14.0.1 HTTP/1.1\r\nHost: x\r\n\r\n";

  std::vector<std::unique_ptr<raw_connection>> readers;
  for (int i = 0; i < 10; ++i) {
    const std::string source = "127.0.0." + std::to_string(10 + i);
    auto c = std::make_unique<raw_connection>(relay_->port(), 4096, source.c_str());
    ASSERT_TRUE(c->connected());
    ASSERT_TRUE(c->send_all(get));
    const auto head = c->read_head();
    ASSERT_TRUE(head) << "reader " << i;
    EXPECT_NE(head->find("200 OK"), std::string::npos) << *head;
    readers.push_back(std::move(c));  // and never read again
  }
  ASSERT_TRUE(eventually(10s, [&] { return relay_->stat("active_transfers") == 10; }));

  auto refused = relay_->request("GET", "/cache/installer/agent/14.0.1");
  ASSERT_TRUE(refused.complete);
  EXPECT_EQ(refused.message.result(), http::status::service_unavailable);
  EXPECT_EQ(refused.message[http::field::retry_after], "5");
  EXPECT_FALSE(refused.message.keep_alive());

  EXPECT_EQ(relay_->request("HEAD", "/cache/installer/agent/14.0.1").message.result(),
            http::status::ok);
  EXPECT_EQ(relay_->request("GET", "/cache/installer/agent/14.0.1",
                            "If-None-Match: " + etag_of(big_item) + "\r\n")
                .message.result(),
            http::status::not_modified);

  auto stats = relay_->stats();
  EXPECT_EQ(stats.at("active_transfers").to_number<int>(), 10);
  EXPECT_EQ(stats.at("peak_active_transfers").to_number<int>(), 10);
  EXPECT_EQ(stats.at("refused_busy").to_number<int>(), 1);

  // A reader vanishes: its slot is free again without waiting for a timeout.
  readers.front()->close();
  readers.erase(readers.begin());
  ASSERT_TRUE(eventually(10s, [&] { return relay_->stat("active_transfers") == 9; }));
  auto part = relay_->request("GET", "/cache/installer/agent/14.0.1", "Range: bytes=0-99\r\n");
  EXPECT_EQ(part.message.result(), http::status::partial_content);
  EXPECT_EQ(part.message.body(), big.substr(0, 100));

  readers.clear();
  ASSERT_TRUE(eventually(10s, [&] { return relay_->stat("active_transfers") == 0; }));
  stats = relay_->stats();
  EXPECT_EQ(stats.at("peak_active_transfers").to_number<int>(), 10);
  EXPECT_EQ(stats.at("transfers_aborted").to_number<int>(), 10);
}

class relay_integration_timeouts : public testing::Test {
 protected:
  relayd relay_{
      "[http]\nheader_timeout = \"500ms\"\nidle_timeout = \"700ms\"\nmax_connections = 3\n"};
};

TEST_F(relay_integration_timeouts, trickling_client_is_dropped_after_header_timeout) {
  raw_connection c(relay_.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all("GET /-/healthz HTTP/1.1\r\nX-Slow: "));
  const auto start = std::chrono::steady_clock::now();
  // One header byte every 50 ms: every read makes progress, the head never completes.
  bool closed = false;
  std::string received;
  while (std::chrono::steady_clock::now() - start < 30s) {
    if (!c.send_all("a", 1s)) {
      closed = true;
      break;
    }
    const auto status = c.read_some(received, std::chrono::steady_clock::now() + 50ms);
    if (status == raw_connection::read_status::closed) {
      closed = true;
      break;
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed);
  EXPECT_GE(elapsed, 400ms);
  EXPECT_TRUE(received.empty()) << received;
  // The client can see the close before the server has counted it.
  EXPECT_TRUE(eventually(30s, [&] { return relay_.stat("header_timeouts") == 1U; }))
      << relay_.stat("header_timeouts");
}

TEST_F(relay_integration_timeouts, idle_keep_alive_connection_is_closed) {
  raw_connection c(relay_.port());
  ASSERT_TRUE(c.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read_response().complete);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_within(30s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 500ms);
}

TEST_F(relay_integration_timeouts, connections_beyond_the_limit_are_closed_at_once) {
  std::vector<std::unique_ptr<raw_connection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<raw_connection>(relay_.port()));
    // A completed request proves the connection is registered before the next one.
    ASSERT_TRUE(held.back()->send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(held.back()->read_response().complete);
  }
  raw_connection extra(relay_.port());
  ASSERT_TRUE(extra.connected());  // the kernel accepts; the relay closes it at once
  EXPECT_TRUE(extra.closed_within(30s));
  held.clear();
  ASSERT_TRUE(eventually(30s, [&] {
    raw_connection probe(relay_.port());
    probe.send_all("GET /-/stats HTTP/1.1\r\nHost: x\r\n\r\n");
    auto res = probe.read_response(2s);
    return res.complete && boost::json::parse(res.message.body())
                                   .at("connections_refused")
                                   .to_number<int>() >= 1;
  }));
}

// Out of descriptors, the accept loop backs off (and says so once) instead of spinning, and
// serves again once descriptors are free.
TEST(relay_integration_limits, accept_backs_off_when_out_of_descriptors) {
  // One connection loop, whatever the cores: each loop's epoll, eventfd and timerfd take three of
  // the descriptors (16 before the loops).
  relayd relay("[http]\nthreads = 1\n", {}, 19);
  const auto count = [&](std::string_view what) {
    const std::string log = relay.log();
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  std::vector<std::unique_ptr<raw_connection>> held;
  for (int i = 0; i < 24; ++i) {
    held.push_back(std::make_unique<raw_connection>(relay.port()));
  }
  ASSERT_TRUE(eventually(10s, [&] { return count("event=accept_failed") > 0; }))
      << relay.log();
  EXPECT_TRUE(relay.alive());
  held.clear();
  ASSERT_TRUE(eventually(15s, [&] {
    raw_connection probe(relay.port());
    probe.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto res = probe.read_response(3s);
    return res.complete && res.message.result() == http::status::ok;
  })) << relay.log();
  // Logged once per episode, not once per retry.
  EXPECT_GE(count("event=accept_resumed"), 1U);
  EXPECT_LE(count("event=accept_failed"), count("event=accept_resumed") + 1);
}

// SIGTERM: idle connections close, no new ones are accepted, a running transfer finishes, exit 0.
TEST(relay_integration_shutdown, sigterm_lets_a_running_transfer_finish) {
  relayd relay;
  const std::string big = random_bytes(big_size, 4);
  relay.add({item_kind::installer, "agent", "14.0.1"}, big);

  raw_connection idle(relay.port());
  ASSERT_TRUE(idle.send_all("GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle.read_response().complete);

  raw_connection download(relay.port(), 4096);
  ASSERT_TRUE(download.send_all("GET /cache/installer/agent/14.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto head = download.read_head();
  ASSERT_TRUE(head);
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 1; }));

  relay.proc().signal(SIGTERM);
  EXPECT_TRUE(idle.closed_within(30s));
  EXPECT_TRUE(eventually(30s, [&] {
    raw_connection probe(relay.port());
    return !probe.connected();
  }));
  EXPECT_TRUE(relay.alive());  // the transfer still runs

  std::string body = std::move(download.pending());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (body.size() < big_size && std::chrono::steady_clock::now() < deadline) {
    if (download.read_some(body, deadline) != raw_connection::read_status::data) {
      break;
    }
  }
  ASSERT_EQ(body.size(), big_size);
  EXPECT_TRUE(body == big);
  const auto status = relay.wait_exit(10s);
  ASSERT_TRUE(status) << relay.log();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << relay.log();
  EXPECT_TRUE(download.closed_within(30s));
}

// A transfer that outlives shutdown.grace_period is cancelled; the daemon still exits 0.
TEST(relay_integration_shutdown, grace_period_ends_running_transfers) {
  relayd relay("[shutdown]\ngrace_period = \"500ms\"\n");
  relay.add({item_kind::installer, "agent", "14.0.1"}, random_bytes(big_size, 5));
  raw_connection stuck(relay.port(), 4096);
  ASSERT_TRUE(stuck.send_all("GET /cache/installer/agent/14.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(stuck.read_head());
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 1; }));

  const auto start = std::chrono::steady_clock::now();
  relay.proc().signal(SIGTERM);
  const auto status = relay.wait_exit(10s);
  ASSERT_TRUE(status) << relay.log();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << relay.log();
}

TEST(relay_integration_cli, config_commands) {
  char pattern[] = "/tmp/lanrelay-cli.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  const auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), LANRELAYD_PATH);
    const auto out = dir / "out.txt";
    std::filesystem::remove(out);
    process p(args, process::options{.output = out});
    const auto status = p.wait_for(10s);
    return std::pair(status ? WEXITSTATUS(*status) : -1, read_file(out));
  };

  const auto [defaults_status, defaults] = run({"--print-default-config"});
  EXPECT_EQ(defaults_status, 0);
  EXPECT_NE(defaults.find("[http]"), std::string::npos);
  std::ofstream(dir / "default.toml") << defaults;
  const auto [ok_status, ok_text] = run({"--check-config", (dir / "default.toml").string()});
  EXPECT_EQ(ok_status, 0);
  EXPECT_NE(ok_text.find("configuration OK"), std::string::npos);

  std::ofstream(dir / "bad.toml") << "[http]\nport = \"x\"\nheader_timeout = \"soon\"\n";
  const auto [bad_status, bad_text] = run({"--check-config", (dir / "bad.toml").string()});
  EXPECT_EQ(bad_status, 1);
  EXPECT_NE(bad_text.find("bad.toml:2:"), std::string::npos) << bad_text;
  EXPECT_NE(bad_text.find("bad.toml:3:"), std::string::npos) << bad_text;

  const auto [start_status, start_text] = run({"--config", (dir / "bad.toml").string()});
  EXPECT_EQ(start_status, 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lanrelay::test
