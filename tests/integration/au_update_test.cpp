// `lanrelay update` against an ActiveUpdate tree served by a real nginx on 127.0.0.1: full files
// first, a Merge diff when one fits, the full file when none does, nothing when current, a size
// that differs from the index, and kill -9 in the middle of an update. Discovery is off here (no
// datagram leaves the test); tests/segment/ covers getting the files from the segment.

#include "lanrelay/agent/au_update.hpp"

#include "au_upstream.hpp"
#include "process.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string icrc_v1 = "pattern/icrc/ioth1667900.zip";
const std::string icrc_v2 = "pattern/icrc/ioth1668000.zip";
const std::string icrc_diff_800 = "pattern/icrc/ioth_1667800.1668000";
const std::string icrc_diff_900 = "pattern/icrc/ioth_1667900.1668000";
const std::string vsapi = "pattern/vsapi/lpt$vpn.679";
const std::string engine_v1 = "engine/engv_nt386_v12500-1004.zip";
const std::string engine_v2 = "engine/engv_nt386_v12600-1010.zip";

struct run_result {
  int exit_code = -1;
  std::string output;
};

class au_update : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-au-update.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    tree_ = std::make_unique<test::au_tree>(root_ / "www");
    server_ = std::make_unique<test::nginx>(root_ / "nginx", root_ / "www");
    dir_ = root_ / "agent" / "au";
    tree_->add(icrc_v1, 2'500'000);
    tree_->add(vsapi, 1'200'000);
    tree_->add(engine_v1, 1'350'445);
    tree_->add(icrc_v2, 2'600'000);
    tree_->add(icrc_diff_800, 420'000);
    tree_->add(icrc_diff_900, 330'000);
    tree_->add(engine_v2, 1'400'000);
  }

  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  // Version 1: icrc 1667900 full only. Version 2: icrc 1668000 with diffs from 1667800 and
  // 1667900, and a newer engine. vsapi is the same in both.
  std::string index_v1() const {
    return "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n"
           "[PATTERN]\r\nMergeCount=0\r\n"
           "P.48020000=" + icrc_v1 + ",1667900," +
           std::to_string(tree_->size(icrc_v1)) + "\r\n" +
           "P.4=pattern/vsapi/lpt$vpn.679,1667905," + std::to_string(tree_->size(vsapi)) +
           "\r\n\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," + engine_v1 + ",12.500.1004," +
           std::to_string(tree_->size(engine_v1)) + ",6.510.1002\r\n";
  }
  std::string index_v2(std::int64_t diff_size_error = 0) const {
    return "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n"
           "[PATTERN]\r\nMergeCount=2\r\n"
           "P.48020000=" + icrc_v2 + ",1668000," + std::to_string(tree_->size(icrc_v2)) + "\r\n" +
           "P.48020000.Merge.1=" + icrc_diff_800 + ",1667800," +
           std::to_string(tree_->size(icrc_diff_800)) + "\r\n" +
           "P.48020000.Merge.2=" + icrc_diff_900 + ",1667900," +
           std::to_string(static_cast<std::int64_t>(tree_->size(icrc_diff_900)) +
                          diff_size_error) +
           "\r\n" + "P.4=pattern/vsapi/lpt$vpn.679,1667905," + std::to_string(tree_->size(vsapi)) +
           "\r\n\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," + engine_v2 + ",12.600.1010," +
           std::to_string(tree_->size(engine_v2)) + ",6.510.1002\r\n";
  }

  std::vector<std::string> update_argv(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv{LANRELAY_CLI_PATH,
                                  "update",
                                  "--index-url",
                                  "http://127.0.0.1:" + std::to_string(server_->port()) +
                                      index_path_,
                                  "--dir",
                                  dir_.string(),
                                  "--state-dir",
                                  (root_ / "agent" / "state").string(),
                                  "--no-discovery"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  run_result run_update(const std::vector<std::string>& extra = {}) {
    const fs::path out = root_ / ("update-" + std::to_string(++runs_) + ".out");
    test::process p(update_argv(extra), {.output = out});
    const auto status = p.wait_for(60s);
    run_result r;
    r.output = test::read_file(out);
    if (status && WIFEXITED(*status)) {
      r.exit_code = WEXITSTATUS(*status);
    }
    return r;
  }

  json::object run_json(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = extra;
    args.push_back("--json");
    const auto r = run_update(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    // The JSON object is the last line; warnings (stderr, same file) may come before it.
    std::string last = r.output;
    while (!last.empty() && last.back() == '\n') {
      last.pop_back();
    }
    last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
    boost::system::error_code ec;
    auto value = json::parse(last, ec);
    EXPECT_FALSE(ec) << r.output;
    return ec || !value.is_object() ? json::object{} : value.as_object();
  }

  static const json::object& component(const json::object& doc, std::string_view name) {
    for (const auto& c : doc.at("components").as_array()) {
      if (c.as_object().at("component").as_string() == name) {
        return c.as_object();
      }
    }
    ADD_FAILURE() << name << " missing";
    static const json::object none;
    return none;
  }

  // Every file the record names is installed with the upstream's bytes.
  void expect_consistent() const {
    const auto local = agent::read_local_versions(dir_);
    ASSERT_TRUE(local) << local.error().message();
    for (const auto& [name, c] : local->components) {
      for (const auto& f : c.files) {
        ASSERT_TRUE(fs::is_regular_file(dir_ / f)) << name << ": " << f;
        EXPECT_EQ(test::slurp(dir_ / f), test::slurp(tree_->file(f))) << f;
      }
    }
  }

  std::string recorded(const std::string& name) const {
    const auto local = agent::read_local_versions(dir_);
    if (!local || !local->components.contains(name)) {
      return {};
    }
    return local->components.at(name).version;
  }

  std::vector<std::string> payload_gets() const {
    std::vector<std::string> uris;
    for (const auto& line : server_->log()) {
      if (line.uri != "/activeupdate/server.ini") {
        uris.push_back(line.uri);
      }
    }
    return uris;
  }

  fs::path root_;
  fs::path dir_;
  std::unique_ptr<test::au_tree> tree_;
  std::unique_ptr<test::nginx> server_;
  int runs_ = 0;
  std::string index_path_ = "/activeupdate/";  // the tree; or its server.ini
};

TEST_F(au_update, first_update_takes_full_files_then_a_diff_then_nothing) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start());

  auto doc = run_json();
  EXPECT_TRUE(doc.at("ok").as_bool());
  const auto& icrc = component(doc, "P.48020000");
  EXPECT_EQ(icrc.at("action").as_string(), "full");
  EXPECT_TRUE(icrc.at("from").is_null());
  EXPECT_EQ(icrc.at("to").as_string(), "1667900");
  EXPECT_EQ(icrc.at("source").as_string(), "upstream");
  EXPECT_EQ(component(doc, "P.4").at("path").as_string(), vsapi);
  EXPECT_EQ(component(doc, "E.4").at("action").as_string(), "full");
  ASSERT_NO_FATAL_FAILURE(expect_consistent());
  for (const std::string& f : {icrc_v1, std::string("pattern/icrc/ioth1667900.sig"), vsapi, engine_v1,
                                std::string("engine/engv_nt386_v12500-1004.sig")}) {
    EXPECT_EQ(test::slurp(dir_ / f), test::slurp(tree_->file(f))) << f;
  }
  EXPECT_EQ(recorded("P.48020000"), "1667900");
  EXPECT_EQ(recorded("E.4"), "12.500.1004");
  EXPECT_FALSE(fs::exists(dir_ / ".lanrelay-staging"));

  // Version 2: the diff from 1667900 and the new engine; vsapi is current.
  tree_->publish(index_v2());
  const auto before = server_->log().size();
  doc = run_json();
  const auto& icrc2 = component(doc, "P.48020000");
  EXPECT_EQ(icrc2.at("action").as_string(), "diff");
  EXPECT_EQ(icrc2.at("from").as_string(), "1667900");
  EXPECT_EQ(icrc2.at("to").as_string(), "1668000");
  EXPECT_EQ(icrc2.at("path").as_string(), icrc_diff_900);
  EXPECT_EQ(icrc2.at("bytes").as_int64(), 330'000);
  EXPECT_EQ(component(doc, "P.4").at("action").as_string(), "current");
  EXPECT_EQ(component(doc, "E.4").at("action").as_string(), "full");
  EXPECT_EQ(recorded("P.48020000"), "1668000");
  EXPECT_EQ(recorded("E.4"), "12.600.1010");
  ASSERT_NO_FATAL_FAILURE(expect_consistent());
  const auto log = server_->log_of(before + 4);
  std::vector<std::string> second;
  for (std::size_t i = before; i < log.size(); ++i) {
    second.push_back(log[i].uri);
  }
  EXPECT_EQ(second, (std::vector<std::string>{
                        "/activeupdate/server.ini", "/activeupdate/" + icrc_diff_900,
                        "/activeupdate/" + engine_v2,
                        "/activeupdate/engine/engv_nt386_v12600-1010.sig"}));

  // Already current: the index only, no download, exit status 0, one line per component.
  const auto current = run_update();
  EXPECT_EQ(current.exit_code, 0) << current.output;
  EXPECT_NE(current.output.find("P.48020000 1668000 already current"), std::string::npos)
      << current.output;
  EXPECT_NE(current.output.find("E.4 12.600.1010 already current"), std::string::npos);
  const auto after = server_->log_of(log.size() + 1);
  ASSERT_EQ(after.size(), log.size() + 1);
  EXPECT_EQ(after.back().uri, "/activeupdate/server.ini");
}

TEST_F(au_update, a_local_version_without_a_matching_diff_takes_the_full_file) {
  tree_->publish(index_v2());
  ASSERT_NO_FATAL_FAILURE(server_->start());
  agent::local_versions local;
  local.components["P.48020000"] = {"1667500", {}};
  fs::create_directories(dir_);
  ASSERT_TRUE(agent::write_local_versions(dir_, local));

  index_path_ = "/activeupdate/server.ini";  // the index's own URL works as well as the tree's
  const auto doc = run_json({"--component", "P.48020000"});
  EXPECT_EQ(doc.at("index_url").as_string(),
            "http://127.0.0.1:" + std::to_string(server_->port()) + "/activeupdate/server.ini");
  ASSERT_EQ(doc.at("components").as_array().size(), 1U);
  const auto& icrc = component(doc, "P.48020000");
  EXPECT_EQ(icrc.at("action").as_string(), "full");
  EXPECT_EQ(icrc.at("from").as_string(), "1667500");
  EXPECT_EQ(icrc.at("path").as_string(), icrc_v2);
  EXPECT_EQ(recorded("P.48020000"), "1668000");
  EXPECT_EQ(payload_gets(), (std::vector<std::string>{"/activeupdate/" + icrc_v2,
                                                      "/activeupdate/pattern/icrc/ioth1668000.sig"}));
  ASSERT_NO_FATAL_FAILURE(expect_consistent());
}

TEST_F(au_update, a_size_that_differs_from_the_index_installs_nothing) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start());
  ASSERT_EQ(run_update().exit_code, 0);
  tree_->publish(index_v2(+7));  // the diff from 1667900 is listed 7 bytes too large

  const auto r = run_update();
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("P.48020000 1667900 -> 1668000 diff " + icrc_diff_900 + " FAILED"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the index lists " + std::to_string(tree_->size(icrc_diff_900) + 7) +
                          " bytes"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir_ / icrc_diff_900));
  // The failed component keeps its old version; the engine, which succeeded, is recorded.
  EXPECT_EQ(recorded("P.48020000"), "1667900");
  EXPECT_EQ(recorded("E.4"), "12.600.1010");
  ASSERT_NO_FATAL_FAILURE(expect_consistent());

  // Listed 7 bytes too small: the download is refused, never written past the listed size.
  tree_->publish(index_v2(-7));
  const auto smaller = run_update();
  EXPECT_EQ(smaller.exit_code, 2) << smaller.output;
  EXPECT_NE(smaller.output.find("larger than the allowed maximum size"), std::string::npos)
      << smaller.output;
  EXPECT_FALSE(fs::exists(dir_ / icrc_diff_900));
  EXPECT_EQ(recorded("P.48020000"), "1667900");
}

