// The mirror inside the real lanrelayd, against a real nginx upstream on 127.0.0.1: serving
// /activeupdate/<source>/ with the cache's rules, "update now" through `lanrelay mirror sync`,
// pull-through with 30 simultaneous requests, chained relays, the catalog of mirrored files, and
// a full disk that keeps the old snapshot served, bandwidth windows.

#include "au_upstream.hpp"
#include "relayd_harness.hpp"

#include "lanrelay/base/sha256.hpp"
#include "lanrelay/content/activeupdate_index.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <atomic>
#include <filesystem>
#include <sstream>
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
  // `mirror_extra` goes into [mirror], `top` before every table (e.g. "[cache]\nmin_free = 0\n").
  relayd& start_relay(const std::string& url, const std::string& extra = "",
                      const std::string& state_dir = "", const std::string& mirror_extra = "",
                      const std::string& top = "") {
    // "Update now" (POST /-/mirror/sync) is an admin request: it needs the token.
    std::string config = top + "[admin]\ntoken = \"" + std::string(admin_token) + "\"\n";
    config += "[mirror]\npublic_url = \"http://relay.lan:4127\"\npull_through_wait = \"20s\"\n" +
              mirror_extra;
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

  // index(1) with a Path_F<n> entry in [PATTERN] for each of `paths` (kind path_entry).
  std::string index_with(const std::vector<std::string>& paths) {
    std::string s = index(1);
    std::string lines;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      lines += "Path_F" + std::to_string(i) + "=" + paths[i] + "," + std::to_string(tree_->size(paths[i])) + "\r\n";
    }
    s.insert(s.find("\r\n[ENGINE]"), lines);
    return s;
  }

  static json::object mirror_view(relayd& relay) {
    return json::parse(relay.request("GET", "/-/mirror").message.body()).at(0).as_object();
  }
  static std::uint64_t pulls_running(relayd& relay) {
    return mirror_view(relay).at("pulls_running").to_number<std::uint64_t>();
  }
  static std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
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

// Issue 11: a sync fetched the pattern into tree/, then refused its oversized .sig and published
// no index; the pattern must not be served (docs/protocol.md: only what a published index names).
TEST_F(mirror_relay, files_of_an_unpublished_sync_stay_invisible) {
  publish_v1();
  const auto oversized_sig = [&](const std::string& zip) {
    spew(tree_->file(activeupdate::signature_path(zip)), std::string(2U << 20, 's'));
  };
  oversized_sig(pattern_v1);
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const fs::path state = root_ / "state";
  relayd& relay = start_relay(upstream_url(), "", state.string());
  const fs::path tree = state / "mirror" / "vendor" / "tree";
  ASSERT_TRUE(eventually(60s, [&] {
    const auto v = json::parse(relay.request("GET", "/-/mirror").message.body());
    return !v.at(0).at("last_error").as_string().empty() && !v.at(0).at("syncing").as_bool();
  })) << relay.log();
  ASSERT_TRUE(fs::exists(tree / pattern_v1));  // the case of the issue: the file reached tree/
  ASSERT_FALSE(fs::exists(tree / "server.ini"));
  for (const auto& path : {std::string("server.ini"), pattern_v1,
                           activeupdate::signature_path(pattern_v1), engine}) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + path);
    EXPECT_EQ(res.message.result(), http::status::not_found) << path;
    EXPECT_EQ(relay.request("HEAD", "/activeupdate/vendor/" + path).message.result(),
              http::status::not_found) << path;
  }

  // Once the upstream is right, the published index makes the files visible.
  tree_->add(pattern_v1, 1'500'000);
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());
  auto synced = cli({"mirror", "sync", "vendor", "--relay", where});
  ASSERT_EQ(synced.status, 0) << synced.output;
  for (const auto& path : {pattern_v1, activeupdate::signature_path(pattern_v1), engine}) {
    EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + path).message.result(), http::status::ok) << path;
  }

  // A newer index refused the same way: its new file stays invisible, version 1 stays served.
  publish_v2();
  oversized_sig(pattern_v2);
  auto refused = cli({"mirror", "sync", "vendor", "--relay", where});
  EXPECT_EQ(refused.status, 1) << refused.output;
  ASSERT_TRUE(fs::exists(tree / pattern_v2));
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + pattern_v2).message.result(),
            http::status::not_found);
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + pattern_diff).message.result(),
            http::status::not_found);
  for (const auto& path : {pattern_v1, activeupdate::signature_path(pattern_v1), engine}) {
    EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + path).message.result(), http::status::ok) << path;
  }
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
  relayd& relay = start_relay(upstream_url(), "include = [\"ENGINE\"]\npull_through = [\"PATTERN\"]\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  ASSERT_EQ(upstream_gets(pattern_v1), 0U);  // left out by include: not fetched ahead

  constexpr int agents = 30;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  std::atomic<int> busy{0};
  const std::string expected = slurp(tree_->file(pattern_v1));
  for (int i = 0; i < agents; ++i) {
    threads.emplace_back([&, i] {
      // Thirty agents are thirty hosts: each its own loopback address, so that the per-client
      // share (peers.max_peers_per_client) does not turn them away as one client.
      const std::string source = "127.0.1." + std::to_string(i + 1);
      raw_connection c(relay.port(), 0, source.c_str());
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

// Issue 11: pull-through ignored the source's filter. A file neither include nor pull_through
// admits is never fetched on demand.
TEST_F(mirror_relay, pull_through_fetches_only_what_the_source_admits) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  relayd& relay = start_relay(upstream_url(), "include = [\"ENGINE\"]\n");
  ASSERT_TRUE(serves(relay, engine)) << relay.log();
  for (const auto& path : {pattern_v1, activeupdate::signature_path(pattern_v1)}) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + path);
    EXPECT_EQ(res.message.result(), http::status::not_found) << path;
    EXPECT_NE(res.message.body().find("pull_through"), std::string::npos) << res.message.body();
    EXPECT_EQ(upstream_gets(path), 0U) << path;
  }
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + engine).message.result(), http::status::ok);
}

