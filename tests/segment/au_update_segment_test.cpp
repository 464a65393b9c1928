// `lanrelay update` on a segment made of network namespaces: the relay holds an ActiveUpdate file
// in its cache under the item identity the mirror uses (kind file, name =
// activeupdate::segment_item_name(path), version = listed size), and an agent's update gets it
// from the relay instead of the upstream tree; the catalog signed with the pinned site key is
// what makes the offer trusted.

#include "au_upstream.hpp"
#include "segment_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace lanrelay::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string pattern_path = "pattern/icrc/ioth1667900.zip";
const std::string pattern_sig = "pattern/icrc/ioth1667900.sig";
const std::string vsapi_path = "pattern/vsapi/lpt$vpn.679";

class au_update_segment : public segment_test {
 protected:
  void SetUp() override {
    if (!set_up_segment_test("lanrelay-au-segment")) {
      return;
    }
    tree_.emplace(work_ / "www");
    tree_->add(pattern_path, 2'500'000);
    tree_->add(vsapi_path, 900'000);
    tree_->publish("[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n"
                   "[PATTERN]\r\n"
                   "P.48020000=" + pattern_path + ",1667900,2500000\r\n"
                   "P.4=" + vsapi_path + ",1667905,900000\r\n");
    lan_ = &add_segment();
  }

  void TearDown() override {
    upstream_.reset();
    segment_test::TearDown();
  }

  void start_upstream() {
    const auto& host = lan_->add_host("upstream");
    upstream_address_ = host.address;
    upstream_.emplace(work_ / "nginx", work_ / "www",
                      listen_on{.netns = host.netns, .address = host.address, .port = 80});
    ASSERT_NO_FATAL_FAILURE(upstream_->start());
  }

  // The relay, with a site key; with `mirror_config` it mirrors the tree instead of holding the
  // icrc pattern file in its cache under the mirror's identity.
  std::string start_relay(const std::string& mirror_config = {}) {
    relay_ = &lan_->add_host("relay");
    const std::string key = make_site_key("relay");
    if (mirror_config.empty()) {
      const auto added = run_lanrelay(
          {"cache", "add", tree_->file(pattern_path).string(), "--kind", "file", "--name",
           activeupdate::segment_item_name(pattern_path).value(), "--version", "2500000",
           "--state-dir", state_dir("relay").string()},
          work_ / "cache-add.out");
      EXPECT_EQ(added.exit_status, 0) << added.output;
    }
    start_relay_daemon(*relay_, "relay",
                       "[relay]\nrole = \"relay\"\n[log]\nlevel = \"info\"\n" + mirror_config);
    return key;
  }

  update_run update_on(const std::string& name, const std::vector<std::string>& extra,
                       const std::string& index_url = {}) {
    const auto& host = lan_->add_host(name);
    update_run r;
    r.dir = work_ / name / "au";
    std::vector<std::string> args{"update", "--index-url",
                                  index_url.empty()
                                      ? "http://" + upstream_address_ + "/activeupdate/"
                                      : index_url,
                                  "--dir", r.dir.string(), "--state-dir",
                                  (work_ / name / "state").string(), "--json", "--log-level",
                                  "info"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto run = run_lanrelay(args, work_ / (name + ".out"), host.netns);
    r.exit_status = run.exit_status;
    r.log = run.output;
    r.report = update_report(r.log);
    return r;
  }

  static json::object component(const update_run& r, std::string_view name) {
    if (const auto* list = r.report.if_contains("components")) {
      for (const auto& c : list->as_array()) {
        if (c.as_object().at("component").as_string() == name) {
          return c.as_object();
        }
      }
    }
    ADD_FAILURE() << name << " missing from " << r.log;
    return {};
  }

  std::size_t upstream_gets(const std::string& path) const {
    std::size_t n = 0;
    for (const auto& line : upstream_->log()) {
      n += line.uri == "/activeupdate/" + path ? 1 : 0;
    }
    return n;
  }

  segment* lan_ = nullptr;
  std::optional<au_tree> tree_;
  std::optional<nginx> upstream_;
  const segment::host* relay_ = nullptr;
};

TEST_F(au_update_segment, the_pattern_comes_from_the_relay_not_the_upstream) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const std::string site_key = start_relay();
  ASSERT_EQ(site_key.rfind("lanrelay-ed25519:", 0), 0U) << site_key;

  // The pinned key as a file, as an agent's installer would drop it.
  const fs::path key_file = work_ / "site.pub";
  std::ofstream(key_file) << site_key << "\n";
  const auto r = update_on("agent0", {"--site-key", key_file.string()});
  ASSERT_EQ(r.exit_status, 0) << r.log;
  const auto icrc = component(r, "P.48020000");
  EXPECT_EQ(icrc.at("action").as_string(), "full");
  EXPECT_EQ(icrc.at("source").as_string(), "relay") << r.log;
  EXPECT_TRUE(icrc.at("verified").as_bool()) << r.log;
  EXPECT_EQ(slurp(r.dir / pattern_path), slurp(tree_->file(pattern_path)));
  EXPECT_EQ(slurp(r.dir / pattern_sig), slurp(tree_->file(pattern_sig)));
  // The relay does not hold vsapi: it comes from the upstream tree.
  EXPECT_EQ(component(r, "P.4").at("source").as_string(), "upstream");
  EXPECT_EQ(slurp(r.dir / vsapi_path), slurp(tree_->file(vsapi_path)));

  upstream_->log_of(3);  // server.ini, the .sig and vsapi
  EXPECT_EQ(upstream_gets(pattern_path), 0U);
  EXPECT_EQ(upstream_gets(pattern_sig), 1U);
  EXPECT_EQ(upstream_gets(vsapi_path), 1U);
}

TEST_F(au_update_segment, without_the_site_key_the_offer_is_not_trusted) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  start_relay();

