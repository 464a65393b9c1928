// The ActiveUpdate mirror against a real nginx on 127.0.0.1: first sync, 304, new versions, size
// mismatches, dropped connections, kill -9 of a sync, symbolic links and pruning.

#include "lanrelay/relay/mirror.hpp"

#include "au_upstream.hpp"
#include "process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace lanrelay::relay {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace au = lanrelay::activeupdate;
using namespace std::chrono_literals;
using test::au_tree;
using test::nginx;
using test::request_line;
using test::size_or_zero;
using test::slurp;
using test::spew;

constexpr std::string_view served_base = "http://relay.lan:8080/au/";

// Paths of version 1 and 2 of the generated tree, in document order.
const std::string v1_full = "pattern/icrc/ioth1667900.zip";
const std::string v1_merge_a = "pattern/icrc/ioth_1667700.1667900";
const std::string v1_merge_b = "pattern/icrc/ioth_1667800.1667900";
const std::string vsapi_full = "pattern/vsapi/lpt1667905.zip";
const std::string vsapi_merge = "pattern/vsapi/lpt_1667805.1667905";
const std::string engine_zip = "engine/engv_nt386_v12500-1004.zip";
const std::string program_zip = "product/osce14/update_1234.zip";
const std::string v2_full = "pattern/icrc/ioth1668000.zip";
const std::string v2_merge_a = "pattern/icrc/ioth_1667800.1668000";
const std::string v2_merge_b = "pattern/icrc/ioth_1667900.1668000";

std::vector<std::string> with_signatures(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    out.push_back(p);
    if (au::needs_signature(p)) {
      out.push_back(au::signature_path(p));
    }
  }
  return out;
}