// mirror.max_pulls and mirror.pull_volume: beyond them a 503 with Retry-After and the reason,
// and nothing asked of the upstream.
TEST_F(mirror_relay, pull_through_keeps_to_max_pulls_and_the_hourly_volume) {
  publish_v1();
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    files.push_back("files/slow/s" + std::to_string(i) + ".bin");
    tree_->add(files.back(), 100'000);
  }
  for (int i = 0; i < 3; ++i) {
    files.push_back("files/fast/g" + std::to_string(i) + ".bin");
    tree_->add(files.back(), 100'000);
  }
  const std::string big = "files/fast/big.bin";
  tree_->add(big, 300'000);
  files.push_back(big);
  tree_->publish(index_with(files));
  // At 1 KiB/s a slow file takes 100 s: both pulls are still running when the third comes.
  ASSERT_NO_FATAL_FAILURE(upstream_->start("/activeupdate/files/slow/", "1k"));
  relayd& relay = start_relay(upstream_url(),
                              "include = [\"PATTERN:48020000\", \"ENGINE\"]\npull_through = [\"path:files/\"]\n",
                              "", "max_pulls = 2\npull_volume = \"250KiB\"\n");
  ASSERT_TRUE(serves(relay, engine)) << relay.log();

  std::vector<std::unique_ptr<raw_connection>> waiting;
  for (int i = 0; i < 2; ++i) {
    waiting.push_back(std::make_unique<raw_connection>(relay.port()));
    ASSERT_TRUE(waiting.back()->send_all("GET /activeupdate/vendor/" + files[i] + " HTTP/1.1\r\nHost: r\r\n\r\n"));
  }
  ASSERT_TRUE(eventually(30s, [&] { return pulls_running(relay) == 2; })) << relay.log();
  auto third = relay.request("GET", "/activeupdate/vendor/" + files[2]);
  EXPECT_EQ(third.message.result(), http::status::service_unavailable);
  EXPECT_FALSE(third.message[http::field::retry_after].empty());
  EXPECT_NE(third.message.body().find("mirror.max_pulls"), std::string::npos) << third.message.body();
  EXPECT_EQ(upstream_gets(files[2]), 0U);
  waiting.clear();  // both clients hang up: their pulls are cancelled
  ASSERT_TRUE(eventually(30s, [&] { return pulls_running(relay) == 0; })) << relay.log();

  // 2 x 100 000 bytes fit into 250 KiB an hour; a third file does not, a 300 000-byte one never.
  for (int i = 3; i < 5; ++i) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + files[i]);
    ASSERT_EQ(res.message.result(), http::status::ok) << files[i] << " " << res.message.body();
    EXPECT_TRUE(res.message.body() == slurp(tree_->file(files[i])));
  }
  auto over = relay.request("GET", "/activeupdate/vendor/" + files[5]);
  EXPECT_EQ(over.message.result(), http::status::service_unavailable);
  EXPECT_NE(over.message.body().find("mirror.pull_volume"), std::string::npos) << over.message.body();
  const std::string retry(over.message[http::field::retry_after]);
  ASSERT_FALSE(retry.empty());
  EXPECT_GT(std::stoul(retry), 600U);  // when the first pull of the hour ages out
  EXPECT_EQ(upstream_gets(files[5]), 0U);
  auto too_big = relay.request("GET", "/activeupdate/vendor/" + big);
  EXPECT_EQ(too_big.message.result(), http::status::not_found);
  EXPECT_NE(too_big.message.body().find("mirror.pull_volume"), std::string::npos) << too_big.message.body();
  EXPECT_EQ(upstream_gets(big), 0U);
}