  const auto r = update_on("agent0", {"--component", "P.48020000"});
  ASSERT_EQ(r.exit_status, 0) << r.log;
  const auto icrc = component(r, "P.48020000");
  EXPECT_EQ(icrc.at("source").as_string(), "upstream");
  EXPECT_EQ(icrc.at("fallback_reason").as_string(), "no trusted digest for the offered content")
      << r.log;
  EXPECT_EQ(slurp(r.dir / pattern_path), slurp(tree_->file(pattern_path)));
  upstream_->log_of(3);
  EXPECT_EQ(upstream_gets(pattern_path), 1U);
}

// The whole chain: upstream tree -> the relay's mirror -> the agent's update through discovery.
TEST_F(au_update_segment, a_mirroring_relay_serves_index_and_files_the_upstream_sends_once) {
  ASSERT_NO_FATAL_FAILURE(start_upstream());
  const std::string site_key =
      start_relay("[[mirror.source]]\nname = \"osce\"\nurl = \"http://" + upstream_address_ +
                  "/activeupdate/\"\n");
  // The relay syncs at start; its signed catalog lists a mirrored file once its digest is known.
  const std::string icrc_name = activeupdate::segment_item_name(pattern_path).value();
  const std::string vsapi_name = activeupdate::segment_item_name(vsapi_path).value();
  ASSERT_TRUE(eventually(60s, [&] {
    const auto catalog = http_get_in_netns(relay_->netns, relay_->address, 4127, "/-/catalog", 10s);
    return catalog.find(icrc_name) != std::string::npos &&
           catalog.find(vsapi_name) != std::string::npos;
  })) << read_file(work_ / "relay" / "lanrelayd.log");

  const auto r = update_on("agent0", {"--site-key", site_key},
                           "http://" + relay_->address + ":4127/activeupdate/osce/");
  ASSERT_EQ(r.exit_status, 0) << r.log;
  for (const auto* name : {"P.48020000", "P.4"}) {
    const auto c = component(r, name);
    EXPECT_EQ(c.at("source").as_string(), "relay") << name << ": " << r.log;
    EXPECT_TRUE(c.at("verified").as_bool()) << name;
  }
  EXPECT_EQ(slurp(r.dir / pattern_path), slurp(tree_->file(pattern_path)));
  EXPECT_EQ(slurp(r.dir / pattern_sig), slurp(tree_->file(pattern_sig)));
  EXPECT_EQ(slurp(r.dir / vsapi_path), slurp(tree_->file(vsapi_path)));
  // Only the relay's sync reached the upstream: each file once.
  for (const auto& path : {pattern_path, pattern_sig, vsapi_path}) {
    EXPECT_EQ(upstream_gets(path), 1U) << path;
  }
}

}  // namespace
}  // namespace lanrelay::test