// Issue 15: each component's local age (since an update last found it current) is reported,
// and past --max-age (default 7 days) a warning names it and the exit status is 3.
TEST_F(au_update, local_age_is_reported_and_past_max_age_the_exit_status_is_3) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start());
  auto doc = run_json();
  EXPECT_EQ(doc.at("max_age_seconds").as_int64(), 7 * 24 * 3600);
  ASSERT_EQ(doc.at("local_age").as_array().size(), 3U) << json::serialize(doc);
  for (const auto& a : doc.at("local_age").as_array()) {
    EXPECT_FALSE(a.at("stale").as_bool());
    EXPECT_LT(a.at("age_seconds").as_int64(), 3600);  // just now (the run takes seconds at most)
  }

  // Ten days without an update that found them current: the record says when that was.
  const auto ten_days_ago = std::chrono::duration_cast<std::chrono::seconds>(
                                (std::chrono::system_clock::now() - std::chrono::hours(240)).time_since_epoch())
                                .count();
  json::object components;
  for (const auto& name : {"P.48020000", "P.4", "E.4"}) {
    components[name] = ten_days_ago;
  }
  test::spew(dir_ / "lanrelay-checked.json",
             json::serialize(json::object{{"format", 1}, {"components", components}}));
  server_->kill();  // and the index is unreachable now

  auto r = run_update();
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("warning: P.48020000 1667900 was last found current 10 d 0 h ago"),
            std::string::npos)
      << r.output;
  r = run_update({"--max-age", "480h"});  // 20 days: the same failure, no warning
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.find("warning:"), std::string::npos) << r.output;
  r = run_update({"--max-age", "0"});
  EXPECT_EQ(r.exit_code, 1) << r.output;

  // The index back: every component is found current again, its age starts anew.
  ASSERT_NO_FATAL_FAILURE(server_->start());
  r = run_update();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("P.48020000 1667900 local age 0 s"), std::string::npos) << r.output;
}