// Issue 11: 29 abandoned requests caused 29 upstream downloads. Here 12 clients ask for 12
// different files and hang up at once: every pull is cancelled, none downloads its file (a
// whole file takes 50 s at the upstream's 2 KiB/s; the pulls must be gone well before).
TEST_F(mirror_relay, abandoned_pull_throughs_are_cancelled) {
  publish_v1();
  std::vector<std::string> files;
  for (int i = 0; i < 12; ++i) {
    files.push_back("files/slow/a" + std::to_string(i) + ".bin");
    tree_->add(files.back(), 100'000);
  }
  tree_->publish(index_with(files));
  ASSERT_NO_FATAL_FAILURE(upstream_->start("/activeupdate/files/slow/", "2k"));
  relayd& relay = start_relay(upstream_url(),
                              "include = [\"PATTERN:48020000\", \"ENGINE\"]\npull_through = [\"path:files/\"]\n");
  ASSERT_TRUE(serves(relay, engine)) << relay.log();

  for (const auto& path : files) {
    raw_connection c(relay.port());
    ASSERT_TRUE(c.send_all("GET /activeupdate/vendor/" + path + " HTTP/1.1\r\nHost: r\r\n\r\n"));
  }  // each connection closes here, before any answer
  // Every request ends as an abandoned pull or a refusal (mirror.max_pulls, default 4).
  ASSERT_TRUE(eventually(30s, [&] {
    const std::string log = relay.log();
    return count(log, "event=mirror_pull_abandoned") + count(log, "event=mirror_pull_refused") >= files.size();
  })) << relay.log();
  ASSERT_TRUE(eventually(30s, [&] { return pulls_running(relay) == 0; })) << relay.log();
  const std::size_t abandoned = count(relay.log(), "event=mirror_pull_abandoned");
  EXPECT_GE(abandoned, 1U);

  std::size_t requests = 0;
  std::uint64_t bytes = 0;
  eventually(10s, [&] {  // nginx logs a request when the relay has closed its connection
    requests = 0;
    for (const auto& line : upstream_->log()) {
      requests += line.uri.starts_with("/activeupdate/files/slow/") ? 1 : 0;
    }
    return requests >= abandoned;
  });
  requests = 0;
  for (const auto& line : upstream_->log()) {
    if (line.uri.starts_with("/activeupdate/files/slow/")) {
      ++requests;
      bytes += line.bytes;
      EXPECT_LT(line.bytes, 100'000U) << line.uri << " was downloaded whole";
    }
  }
  EXPECT_LE(requests, abandoned);
  EXPECT_LT(bytes, 12U * 100'000U / 4) << requests << " upstream requests";
  EXPECT_TRUE(relay.alive());
}

// cache.min_free: below the floor nothing new is fetched, neither by a sync nor by a
// pull-through, and every status says why; freeing space lifts it.
TEST_F(mirror_relay, nothing_is_fetched_below_the_disk_floor) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a small tmpfs needs root";
  }
  const fs::path disk = root_ / "disk";
  fs::create_directories(disk);
  ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=6m"), 0) << std::strerror(errno);
  struct unmount {
    fs::path dir;
    ~unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } guard{disk};

  publish_v1();  // 2.2 MB
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const fs::path state = disk / "state";
  relayd& relay = start_relay(upstream_url(), "", state.string(), "", "[cache]\nmin_free = \"1MiB\"\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  EXPECT_TRUE(mirror_view(relay).at("blocked").as_string().empty());

  spew(disk / "filler", std::string(3'300'000, 'f'));  // leaves less than 1 MiB free
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());
  publish_v2();
  auto refused = cli({"mirror", "sync", "vendor", "--relay", where, "--json"});
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("cache.min_free"), std::string::npos) << refused.output;
  EXPECT_EQ(upstream_gets(pattern_v2), 0U);
  EXPECT_EQ(upstream_gets(pattern_diff), 0U);

  const auto view = mirror_view(relay);
  EXPECT_NE(std::string(view.at("blocked").as_string()).find("cache.min_free"), std::string::npos);
  EXPECT_NE(std::string(view.at("last_error").as_string()).find("cache.min_free"), std::string::npos);
  const auto status = json::parse(relay.request("GET", "/-/status").message.body());
  EXPECT_NE(std::string(status.at("mirrors").at("sources").at(0).at("blocked").as_string()).find("cache.min_free"),
            std::string::npos);
  auto shown = cli({"mirror", "status", "--relay", where});
  EXPECT_NE(shown.output.find("blocked:       only"), std::string::npos) << shown.output;
  auto page = relay.request("GET", "/");
  EXPECT_NE(page.message.body().find("nothing new is fetched"), std::string::npos);

  // A file the index names that the tree lacks is not pulled through either (removing it frees
  // 700 KB: the floor still refuses the 700 KB it needs).
  fs::remove(state / "mirror" / "vendor" / "tree" / engine);
  auto pulled = relay.request("GET", "/activeupdate/vendor/" + engine);
  EXPECT_EQ(pulled.message.result(), http::status::service_unavailable);
  EXPECT_FALSE(pulled.message[http::field::retry_after].empty());
  EXPECT_NE(pulled.message.body().find("cache.min_free"), std::string::npos) << pulled.message.body();
  EXPECT_EQ(upstream_gets(engine), 1U);

  fs::remove(disk / "filler");
  EXPECT_TRUE(mirror_view(relay).at("blocked").as_string().empty());
  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/" + engine).message.result(), http::status::ok);
  auto synced = cli({"mirror", "sync", "vendor", "--relay", where});
  EXPECT_EQ(synced.status, 0) << synced.output;
}