class mirror : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-mirror.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    tree_ = std::make_unique<au_tree>(root_ / "www");
    server_ = std::make_unique<nginx>(root_ / "nginx", root_ / "www");
    dir_ = root_ / "state" / "mirror" / "test";
    fs::create_directories(dir_.parent_path());

    tree_->add(v1_full, 2'500'000);
    tree_->add(v1_merge_a, 310'000);
    tree_->add(v1_merge_b, 290'000);
    tree_->add(vsapi_full, 1'200'000);
    tree_->add(vsapi_merge, 350'000);
    tree_->add(engine_zip, 1'350'445);
    tree_->add(program_zip, 700'000);
    tree_->publish(index_v1());

    source_.name = "test";
    source_.upstream = boost::urls::url("http://127.0.0.1:" + std::to_string(server_->port()) +
                                        "/activeupdate/");
    source_.served_base_url = served_base;
    source_.timeouts = {.connect = 2'000ms, .response_head = 5'000ms, .idle_body = 5'000ms};
    source_.attempts = 3;
    source_.retry_delay = 20ms;
  }

  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  std::string pattern_section(const std::string& full, std::uint32_t version,
                              const std::vector<std::pair<std::string, std::string>>& merges,
                              std::int64_t size_error = 0) const {
    std::string s = "MergeCount=" + std::to_string(merges.size()) + "\r\n";
    s += "P.48020000=" + full + "," + std::to_string(version) + "," +
         std::to_string(tree_->size(full)) + "\r\n";
    int k = 1;
    for (const auto& [path, from] : merges) {
      const auto listed = static_cast<std::int64_t>(tree_->size(path)) +
                          (k == static_cast<int>(merges.size()) ? size_error : 0);
      s += "P.48020000.Merge." + std::to_string(k++) + "=" + path + "," + from + "," +
           std::to_string(listed) + "\r\n";
    }
    return s;
  }

  std::string index_with(const std::string& icrc) const {
    return "; ActiveUpdate index\r\n"
           "[Server]\r\n"
           "Server.1=http://au.example.com/activeupdate\r\n"
           "Https=https://au.example.com/activeupdate\r\n"
           "\r\n"
           "[All_Product]\r\n"
           "Product.1=OfficeScan,14.0\r\n"
           "SomeKey = kept as written \r\n"
           "\r\n"
           "[PATTERN]\r\n" +
           icrc + "P.4=" + vsapi_full + ",1667905," + std::to_string(tree_->size(vsapi_full)) +
           "\r\n" + "P.4.Merge.1=" + vsapi_merge + ",1667805," +
           std::to_string(tree_->size(vsapi_merge)) +
           "\r\n"
           "\r\n"
           "[ENGINE]\r\n"
           "E.4=VSAPI32_NT_I386," +
           engine_zip + ",12.500.1004," + std::to_string(tree_->size(engine_zip)) +
           ",6.510.1002\r\n"
           "\r\n"
           "[Info_1000_1_1_1]\r\n"
           "Version=14.0.1000\r\n"
           "Build=14.0.1234\r\n"
           "Path=" +
           program_zip + "," + std::to_string(tree_->size(program_zip)) +
           "\r\n"
           "\r\n"
           "[Custom_Vendor]\r\n"
           "anything the vendor writes here stays\r\n";
  }

  std::string index_v1() const {
    return index_with(pattern_section(v1_full, 1667900,
                                      {{v1_merge_a, "1667700"}, {v1_merge_b, "1667800"}}));
  }

  // Version 2: a new full pattern and two new diffs; `size_error` is added to the last diff's
  // listed size.
  std::string index_v2(std::int64_t size_error = 0) {
    tree_->add(v2_full, 2'600'000);
    tree_->add(v2_merge_a, 420'000);
    tree_->add(v2_merge_b, 330'000);
    return index_with(pattern_section(
        v2_full, 1668000, {{v2_merge_a, "1667800"}, {v2_merge_b, "1667900"}}, size_error));
  }

  static std::vector<std::string> v1_paths() {
    return with_signatures(
        {v1_full, v1_merge_a, v1_merge_b, vsapi_full, vsapi_merge, engine_zip, program_zip});
  }
  static std::vector<std::string> v2_new_paths() {
    return with_signatures({v2_full, v2_merge_a, v2_merge_b});
  }

  // What the relay must serve for `upstream`: its bytes with [Server] pointing at the relay.
  static std::string expected_served(std::string upstream) {
    const auto replace = [&](const std::string& from, const std::string& to) {
      const auto at = upstream.find(from);
      ASSERT_NE(at, std::string::npos);
      upstream.replace(at, from.size(), to);
    };
    replace("Server.1=http://au.example.com/activeupdate",
            "Server.1=" + std::string(served_base));
    replace("Https=https://au.example.com/activeupdate", "Https=" + std::string(served_base));
    return upstream;
  }

  sync_result run_sync() {
    net::io_context ioc;
    std::optional<sync_result> out;
    net::co_spawn(ioc, sync(source_, dir_), [&](std::exception_ptr e, sync_result r) {
      if (e) {
        std::rethrow_exception(e);
      }
      out = std::move(r);
    });
    ioc.run_for(120s);
    EXPECT_TRUE(out.has_value()) << "sync did not finish in time";
    return out.value_or(sync_result{.error = "did not finish"});
  }

  fs::path in_tree(const std::string& path) const { return dir_ / "tree" / path; }
  fs::path partial(const std::string& path) const { return dir_ / "staging" / (path + ".partial"); }
  std::string uri(const std::string& path) const { return "/activeupdate/" + path; }

  void expect_mirrored(const std::vector<std::string>& paths) const {
    for (const auto& p : paths) {
      ASSERT_TRUE(fs::is_regular_file(in_tree(p))) << p;
      EXPECT_EQ(slurp(in_tree(p)), slurp(tree_->file(p))) << p;
    }
  }

  std::uint64_t sum_sizes(const std::vector<std::string>& paths) const {
    std::uint64_t n = 0;
    for (const auto& p : paths) {
      n += tree_->size(p);
    }
    return n;
  }

  fs::path root_;
  fs::path dir_;
  std::unique_ptr<au_tree> tree_;
  std::unique_ptr<nginx> server_;
  mirror_source source_;
};

TEST_F(mirror, first_sync_mirrors_every_file_and_rewrites_only_server_section) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.not_modified);
  const auto paths = v1_paths();
  EXPECT_EQ(r.files_downloaded, paths.size());
  EXPECT_EQ(r.files_kept, 0U);
  EXPECT_EQ(r.requests, paths.size() + 1);
  EXPECT_EQ(r.bytes_downloaded, sum_sizes(paths) + tree_->server_ini().size());
  expect_mirrored(paths);
  EXPECT_EQ(slurp(in_tree("server.ini")), expected_served(tree_->server_ini()));

  const auto log = server_->log_of(paths.size() + 1);
  ASSERT_EQ(log.size(), paths.size() + 1);
  EXPECT_EQ(log[0].uri, "/activeupdate/server.ini");
  EXPECT_EQ(log[0].if_none_match, "-");  // no snapshot yet: unconditional
  for (std::size_t i = 1; i < log.size(); ++i) {
    EXPECT_EQ(log[i].status, 200U) << log[i].uri;
    EXPECT_EQ(log[i].range, "-") << log[i].uri;
  }

  const auto status = read_status(dir_);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->has_snapshot);
  EXPECT_EQ(status->generation, 1U);
  EXPECT_FALSE(status->etag.empty());
  EXPECT_TRUE(status->last_error.empty());
  EXPECT_TRUE(status->last_success.has_value());
  EXPECT_TRUE(status->last_change.has_value());
  EXPECT_TRUE(fs::is_regular_file(dir_ / "history" / "server.ini.1"));
}

TEST_F(mirror, unchanged_upstream_costs_one_conditional_request) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_TRUE(run_sync().ok());
  const auto before = server_->log_of(v1_paths().size() + 1).size();
  const auto served = slurp(in_tree("server.ini"));

  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.not_modified);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.requests, 1U);
  EXPECT_EQ(r.bytes_downloaded, 0U);
  EXPECT_EQ(r.files_downloaded, 0U);
  const auto log = server_->log_of(before + 1);
  ASSERT_EQ(log.size(), before + 1);
  EXPECT_EQ(log.back().uri, "/activeupdate/server.ini");
  EXPECT_EQ(log.back().status, 304U);
  EXPECT_EQ(log.back().bytes, 0U);
  EXPECT_NE(log.back().if_none_match, "-");
  EXPECT_EQ(slurp(in_tree("server.ini")), served);
  EXPECT_EQ(read_status(dir_)->generation, 1U);
}

