// What a configuration reload of lanrelayd relies on: changed_settings names exactly the settings
// that differ, the settings table says which of them reload (plan_reload, run_reload_hooks with
// the daemon's hooks), and content_store::set_max_size evicts at once down to a smaller limit.

#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include <stdlib.h>

#include <algorithm>
#include <iterator>
#include <span>
#include <filesystem>
#include <string>
#include <vector>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;
using testing::ElementsAre;

relay_config parsed(std::string_view toml) {
  auto loaded = parse_relay_config(toml, "test.toml");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.diagnostics.front().to_string());
  return loaded.config;
}

TEST(changed_settings, equal_configurations_differ_in_nothing) {
  EXPECT_TRUE(changed_settings(parsed(""), parsed("")).empty());
  EXPECT_TRUE(changed_settings(parsed("[peers]\nmax_peers = 10\n"), parsed("")).empty());
}

TEST(changed_settings, names_each_changed_setting_in_table_order) {
  const auto before = parsed("[peers]\nmax_peers = 2\n");
  const auto after = parsed(
      "[log]\nlevel = \"debug\"\n[peers]\nmax_peers = 4\n[http]\nport = 8080\n"
      "[[mirror.source]]\nname = \"au\"\nurl = \"http://upstream.example/au/\"\n");
  EXPECT_THAT(changed_settings(before, after),
              ElementsAre("http.port", "peers.max_peers", "log.level", "mirror.source"));
  EXPECT_THAT(changed_settings(parsed("[cache]\nmax_size = \"1GiB\"\n"),
                               parsed("[cache]\nmax_size = 1073741824\n")),
              ElementsAre());  // the same size, written two ways
}

// The settings lanrelayd applies at run time, each through its hook; everything else waits for a
// restart and keeps its running value.
struct recording_hooks : relay_reload_hooks {
  std::vector<std::string> calls;
  std::optional<std::string> set_cache_max_size(std::uint64_t b) override {
    return record("cache_max_size=" + std::to_string(b));
  }
  std::optional<std::string> set_max_peers(std::uint32_t n) override {
    return record("max_peers=" + std::to_string(n));
  }
  std::optional<std::string> set_max_peers_per_client(std::uint32_t n) override {
    return record("max_peers_per_client=" + std::to_string(n));
  }
  std::optional<std::string> set_retry_after(std::chrono::seconds s) override {
    return record("retry_after=" + std::to_string(s.count()));
  }
  std::optional<std::string> set_discovery_rate_limit(std::uint32_t n) override {
    return record("discovery_rate_limit=" + std::to_string(n));
  }
  std::optional<std::string> set_log_level(const std::string& level) override {
    return record("log_level=" + level);
  }
  std::optional<std::string> set_admin(const admin_settings& admin) override {
    if (admin.token == "refused-refused-refused") {
      return std::string("no");
    }
    return record("admin");
  }
  std::optional<std::string> record(std::string call) {
    calls.push_back(std::move(call));
    return std::nullopt;
  }
};

TEST(reload_plan, applies_reloadable_settings_through_their_hooks_and_keeps_the_rest) {
  const auto running = parsed("");
  auto next = parsed(
      "[cache]\nmax_size = \"1GiB\"\n[http]\nport = 8080\n"
      "[peers]\nmax_peers = 4\nmax_peers_per_client = 3\nretry_after = \"9s\"\n"
      "[discovery]\nrate_limit = 7\nport = 5000\n[log]\nlevel = \"debug\"\n"
      "[admin]\ntoken = \"0123456789abcdef0123\"\n"
      "[[mirror.source]]\nname = \"au\"\nurl = \"http://upstream.example/au/\"\n");
  auto plan = plan_reload(running, next);
  EXPECT_THAT(plan.applied,
              ElementsAre("cache.max_size", "peers.max_peers", "peers.max_peers_per_client",
                          "peers.retry_after", "discovery.rate_limit", "log.level", "admin.token"));
  EXPECT_THAT(plan.need_restart, ElementsAre("http.port", "discovery.port", "mirror.source"));
  EXPECT_EQ(next.http.port, running.http.port);
  EXPECT_EQ(next.discovery.port, running.discovery.port);
  EXPECT_TRUE(next.mirror.sources.empty());

  recording_hooks hooks;
  EXPECT_TRUE(run_reload_hooks(plan, running, next, hooks).empty());
  EXPECT_THAT(hooks.calls,
              ElementsAre("cache_max_size=1073741824", "max_peers=4", "max_peers_per_client=3",
                          "retry_after=9", "discovery_rate_limit=7", "log_level=debug", "admin"));
}

TEST(reload_plan, a_refused_admin_change_keeps_the_running_token) {
  const auto running = parsed("");
  auto next = parsed("[admin]\ntoken = \"refused-refused-refused\"\n");
  auto plan = plan_reload(running, next);
  recording_hooks hooks;
  const auto problems = run_reload_hooks(plan, running, next, hooks);
  EXPECT_THAT(problems, ElementsAre("admin.token: no"));
  EXPECT_THAT(plan.need_restart, ElementsAre("admin.token"));
  EXPECT_EQ(next.admin.token, "");
}

class store_resize_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-resize-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    auto opened = content_store::open({root_ / "cache", 0});
    ASSERT_TRUE(opened);
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  void add(const std::string& name, char fill, bool pin = false) {
    auto writer = store_->begin_add({item_kind::file, name, "1"});
    ASSERT_TRUE(writer);
    const std::string bytes(1000, fill);
    ASSERT_TRUE(writer->write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    ASSERT_TRUE(writer->commit(bytes.size(), std::nullopt, pin));
  }

  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& it : store_->list()) {
      out.push_back(it.key.name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path root_;
  std::unique_ptr<content_store> store_;
};

TEST_F(store_resize_test, smaller_limit_evicts_least_recently_used_unpinned_items_at_once) {
  add("a", 'a');
  add("b", 'b', true);
  add("c", 'c');
  ASSERT_TRUE(store_->open_item({item_kind::file, "a", "1"}));  // "a" is now used most recently

  ASSERT_TRUE(store_->set_max_size(2500));
  EXPECT_EQ(store_->max_size(), 2500U);
  EXPECT_THAT(names(), ElementsAre("a", "b"));
  EXPECT_EQ(store_->total_size(), 2000U);

  // Below what the pinned item needs: everything else goes, the pinned item stays, and adds
  // fail until there is room.
  ASSERT_TRUE(store_->set_max_size(500));
  EXPECT_THAT(names(), ElementsAre("b"));
  auto writer = store_->begin_add({item_kind::file, "d", "1"});
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write(std::as_bytes(std::span("d", 1))));
  const auto refused = writer->commit(1, std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(errc::store_full));

  // Committed: another process opening the directory finds one item, and one object on disk.
  auto other = content_store::open({root_ / "cache", 0});
  ASSERT_TRUE(other);
  EXPECT_EQ((*other)->list().size(), 1U);
  const auto objects = fs::directory_iterator(root_ / "cache" / "objects");
  EXPECT_EQ(std::distance(fs::begin(objects), fs::end(objects)), 1);
}

TEST_F(store_resize_test, larger_limit_or_none_evicts_nothing) {
  add("a", 'a');
  add("b", 'b');
  ASSERT_TRUE(store_->set_max_size(1 << 20));
  ASSERT_TRUE(store_->set_max_size(0));
  EXPECT_THAT(names(), ElementsAre("a", "b"));
}

}  // namespace
}  // namespace lanrelay