// v1 is 2.2 MB; at 1 MiB/s (with a burst of a tenth of a second) its sync cannot take less than
// about 2 s, whichever limit applies. Without a limit it takes a few milliseconds on loopback.
// The bound is wide (1.2 s: the limit plus two thirds) and only from below: load makes a sync
// slower, never faster.
TEST_F(mirror_relay, downloads_keep_to_the_source_rate_limit) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const auto started = std::chrono::steady_clock::now();
  relayd& relay = start_relay(upstream_url(), "rate_limit = \"1MiB\"\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1200ms);
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
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1200ms);
  EXPECT_TRUE(relay.request("GET", "/activeupdate/vendor/" + engine).message.body() ==
              slurp(tree_->file(engine)));
}

// Bandwidth windows. A window that holds all week replaces the source's base rate (unlimited
// here): the sync keeps to it (a bound from below only, as above), and the status, the status
// page, `lanrelay mirror status` and the metrics name the window in effect.
TEST_F(mirror_relay, a_bandwidth_window_limits_the_sync_and_shows_in_the_status) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const auto started = std::chrono::steady_clock::now();
  relayd& relay = start_relay(upstream_url(), "rate_windows = [\"daily 00:00-24:00 1MiB\"]\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1200ms);

  const auto status = json::parse(relay.request("GET", "/-/status").message.body());
  const auto& mirrors = status.at("mirrors");
  EXPECT_EQ(mirrors.at("sources").at(0).at("rate"),
            (json::value{{"bytes_per_second", 1048576}, {"window", "daily 00:00-24:00"}}));
  EXPECT_EQ(mirrors.at("rate"), (json::value{{"bytes_per_second", 0}, {"window", ""}}));
  const auto metrics = relay.request("GET", "/-/metrics").message.body();
  EXPECT_NE(metrics.find("lanrelay_mirror_rate_limit_bytes_per_second{source=\"vendor\"} 1048576"),
            std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lanrelay_mirror_total_rate_limit_bytes_per_second 0"), std::string::npos);
  const auto page = relay.request("GET", "/").message.body();
  EXPECT_NE(page.find("1.0 MiB/s (window daily 00:00-24:00)"), std::string::npos) << page;
  auto shown = cli({"mirror", "status", "--relay", "127.0.0.1:" + std::to_string(relay.port())});
  EXPECT_NE(shown.output.find("rate limit:    1.0 MiB/s (window daily 00:00-24:00)"), std::string::npos)
      << shown.output;
}

// The switch at a window's end, in a running relay: the daemon runs in a time zone made for the
// test (TZ with seconds) so that its local clock reads 11:59:40 now and a window "daily
// 00:00-12:00" over all sources ends 20 s later. The test waits for the event, not for a time.
TEST_F(mirror_relay, the_limit_switches_when_a_window_ends) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  constexpr long lead = 20;
  const auto now = std::chrono::system_clock::now();
  const long utc = static_cast<long>(std::chrono::system_clock::to_time_t(now) % 86400);
  long offset = 43200 - lead - utc;  // local = utc + offset lands at 11:59:40
  offset = ((offset + 43200) % 86400 + 86400) % 86400 - 43200;
  const long magnitude = offset < 0 ? -offset : offset;
  // POSIX TZ counts west of Greenwich: UTC+1 is "XXX-1".
  const std::string tz = fmt::format("TZ=LRT{}{:02}:{:02}:{:02}", offset < 0 ? '+' : '-',
                                     magnitude / 3600, magnitude / 60 % 60, magnitude % 60);
  const auto boundary = now + std::chrono::seconds(lead);

  std::string config = "[mirror]\nrate_windows = [\"daily 00:00-12:00 1MiB\"]\n";
  config += "[[mirror.source]]\nname = \"vendor\"\nurl = \"" + upstream_url() + "\"\njitter = \"0ms\"\n";
  relays_.push_back(std::make_unique<relayd>(config, std::vector<std::string>{}, 0,
                                             std::vector<std::string>{tz}));
  relayd& relay = *relays_.back();
  const auto total_rate = [&] {
    return json::parse(relay.request("GET", "/-/status").message.body()).at("mirrors").at("rate");
  };
  const json::value in_window{{"bytes_per_second", 1048576}, {"window", "daily 00:00-12:00"}};
  const json::value after{{"bytes_per_second", 0}, {"window", ""}};
  const auto read_before = std::chrono::system_clock::now();
  const auto first = total_rate();
  if (read_before < boundary - 2s) {  // a very slow start may reach the boundary first
    EXPECT_EQ(first, in_window) << tz;
  }
  EXPECT_NE(relay.log().find("event=mirror_rate_window source=all window=\"daily 00:00-12:00\" "
                             "bytes_per_second=1048576"),
            std::string::npos) << tz << "\n" << relay.log();
  ASSERT_TRUE(eventually(std::chrono::seconds(lead) + 60s, [&] { return total_rate() == after; }))
      << tz << "\n" << relay.log();
  EXPECT_GE(std::chrono::system_clock::now(), boundary - 1s);  // not before the window's end
  EXPECT_NE(relay.log().find("event=mirror_rate_window source=all window=\"none\" bytes_per_second=0"),
            std::string::npos) << relay.log();
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

// An nginx proxy_cache on 127.0.0.1 in front of `origin`: a standard HTTP cache between two
// levels of relays. Its access log names each request with the cache's verdict.
class http_cache {
 public:
  http_cache(const fs::path& prefix, std::uint16_t origin) : prefix_(prefix), port_(free_port()) {
    fs::create_directories(prefix_);
    std::ostringstream conf;
    if (::geteuid() == 0) {
      conf << "user root;\n";
    }
    conf << "master_process off;\nworker_processes 1;\n"
         << "error_log " << (prefix_ / "error.log").string() << " info;\n"
         << "pid " << (prefix_ / "nginx.pid").string() << ";\n"
         << "events { worker_connections 64; }\nhttp {\n"
         << "  log_format cache '$request_method|$uri|$status|$upstream_cache_status';\n"
         << "  access_log " << (prefix_ / "access.log").string() << " cache;\n";
    for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      conf << "  " << temp << "_temp_path " << (prefix_ / temp).string() << ";\n";
    }
    conf << "  proxy_cache_path " << (prefix_ / "cache").string()
         << " levels=1:2 keys_zone=relay:10m max_size=100m inactive=1h use_temp_path=off;\n"
         << "  server {\n    listen 127.0.0.1:" << port_ << ";\n    location / {\n"
         << "      proxy_pass http://127.0.0.1:" << origin << ";\n"
         << "      proxy_http_version 1.1;\n      proxy_cache relay;\n"
         << "      proxy_cache_valid 200 1h;\n      proxy_cache_lock on;\n"
         << "      proxy_cache_lock_timeout 60s;\n    }\n  }\n}\n";
    spew(prefix_ / "nginx.conf", conf.str());
    proc_ = process({std::string(nginx_path), "-e", (prefix_ / "error.log").string(), "-c",
                     (prefix_ / "nginx.conf").string(), "-p", prefix_.string() + "/", "-g", "daemon off;"},
                    {.output = prefix_ / "nginx.out"});
    started_ = eventually(30s, [&] { return can_connect(port_); });
  }
  bool started() const { return started_; }
  std::uint16_t port() const { return port_; }
  std::string log() const { return read_file(prefix_ / "access.log"); }

 private:
  fs::path prefix_;
  std::uint16_t port_;
  process proc_;
  bool started_ = false;
};