TEST_F(mirror, new_pattern_version_downloads_only_new_files) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_TRUE(run_sync().ok());
  const auto before = server_->log_of(v1_paths().size() + 1).size();

  tree_->publish(index_v2());
  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.changed);
  const auto fresh = v2_new_paths();
  EXPECT_EQ(r.files_downloaded, fresh.size());
  // v2 names everything of v1 except the old full file, its .sig and both old diffs.
  EXPECT_EQ(r.files_kept, v1_paths().size() - 4);
  EXPECT_EQ(r.requests, fresh.size() + 1);
  EXPECT_EQ(r.bytes_downloaded, sum_sizes(fresh) + tree_->server_ini().size());
  expect_mirrored(fresh);
  EXPECT_EQ(slurp(in_tree("server.ini")), expected_served(tree_->server_ini()));

  const auto log = server_->log_of(before + fresh.size() + 1);
  ASSERT_EQ(log.size(), before + fresh.size() + 1);
  std::vector<std::string> fetched;
  for (std::size_t i = before + 1; i < log.size(); ++i) {
    fetched.push_back(log[i].uri.substr(std::string("/activeupdate/").size()));
  }
  EXPECT_EQ(fetched, fresh);
  EXPECT_EQ(read_status(dir_)->generation, 2U);
}