TEST_F(au_update, components_after_the_deadline_fail_and_install_nothing) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start());
  // Reading the index takes longer than 1 ms: every component's turn comes after the deadline.
  const auto r = run_update({"--deadline", "1ms"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("the update's deadline (--deadline) passed"), std::string::npos)
      << r.output;
  EXPECT_TRUE(payload_gets().empty());
  EXPECT_EQ(recorded("P.48020000"), "");
  ASSERT_NO_FATAL_FAILURE(expect_consistent());
}

TEST_F(au_update, bad_requests_fail_before_any_download) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start());
  auto r = run_update({"--component", "P.999"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("P.999"), std::string::npos) << r.output;

  test::spew(root_ / "www" / "activeupdate" / "server.ini", "[PATTERN]\r\nP.1=../etc/passwd,1,1\r\n");
  r = run_update();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("server.ini:2"), std::string::npos) << r.output;
  EXPECT_TRUE(payload_gets().empty());
  EXPECT_FALSE(fs::exists(dir_ / agent::versions_file_name));
}

TEST_F(au_update, kill_9_in_the_middle_leaves_the_directory_consistent) {
  tree_->publish(index_v1());
  ASSERT_NO_FATAL_FAILURE(server_->start("/activeupdate/pattern/icrc/", "400k"));
  const fs::path partial = dir_ / ".lanrelay-staging" / (icrc_v1 + ".lanrelay-part");
  {
    test::process p(update_argv(), {.output = root_ / "killed.out"});
    ASSERT_TRUE(test::eventually(20s, [&] { return test::size_or_zero(partial) >= 200'000; }))
        << test::read_file(root_ / "killed.out");
    p.kill();
  }
  EXPECT_FALSE(fs::exists(dir_ / icrc_v1));
  EXPECT_TRUE(recorded("P.48020000").empty());
  ASSERT_NO_FATAL_FAILURE(expect_consistent());

  // The next run starts clean and completes.
  server_->kill();
  ASSERT_NO_FATAL_FAILURE(server_->start());
  const auto r = run_update();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(recorded("P.48020000"), "1667900");
  ASSERT_NO_FATAL_FAILURE(expect_consistent());
  EXPECT_FALSE(fs::exists(dir_ / ".lanrelay-staging"));
}

}  // namespace
}  // namespace lanrelay