// Issue 15 (on loopback; in three routed subnets: segment/hierarchy_segment_test.cpp): a site relay
// mirrors the upstream, three segment relays mirror the site relay (the third through a plain
// nginx proxy_cache), and ten agents per segment ask their segment relay for the pattern at once.
// Neither level fetches the pattern ahead (include: engines only; pull_through: patterns), so the
// thirty requests turn into three pull-throughs at the site relay, which turn into one upstream
// download.
TEST_F(mirror_relay, a_three_level_hierarchy_carries_each_file_over_the_wan_once) {
  publish_v1();
  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  const std::string on_demand = "include = [\"ENGINE\"]\npull_through = [\"PATTERN\"]\n";
  // The segment relays all come from 127.0.0.1: one client to the site relay.
  relayd& site = start_relay(upstream_url(), on_demand, "", "", "[peers]\nmax_peers_per_client = 10\n");
  ASSERT_TRUE(serves(site, pattern_v1)) << site.log();
  const std::string site_url = "http://127.0.0.1:" + std::to_string(site.port()) + "/activeupdate/vendor/";
  http_cache cache(root_ / "http-cache", site.port());
  ASSERT_TRUE(cache.started()) << read_file(root_ / "http-cache" / "error.log");
  const std::string cached_url = "http://127.0.0.1:" + std::to_string(cache.port()) + "/activeupdate/vendor/";
  std::vector<relayd*> segments;
  for (int i = 0; i < 3; ++i) {
    segments.push_back(&start_relay(i < 2 ? site_url : cached_url, on_demand));
  }
  for (relayd* segment : segments) {
    ASSERT_TRUE(serves(*segment, pattern_v1)) << segment->log();
  }

  const std::string expected = slurp(tree_->file(pattern_v1));
  std::atomic<int> good{0};
  std::vector<std::thread> agents;
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < 10; ++i) {
      agents.emplace_back([&, s, i] {
        // Each agent its own host (loopback address), within the segment relay's 10 slots.
        const std::string source = "127.0." + std::to_string(s + 2) + "." + std::to_string(i + 1);
        raw_connection c(segments[s]->port(), 0, source.c_str());
        if (!c.send_all("GET /activeupdate/vendor/" + pattern_v1 + " HTTP/1.1\r\nHost: relay\r\n\r\n")) {
          ADD_FAILURE() << "segment " << s << " agent " << i << ": cannot send";
          return;
        }
        auto res = c.read_response(60s);
        if (res.complete && res.message.result() == http::status::ok && res.message.body() == expected) {
          ++good;
        } else {
          ADD_FAILURE() << "segment " << s << " agent " << i << ": status " << res.message.result_int()
                        << " " << res.message.body().substr(0, 200);
        }
      });
    }
  }
  for (auto& t : agents) {
    t.join();
  }
  EXPECT_EQ(good.load(), 30);
  EXPECT_EQ(upstream_gets(pattern_v1), 1U);  // the WAN carried the pattern once
  EXPECT_EQ(upstream_gets(engine), 1U);      // and the engine, fetched ahead by the site relay
  EXPECT_EQ(upstream_gets("server.ini"), 1U);
  // The third segment relay's index, engine and pattern came through the HTTP cache.
  const auto through_cache = cache.log();
  EXPECT_NE(through_cache.find("GET|/activeupdate/vendor/server.ini|200|"), std::string::npos) << through_cache;
  EXPECT_NE(through_cache.find("GET|/activeupdate/vendor/" + pattern_v1 + "|200|"), std::string::npos)
      << through_cache;
}