TEST_F(mirror, size_mismatch_is_never_published_and_keeps_previous_snapshot) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_TRUE(run_sync().ok());
  const auto served = slurp(in_tree("server.ini"));
  const auto before = server_->log_of(v1_paths().size() + 1).size();

  tree_->publish(index_v2(+100));  // the last diff is listed 100 bytes longer than it is
  const auto r = run_sync();
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.changed);
  EXPECT_NE(r.error.find(v2_merge_b), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("index lists"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(in_tree(v2_merge_b)));
  EXPECT_FALSE(fs::exists(partial(v2_merge_b)));
  EXPECT_EQ(slurp(in_tree("server.ini")), served);
  expect_mirrored(v1_paths());

  const auto log = server_->log_of(before + 1 + 3 + source_.attempts);
  std::size_t tries = 0;
  for (std::size_t i = before; i < log.size(); ++i) {
    tries += log[i].uri == uri(v2_merge_b) ? 1 : 0;
  }
  EXPECT_EQ(tries, source_.attempts);

  const auto status = read_status(dir_);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->last_error, r.error);
  EXPECT_EQ(status->generation, 1U);

  // Once upstream is consistent again, only the missing diff is fetched.
  tree_->publish(index_v2());
  const auto fixed = run_sync();
  ASSERT_TRUE(fixed.ok()) << fixed.error;
  EXPECT_EQ(fixed.files_downloaded, 1U);
  EXPECT_EQ(fixed.requests, 2U);
  expect_mirrored(v2_new_paths());
  EXPECT_TRUE(read_status(dir_)->last_error.empty());
}

TEST_F(mirror, dropped_connection_resumes_with_range) {
  ASSERT_NO_FATAL_FAILURE(server_->start(uri(engine_zip), "400k"));
  std::optional<sync_result> first;
  std::thread worker([&] { first = run_sync(); });
  const bool mid_file = test::eventually(20s, [&] { return size_or_zero(partial(engine_zip)) >= 200'000; });
  server_->kill();
  worker.join();
  ASSERT_TRUE(mid_file);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->ok());
  EXPECT_NE(first->error.find(engine_zip), std::string::npos) << first->error;
  EXPECT_FALSE(fs::exists(in_tree("server.ini")));  // nothing served before every file is in

  const auto have = size_or_zero(partial(engine_zip));
  ASSERT_GT(have, 0U);
  ASSERT_LT(have, tree_->size(engine_zip));
  ASSERT_NO_FATAL_FAILURE(server_->start());
  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  const auto rest = with_signatures({engine_zip, program_zip});
  EXPECT_EQ(r.files_downloaded, rest.size());
  EXPECT_EQ(r.files_kept, v1_paths().size() - rest.size());
  EXPECT_EQ(r.bytes_downloaded, tree_->server_ini().size() + sum_sizes(rest) - have);
  expect_mirrored(v1_paths());
  EXPECT_EQ(slurp(in_tree("server.ini")), expected_served(tree_->server_ini()));

  const auto log = server_->log_of(rest.size() + 1);
  ASSERT_EQ(log.size(), rest.size() + 1);
  EXPECT_EQ(log[1].uri, uri(engine_zip));
  EXPECT_EQ(log[1].status, 206U);
  EXPECT_EQ(log[1].range, "bytes=" + std::to_string(have) + "-");
  EXPECT_EQ(log[1].bytes, tree_->size(engine_zip) - have);
}

TEST_F(mirror, killed_sync_resumes_without_refetching_and_previous_snapshot_stays) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_TRUE(run_sync().ok());
  const auto served_v1 = slurp(in_tree("server.ini"));
  server_->kill();

  tree_->publish(index_v2());
  ASSERT_NO_FATAL_FAILURE(server_->start(uri(v2_full), "500k"));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    net::io_context ioc;
    net::co_spawn(ioc, sync(source_, dir_), [](std::exception_ptr, sync_result) {});
    ioc.run();
    ::_exit(0);
  }
  const bool mid_file =
      test::eventually(20s, [&] { return size_or_zero(partial(v2_full)) >= 300'000; });
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(mid_file);
  ASSERT_TRUE(WIFSIGNALED(status));

  // The killed sync changed nothing an agent sees.
  EXPECT_EQ(slurp(in_tree("server.ini")), served_v1);
  expect_mirrored(v1_paths());

  const auto have = size_or_zero(partial(v2_full));
  ASSERT_GT(have, 0U);
  server_->kill();
  ASSERT_NO_FATAL_FAILURE(server_->start());
  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  const auto fresh = v2_new_paths();
  EXPECT_EQ(r.files_downloaded, fresh.size());
  EXPECT_EQ(r.bytes_downloaded, tree_->server_ini().size() + sum_sizes(fresh) - have);
  expect_mirrored(fresh);
  EXPECT_EQ(slurp(in_tree("server.ini")), expected_served(tree_->server_ini()));

  const auto log = server_->log_of(fresh.size() + 1);
  ASSERT_EQ(log.size(), fresh.size() + 1);
  EXPECT_EQ(log[1].uri, uri(v2_full));
  EXPECT_EQ(log[1].status, 206U);
  EXPECT_EQ(log[1].range, "bytes=" + std::to_string(have) + "-");
}

TEST_F(mirror, symbolic_link_in_tree_fails_the_sync_and_writes_nothing_outside) {
  const fs::path outside = root_ / "outside";
  fs::create_directories(outside);
  fs::create_directories(dir_ / "tree");
  fs::create_directory_symlink(outside, dir_ / "tree" / "pattern");
  ASSERT_NO_FATAL_FAILURE(server_->start());
  const auto r = run_sync();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("symbolic link"), std::string::npos) << r.error;
  EXPECT_TRUE(fs::is_empty(outside));
  EXPECT_FALSE(fs::exists(in_tree("server.ini")));
}

