// The mirror inside the real lanrelayd, against a real nginx upstream on 127.0.0.1: serving
// /activeupdate/<source>/ with the cache's rules, "update now" through `lanrelay mirror sync`,
// pull-through with 30 simultaneous requests, chained relays, the catalog of mirrored files, and
// a full disk that keeps the old snapshot served.

#include "au_upstream.hpp"
#include "relayd_harness.hpp"

#include "lanrelay/common/activeupdate_index.hpp"
#include "lanrelay/common/sha256.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/mount.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::string pattern_v1 = "pattern/icrc/ioth1667900.zip";
const std::string pattern_diff = "pattern/icrc/ioth_1667900.1668000";
const std::string pattern_v2 = "pattern/icrc/ioth1668000.zip";
const std::string engine = "engine/engv_nt386_v12500-1004.zip";

struct cli_result {
  int status = -1;
  std::string output;
};

class mirror_relay : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-mirror-relay.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    tree_ = std::make_unique<au_tree>(root_ / "www");
    upstream_ = std::make_unique<nginx>(root_ / "nginx", root_ / "www");
  }
  void TearDown() override {
    relays_.clear();
    upstream_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // server.ini of version 1 (a full pattern and an engine) or 2 (adds a diff from 1 and a new
  // full pattern).
  std::string index(int version) {
    std::string s = "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n[PATTERN]\r\n";
    if (version == 1) {
      s += "P.48020000=" + pattern_v1 + ",1667900," + std::to_string(tree_->size(pattern_v1)) + "\r\n";
    } else {
      s += "P.48020000=" + pattern_v2 + ",1668000," + std::to_string(tree_->size(pattern_v2)) + "\r\n";
      s += "P.48020000.Merge.1=" + pattern_diff + ",1667900," +
           std::to_string(tree_->size(pattern_diff)) + "\r\n";
    }
    s += "\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," + engine + ",12.500.1004," +
         std::to_string(tree_->size(engine)) + ",6.510.1002\r\n";
    return s;
  }

  void publish_v1() {
    tree_->add(pattern_v1, 1'500'000);
    tree_->add(engine, 700'000);
    tree_->publish(index(1));
  }
  void publish_v2() {
    tree_->add(pattern_v2, 1'600'000);
    tree_->add(pattern_diff, 300'000);
    tree_->publish(index(2));
  }

  static constexpr std::string_view admin_token = "mirror-test-token-0123456789";

  std::string upstream_url() const {
    return "http://127.0.0.1:" + std::to_string(upstream_->port()) + "/activeupdate/";
  }

  // A relay mirroring `url` as source "vendor"; `extra` is added to the source's table.
  relayd& start_relay(const std::string& url, const std::string& extra = "",
                      const std::string& state_dir = "") {
    // "Update now" (POST /-/mirror/sync) is an admin request: it needs the token.
    std::string config = "[admin]\ntoken = \"" + std::string(admin_token) + "\"\n";
    config += "[mirror]\npublic_url = \"http://relay.lan:4127\"\npull_through_wait = \"20s\"\n";
    config += "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + url + "\"\njitter = \"0ms\"\n" + extra;
    relays_.push_back(std::make_unique<relayd>(config, std::vector<std::string>{}, 0, std::vector<std::string>{}, state_dir));
    return *relays_.back();
  }

  // Waits until `relay` serves a snapshot whose index names `path` and has hashed its files.
  static bool serves(relayd& relay, const std::string& path, std::chrono::milliseconds timeout = 30s) {
    return eventually(timeout, [&] {
      auto res = relay.request("GET", "/activeupdate/vendor/server.ini");
      if (!res.complete || res.message.result() != http::status::ok ||
          res.message.body().find(path) == std::string::npos) {
        return false;
      }
      auto status = relay.request("GET", "/-/mirror");
      boost::system::error_code ec;
      const auto v = json::parse(status.message.body(), ec);
      return !ec && v.is_array() && !v.as_array().empty() && v.at(0).at("files").to_number<int>() > 0 &&
             !v.at(0).at("syncing").as_bool();
    });
  }

  cli_result cli(std::vector<std::string> args) {
    args.insert(args.begin(), LANRELAY_CLI_PATH);
    const fs::path out = root_ / ("cli-" + std::to_string(++cli_runs_) + ".out");
    process p(args, process::options{
                        .output = out,
                        .environment = {"LANRELAY_ADMIN_TOKEN=" + std::string(admin_token)}});
    const auto status = p.wait_for(120s);
    return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, read_file(out)};
  }

  std::size_t upstream_gets(const std::string& path) const {
    std::size_t n = 0;
    for (const auto& line : upstream_->log()) {
      n += line.uri == "/activeupdate/" + path && line.method == "GET" ? 1 : 0;
    }
    return n;
  }

  fs::path root_;
  std::unique_ptr<au_tree> tree_;
  std::unique_ptr<nginx> upstream_;
  std::vector<std::unique_ptr<relayd>> relays_;
  int cli_runs_ = 0;
};

TEST_F(mirror_relay, serves_the_mirrored_tree_with_the_caches_rules) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relayd& relay = start_relay(upstream_url());
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();

  auto index = relay.request("GET", "/activeupdate/vendor/server.ini");
  std::string expected = tree_->server_ini();
  expected.replace(expected.find("http://au.example.com/activeupdate"),
                   std::string("http://au.example.com/activeupdate").size(),
                   "http://relay.lan:4127/activeupdate/vendor/");
  EXPECT_EQ(index.message.body(), expected);

  for (const auto& path : {pattern_v1, activeupdate::signature_path(pattern_v1), engine}) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + path);
    ASSERT_EQ(res.message.result(), http::status::ok) << path;
    EXPECT_TRUE(res.message.body() == slurp(tree_->file(path))) << path;
  }
  // Range, conditional requests and HEAD, as for /cache.
  auto ranged = relay.request("GET", "/activeupdate/vendor/" + engine, "Range: bytes=100-199\r\n");
  ASSERT_EQ(ranged.message.result(), http::status::partial_content);
  EXPECT_EQ(ranged.message.body(), slurp(tree_->file(engine)).substr(100, 100));
  const std::string etag(relay.request("HEAD", "/activeupdate/vendor/" + engine).message[http::field::etag]);
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + engine, "If-None-Match: " + etag + "\r\n")
                .message.result(),
            http::status::not_modified);
  const std::string index_etag(relay.request("HEAD", "/activeupdate/vendor/server.ini").message[http::field::etag]);
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/server.ini", "If-None-Match: " + index_etag + "\r\n")
                .message.result(),
            http::status::not_modified);
  // '$' may come raw or escaped; traversal and unknown names are refused.
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/pattern/icrc/%69oth1667900.zip").message.result(),
            http::status::ok);
  for (const char* bad : {"/activeupdate/vendor/../vendor/server.ini", "/activeupdate/vendor/pattern/%2e%2e/x",
                          "/activeupdate/vendor/pattern%2ficrc", "/activeupdate/vendor/a:b",
                          "/activeupdate/ven%00dor/server.ini", "/activeupdate/vendor/a\\b"}) {
    EXPECT_EQ(relay.request("GET", bad).message.result(), http::status::bad_request) << bad;
  }
  EXPECT_EQ(relay.request("GET", "/activeupdate/other/server.ini").message.result(), http::status::not_found);
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/pattern/not-listed.zip").message.result(),
            http::status::not_found);
  EXPECT_EQ(relay.request("DELETE", "/activeupdate/vendor/server.ini").message.result(),
            http::status::method_not_allowed);

  // Mirrored files are in the catalog under their segment names, with their digests.
  const auto catalog = json::parse(relay.request("GET", "/-/catalog").message.body()).as_object();
  bool listed = false;
  for (const auto& entry : catalog.at("items").as_array()) {
    if (entry.at("name").as_string() == *activeupdate::segment_item_name(pattern_v1)) {
      listed = true;
      EXPECT_EQ(entry.at("version").as_string(), std::to_string(tree_->size(pattern_v1)));
      EXPECT_EQ(entry.at("sha256").as_string(), to_hex(*sha256_of_file(tree_->file(pattern_v1))));
      EXPECT_EQ(entry.at("url").as_string(), "/activeupdate/vendor/" + pattern_v1);
    }
  }
  EXPECT_TRUE(listed) << json::serialize(catalog);
}