// Issue 15: a failed sync is tried again after `retry` (doubling), not an interval later: a relay
// whose upstream was down at start serves its snapshot soon after the upstream is back.
TEST_F(mirror_relay, failed_sync_is_retried_with_backoff) {
  publish_v1();
  relayd& relay = start_relay(upstream_url(), "retry = \"1s\"\n");  // upstream not started yet
  ASSERT_TRUE(eventually(60s, [&] {
    const auto v = mirror_view(relay);
    return !v.at("last_error").as_string().empty() && !v.at("syncing").as_bool();
  })) << relay.log();
  const auto failed = mirror_view(relay);
  EXPECT_NE(std::string(failed.at("last_error").as_string()).find("server.ini"), std::string::npos);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_TRUE(failed.at("next_sync").is_number()) << json::serialize(failed);
  EXPECT_LT(failed.at("next_sync").to_number<std::int64_t>() - now, 600);  // interval is 1 h

  ASSERT_NO_FATAL_FAILURE(upstream_->start());
  ASSERT_TRUE(serves(relay, pattern_v1, 120s)) << relay.log();
  EXPECT_TRUE(mirror_view(relay).at("last_error").as_string().empty());
  EXPECT_NE(relay.log().find("event=mirror_sync_retry name=vendor"), std::string::npos);
}