TEST_F(mirror, prune_keeps_what_recent_indexes_name) {
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_TRUE(run_sync().ok());
  tree_->publish(index_v2());
  ASSERT_TRUE(run_sync().ok());

  spew(in_tree("stray/leftover.bin"), "old");
  fs::create_symlink(root_ / "www", in_tree("pattern/link"));
  spew(partial("pattern/icrc/gone.zip"), "partial of a file no index names");

  const auto current = au::parse(slurp(in_tree("server.ini")));
  ASSERT_TRUE(current);

  // keep=1: generation 1 (v1) is still protected; only strays go.
  const auto kept = prune(dir_, *current, 1);
  ASSERT_TRUE(kept) << kept.error().message();
  EXPECT_EQ(kept->files_removed, 3U);
  EXPECT_FALSE(fs::exists(in_tree("stray")));
  EXPECT_FALSE(fs::is_symlink(in_tree("pattern/link")));
  EXPECT_TRUE(fs::exists(root_ / "www" / "activeupdate" / "server.ini"));  // the link's target
  EXPECT_FALSE(fs::exists(partial("pattern/icrc/gone.zip")));
  expect_mirrored(v1_paths());
  expect_mirrored(v2_new_paths());

  // keep=0: what only v1 named goes; everything v2 names stays.
  const auto pruned = prune(dir_, *current, 0);
  ASSERT_TRUE(pruned) << pruned.error().message();
  const std::vector<std::string> superseded =
      with_signatures({v1_full, v1_merge_a, v1_merge_b});
  EXPECT_EQ(pruned->files_removed, superseded.size());
  EXPECT_EQ(pruned->bytes_removed, sum_sizes(superseded));
  for (const auto& p : superseded) {
    EXPECT_FALSE(fs::exists(in_tree(p))) << p;
  }
  expect_mirrored(v2_new_paths());
  expect_mirrored(with_signatures({vsapi_full, vsapi_merge, engine_zip, program_zip}));
  EXPECT_TRUE(fs::exists(in_tree("server.ini")));
  EXPECT_FALSE(fs::exists(dir_ / "history" / "server.ini.1"));
  EXPECT_TRUE(fs::exists(dir_ / "history" / "server.ini.2"));

  // The pruned mirror still syncs with one conditional request.
  const auto r = run_sync();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.not_modified);
}

}  // namespace
}  // namespace lanrelay::relay