TEST_F(mirror_relay, update_now_and_status_from_the_command_line) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relayd& relay = start_relay(upstream_url());
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());

  publish_v2();
  auto synced = cli({"mirror", "sync", "vendor", "--relay", where, "--json"});
  ASSERT_EQ(synced.status, 0) << synced.output;
  const auto result = json::parse(synced.output).at("results").at(0).as_object();
  EXPECT_TRUE(result.at("changed").as_bool()) << synced.output;
  EXPECT_EQ(result.at("files_downloaded").to_number<int>(), 3);  // v2, its .sig, the diff
  auto diff = relay.request("GET", "/activeupdate/vendor/" + pattern_diff);
  ASSERT_EQ(diff.message.result(), http::status::ok);
  EXPECT_TRUE(diff.message.body() == slurp(tree_->file(pattern_diff)));

  // Unchanged upstream: one conditional request, no payload.
  const auto before = upstream_->log().size();
  auto again = cli({"mirror", "sync", "--relay", where, "--json"});
  ASSERT_EQ(again.status, 0) << again.output;
  const auto unchanged = json::parse(again.output).at("results").at(0).as_object();
  EXPECT_TRUE(unchanged.at("not_modified").as_bool()) << again.output;
  EXPECT_EQ(unchanged.at("requests").to_number<int>(), 1);
  EXPECT_EQ(unchanged.at("bytes_downloaded").to_number<int>(), 0);
  const auto log = upstream_->log_of(before + 1);
  ASSERT_EQ(log.size(), before + 1);
  EXPECT_EQ(log.back().status, 304U);

  auto status = cli({"mirror", "status", "--relay", where});
  ASSERT_EQ(status.status, 0) << status.output;
  EXPECT_NE(status.output.find("vendor  <- " + upstream_url()), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("PATTERN:48020000: 16.680.00"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("ENGINE:4:"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("error:         none"), std::string::npos) << status.output;

  auto unknown = cli({"mirror", "sync", "nosuch", "--relay", where});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.output.find("no mirror source 'nosuch'"), std::string::npos) << unknown.output;

  // A failing upstream is reported with the reason, and the snapshot stays served.
  upstream_->kill();
  auto failed = cli({"mirror", "sync", "vendor", "--relay", where});
  EXPECT_EQ(failed.status, 1);
  EXPECT_NE(failed.output.find("vendor: FAILED: "), std::string::npos) << failed.output;
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + pattern_diff).message.result(), http::status::ok);
}