// Issue 15: on a full disk the error shows where operators look, what the failed sync wrote is
// removed, and the sync is tried again after `retry` (the upstream sees it), not an interval later.
TEST_F(mirror_relay, full_disk_keeps_the_old_snapshot_served) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mounting a small tmpfs needs root";
  }
  // A mount namespace of this test process (ctest runs each test in its own): the tmpfs is
  // visible only to this process and the relay and CLI it starts, and goes with them. This
  // process has no other thread yet, which unshare(CLONE_NEWNS) requires; where it cannot, the
  // tmpfs is mounted in the host's namespace and unmounted at the end.
  if (::unshare(CLONE_NEWNS) == 0) {
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
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
  // No floor: the disk really fills up (cache.min_free has its own test).
  // retry: long enough for the checks below to see the failed sync's leftovers gone before the
  // retry writes again, short enough for the test to wait for it.
  relayd& relay = start_relay(upstream_url(), "retry = \"10s\"\n", disk.string(), "", "[cache]\nmin_free = 0\n");
  ASSERT_TRUE(serves(relay, pattern_v1)) << relay.log();
  const std::string served_v1 = relay.request("GET", "/activeupdate/vendor/server.ini").message.body();

  tree_->add(pattern_v2, 4'000'000);  // does not fit beside version 1
  tree_->add(pattern_diff, 300'000);
  tree_->publish(index(2));
  struct ::statvfs before {};
  ASSERT_EQ(::statvfs(disk.c_str(), &before), 0);
  const std::string where = "127.0.0.1:" + std::to_string(relay.port());
  auto failed = cli({"mirror", "sync", "--relay", where, "--json"});
  EXPECT_EQ(failed.status, 1) << failed.output;
  const auto result = json::parse(failed.output).at("results").at(0).as_object();
  const std::string enospc = "No space left on device";
  EXPECT_NE(std::string(result.at("error").as_string()).find(enospc), std::string::npos)
      << failed.output;

  // Issue 15: the error shows where operators look, not "error: none".
  auto shown = cli({"mirror", "status", "--relay", where});
  EXPECT_NE(shown.output.find("error:         mirror vendor: "), std::string::npos) << shown.output;
  EXPECT_NE(shown.output.find(enospc), std::string::npos) << shown.output;
  const auto view = json::parse(relay.request("GET", "/-/mirror").message.body()).at(0);
  EXPECT_NE(std::string(view.at("last_error").as_string()).find(enospc), std::string::npos);
  const auto status = json::parse(relay.request("GET", "/-/status").message.body());
  EXPECT_NE(std::string(status.at("mirrors").at("sources").at(0).at("last_error").as_string()).find(enospc),
            std::string::npos);
  EXPECT_NE(relay.request("GET", "/").message.body().find(enospc), std::string::npos);
  // Freshness: the failed sync read the upstream's index, which lists a newer pattern than the
  // one served; the engine is current.
  const auto find_component = [](const json::value& source, std::string_view name) {
    for (const auto& c : source.at("freshness").as_array()) {
      if (c.at("component").as_string() == name) {
        return c.as_object();
      }
    }
    ADD_FAILURE() << name << " missing in " << json::serialize(source);
    return json::object{};
  };
  const auto pattern_state = find_component(view, "PATTERN:48020000");
  EXPECT_EQ(pattern_state.at("served").as_string(), "16.679.00");
  EXPECT_EQ(pattern_state.at("upstream").as_string(), "16.680.00");
  EXPECT_TRUE(pattern_state.at("behind").as_bool());
  EXPECT_FALSE(find_component(view, "ENGINE:4").at("behind").as_bool());
  EXPECT_TRUE(find_component(status.at("mirrors").at("sources").at(0), "PATTERN:48020000").at("behind").as_bool());
  auto overview = cli({"status", where});
  EXPECT_NE(overview.output.find("PATTERN:48020000: served 16.679.00"), std::string::npos) << overview.output;
  EXPECT_NE(overview.output.find("upstream lists 16.680.00"), std::string::npos) << overview.output;
  EXPECT_NE(overview.output.find("BEHIND for"), std::string::npos) << overview.output;
  EXPECT_NE(relay.request("GET", "/").message.body().find("behind for"), std::string::npos);
  const std::string metrics = relay.request("GET", "/-/metrics").message.body();
  EXPECT_NE(metrics.find("lanrelay_mirror_behind{source=\"vendor\",component=\"PATTERN:48020000\"} 1"),
            std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lanrelay_mirror_sync_failing{source=\"vendor\"} 1"), std::string::npos);
  // What the failed sync wrote is gone: no partial file, the space is back.
  for (const auto& entry : fs::recursive_directory_iterator(disk / "mirror" / "vendor" / "staging")) {
    EXPECT_FALSE(entry.path().string().ends_with(".partial")) << entry.path();
  }
  EXPECT_FALSE(fs::exists(disk / "mirror" / "vendor" / "tree" / pattern_v2));
  struct ::statvfs after {};
  ASSERT_EQ(::statvfs(disk.c_str(), &after), 0);
  EXPECT_GE(after.f_bavail * after.f_frsize + 256 * 1024, before.f_bavail * before.f_frsize);

  EXPECT_EQ(relay.request("GET", "/activeupdate/vendor/server.ini").message.body(), served_v1);
  for (const auto& path : {pattern_v1, engine}) {
    auto res = relay.request("GET", "/activeupdate/vendor/" + path);
    EXPECT_TRUE(res.message.body() == slurp(tree_->file(path))) << path;
  }

  // The failed "update now" is retried on its own (the interval is an hour): the upstream is
  // asked for server.ini and version 2 again.
  const auto index_gets = upstream_gets("server.ini");
  const auto v2_gets = upstream_gets(pattern_v2);
  EXPECT_TRUE(eventually(60s, [&] {
    return upstream_gets("server.ini") > index_gets && upstream_gets(pattern_v2) > v2_gets;
  })) << relay.log();
  EXPECT_NE(relay.log().find("event=mirror_sync_retry name=vendor"), std::string::npos);
  EXPECT_TRUE(relay.alive());
}

}  // namespace
}  // namespace lanrelay::test
