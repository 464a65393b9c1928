// Freshness of a mirror source (issue 15): which version is served, which the upstream lists,
// and since when, across sync attempts that succeed, fail before the index, or fail after it.

#include "lanrelay/relay/mirror_freshness.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace lanrelay::relay {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

const sys_clock::time_point t0 = sys_clock::time_point(std::chrono::seconds(1'800'000'000));

const component_freshness& find(const std::vector<component_freshness>& list, std::string_view name) {
  for (const auto& c : list) {
    if (c.component == name) {
      return c;
    }
  }
  ADD_FAILURE() << name << " missing";
  static const component_freshness none;
  return none;
}

TEST(mirror_freshness, versions_compare_by_the_components_rules) {
  EXPECT_TRUE(newer_version("PATTERN:48020000", "16.680.00", "16.679.00"));
  EXPECT_TRUE(newer_version("PATTERN:48020000", "1668000", "16.679.00"));
  EXPECT_FALSE(newer_version("PATTERN:48020000", "16.679.00", "16.679.00"));
  EXPECT_TRUE(newer_version("ENGINE:4", "12.600.1010", "12.500.1004"));
  EXPECT_FALSE(newer_version("ENGINE:4", "12.500.1004", "12.600.1010"));
  EXPECT_FALSE(newer_version("ENGINE:4", "garbage", "12.500.1004"));
}

TEST(mirror_freshness, a_newer_upstream_version_is_behind_since_it_was_first_seen) {
  const component_versions v1{{"PATTERN:48020000", "16.679.00"}, {"ENGINE:4", "12.500.1004"}};
  const component_versions v2{{"PATTERN:48020000", "16.680.00"}, {"ENGINE:4", "12.500.1004"}};

  // First sync: served and listed the same.
  auto f = advance_freshness({}, v1, v1, t0);
  ASSERT_EQ(f.size(), 2U);
  EXPECT_FALSE(find(f, "PATTERN:48020000").behind());
  EXPECT_EQ(find(f, "PATTERN:48020000").served_since, t0);
  EXPECT_EQ(find(f, "PATTERN:48020000").behind_for(t0 + 1h), 0s);

  // The upstream lists version 2, but the sync fails after reading it (a full disk).
  f = advance_freshness(f, v1, v2, t0 + 1h);
  const auto& p = find(f, "PATTERN:48020000");
  EXPECT_TRUE(p.behind());
  EXPECT_EQ(p.served, "16.679.00");
  EXPECT_EQ(p.upstream, "16.680.00");
  EXPECT_EQ(p.served_since, t0);
  EXPECT_EQ(p.upstream_since, t0 + 1h);
  EXPECT_EQ(p.behind_for(t0 + 3h), 2h);
  EXPECT_FALSE(find(f, "ENGINE:4").behind());
  EXPECT_EQ(find(f, "ENGINE:4").upstream_since, t0);

  // Next attempt fails before the index (network): what the upstream listed is kept, and when.
  f = advance_freshness(f, v1, std::nullopt, t0 + 2h);
  EXPECT_EQ(find(f, "PATTERN:48020000").upstream_since, t0 + 1h);
  EXPECT_EQ(find(f, "PATTERN:48020000").behind_for(t0 + 4h), 3h);

  // It succeeds: current again, served since now.
  f = advance_freshness(f, v2, v2, t0 + 5h);
  EXPECT_FALSE(find(f, "PATTERN:48020000").behind());
  EXPECT_EQ(find(f, "PATTERN:48020000").served_since, t0 + 5h);
  EXPECT_EQ(find(f, "PATTERN:48020000").upstream_since, t0 + 1h);
  EXPECT_EQ(find(f, "ENGINE:4").served_since, t0);
}

TEST(mirror_freshness, a_component_only_the_upstream_lists_is_behind) {
  const component_versions served{{"PATTERN:4", "16.679.00"}};
  const component_versions listed{{"PATTERN:4", "16.679.00"}, {"ENGINE:4", "12.500.1004"}};
  const auto f = advance_freshness({}, served, listed, t0);
  EXPECT_TRUE(find(f, "ENGINE:4").behind());
  EXPECT_TRUE(find(f, "ENGINE:4").served.empty());
  EXPECT_FALSE(find(f, "ENGINE:4").served_since);
  // Before any index was read, nothing is known of the upstream: not behind.
  const auto unknown = advance_freshness({}, served, std::nullopt, t0);
  EXPECT_FALSE(find(unknown, "PATTERN:4").behind());
  EXPECT_TRUE(find(unknown, "PATTERN:4").upstream.empty());
}

TEST(mirror_freshness, survives_a_restart_in_freshness_json) {
  char pattern[] = "/tmp/lanrelay-freshness.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  std::filesystem::create_directories(dir / "staging");
  const component_versions v1{{"PATTERN:4", "16.679.00"}};
  const component_versions v2{{"PATTERN:4", "16.680.00"}};
  const auto f = advance_freshness(advance_freshness({}, v1, v1, t0), v1, v2, t0 + 1h);
  ASSERT_TRUE(save_freshness(dir, f));
  EXPECT_EQ(load_freshness(dir), f);

  const auto json = to_json(f, t0 + 3h);
  ASSERT_EQ(json.size(), 1U);
  EXPECT_EQ(json.at(0).at("served_age_seconds").as_int64(), 3 * 3600);
  EXPECT_EQ(json.at(0).at("upstream_age_seconds").as_int64(), 2 * 3600);
  EXPECT_TRUE(json.at(0).at("behind").as_bool());
  EXPECT_EQ(json.at(0).at("behind_seconds").as_int64(), 2 * 3600);

  std::filesystem::remove_all(dir);
  EXPECT_TRUE(load_freshness(dir).empty());
}

}  // namespace
}  // namespace lanrelay::relay