TEST_F(mirror_relay, pull_through_makes_one_upstream_download_for_thirty_requests) {
  publish_v1();
  // The pattern trickles at 1 MiB/s so that every request arrives while it is being fetched.
  ASSERT_NO_FATAL_FAILURE(upstream_->start("/activeupdate/" + pattern_v1, "1m"));
  relayd& relay = start_relay(upstream_url(), "include = [\"ENGINE\"]\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  ASSERT_EQ(upstream_gets(pattern_v1), 0U);  // left out by include: not fetched ahead

  constexpr int agents = 30;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  std::atomic<int> busy{0};
  const std::string expected = slurp(tree_->file(pattern_v1));
  for (int i = 0; i < agents; ++i) {
    threads.emplace_back([&] {
      raw_connection c(relay.port());
      const std::string text = "GET /activeupdate/vendor/" + pattern_v1 + " HTTP/1.1\r\nHost: relay\r\n\r\n";
      if (!c.send_all(text)) {
        return;
      }
      auto res = c.read_response(30s);
      if (res.complete && res.message.result() == http::status::ok && res.message.body() == expected) {
        ++good;
      } else if (res.complete && res.message.result() == http::status::service_unavailable) {
        ++busy;
      } else {
        ADD_FAILURE() << "status " << res.message.result_int() << " " << res.message.body().substr(0, 200);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  // 30 agents, but the parent serves 10 at a time: the rest were told to come back (503).
  // What matters here: every request that got bytes got the right ones, and upstream saw one.
  EXPECT_GE(good.load(), 10);
  EXPECT_EQ(good.load() + busy.load(), agents) << relay.log().substr(relay.log().size() > 6000 ? relay.log().size() - 6000 : 0);
  EXPECT_EQ(upstream_gets(pattern_v1), 1U);
  // Later requests are served from the tree.
  auto later = relay.request("GET", "/activeupdate/vendor/" + pattern_v1);
  EXPECT_TRUE(later.message.body() == expected);
  EXPECT_EQ(upstream_gets(pattern_v1), 1U);
}

// v1 is 2.2 MB; at 1 MiB/s (with a burst of a tenth of a second) its sync cannot take less than
// about 2 s, whichever limit applies. Without a limit it takes a few milliseconds on loopback.
TEST_F(mirror_relay, downloads_keep_to_the_source_rate_limit) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const auto started = std::chrono::steady_clock::now();
  relayd& relay = start_relay(upstream_url(), "rate_limit = \"1MiB\"\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1800ms);
  EXPECT_TRUE(relay.request("GET", "/activeupdate/vendor/" + pattern_v1).message.body() ==
              slurp(tree_->file(pattern_v1)));
}

TEST_F(mirror_relay, downloads_keep_to_the_total_rate_limit) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const auto started = std::chrono::steady_clock::now();
  std::string config = "[mirror]\nrate_limit = \"1MiB\"\n";
  config += "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + upstream_url() + "\"\njitter = \"0ms\"\n";
  relays_.push_back(std::make_unique<relayd>(config));
  relayd& relay = *relays_.back();
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1800ms);
  EXPECT_TRUE(relay.request("GET", "/activeupdate/vendor/" + engine).message.body() ==
              slurp(tree_->file(engine)));
}

TEST_F(mirror_relay, relays_chain_into_a_hierarchy) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relayd& site = start_relay(upstream_url());
  ASSERT_TRUE(serves(site, pattern_v1)) << site.log();
  relayd& segment = start_relay("http://127.0.0.1:" + std::to_string(site.port()) + "/activeupdate/vendor/");
  ASSERT_TRUE(serves(segment, pattern_v1)) << segment.log();

  for (const auto& path : {pattern_v1, engine}) {
    EXPECT_TRUE(segment.request("GET", "/activeupdate/vendor/" + path).message.body() ==
                slurp(tree_->file(path)));
    EXPECT_EQ(upstream_gets(path), 1U) << path;  // the WAN carried it once
  }
  // Both point agents at themselves: public_url is the same in this test, so the segment relay's
  // index equals the site relay's byte for byte.
  EXPECT_EQ(segment.request("GET", "/activeupdate/vendor/server.ini").message.body(),
            site.request("GET", "/activeupdate/vendor/server.ini").message.body());

  // The segment relay's re-sync against an unchanged site relay is one 304.
  auto again = cli({"mirror", "sync", "--relay", "127.0.0.1:" + std::to_string(segment.port()), "--json"});
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(json::parse(again.output).at("results").at(0).at("not_modified").as_bool()) << again.output;
}

TEST_F(mirror_relay, full_disk_keeps_the_old_snapshot_served) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a small tmpfs needs root";
  }
  const fs::path disk = root_ / "disk";
  fs::create_directories(disk);
  ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=5m"), 0) << std::strerror(errno);
  struct unmount {
    fs::path dir;
    ~unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } guard{disk};

  publish_v1();  // 2.2 MB
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relayd& relay = start_relay(upstream_url(), "", disk.string());
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  const std::string served_v1 = relay.request("GET", "/activeupdate/vendor/server.ini").message.body();

  tree_->add(pattern_v2, 4'000'000);  // does not fit beside version 1
  tree_->add(pattern_diff, 300'000);
  tree_->publish(index(2));
  auto failed = cli({"mirror", "sync", "--relay", "127.0.0.1:" + std::to_string(relay.port()), "--json"});
  EXPECT_EQ(failed.status, 1) << failed.output;
  const auto result = json::parse(failed.output).at("results").at(0).as_object();
  EXPECT_NE(std::string(result.at("error").as_string()).find("No space left on device"), std::string::npos)
      << failed.output;

  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/server.ini").message.body(), served_v1);
  for (const auto& path : {pattern_v1, engine}) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + path);
    EXPECT_TRUE(res.message.body() == slurp(tree_->file(path))) << path;
  }
  EXPECT_TRUE(relay.alive());
}

}  // namespace
}  // namespace lanrelay::test
