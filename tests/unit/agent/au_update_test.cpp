// The update decision of `lanrelay update` (plan_update) and its record of local versions.

#include "lanrelay/agent/au_update.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

namespace lanrelay::agent {
namespace {

namespace fs = std::filesystem;
namespace au = activeupdate;

constexpr std::string_view index_text =
    "[Server]\r\n"
    "Server.1=http://au.example.com/activeupdate\r\n"
    "[PATTERN]\r\n"
    "P.48020000=pattern/icrc/ioth1668000.zip,1668000,2600000\r\n"
    "P.48020000.Merge.1=pattern/icrc/ioth_1667800.1668000,1667800,420000\r\n"
    "P.48020000.Merge.2=pattern/icrc/ioth_1667900.1668000,1667900,330000\r\n"
    "P.48020000.Merge.3=pattern/icrc/ioth_oddname,1667950,1000\r\n"
    "P.4=pattern/vsapi/lpt$vpn.679,1667905,1200000\r\n"
    "[ENGINE]\r\n"
    "E.4=VSAPI32_NT_I386,engine/engv_nt386_v12500-1004.zip,12.500.1004,1350445,6.510.1002\r\n";

au::index parsed() {
  auto index = au::parse(index_text);
  EXPECT_TRUE(index) << index.error().to_string();
  return *index;
}

local_versions with(std::initializer_list<std::pair<std::string, std::string>> versions) {
  local_versions out;
  for (const auto& [name, version] : versions) {
    out.components[name] = installed_component{version, {}};
  }
  return out;
}

const planned_component& find(const update_plan& plan, std::string_view name) {
  for (const auto& c : plan.components) {
    if (c.name == name) {
      return c;
    }
  }
  ADD_FAILURE() << name << " not planned";
  static const planned_component none;
  return none;
}

TEST(au_update_plan, nothing_local_takes_every_full_file) {
  const auto plan = plan_update(parsed(), {}, {});
  ASSERT_EQ(plan.components.size(), 3U);
  EXPECT_TRUE(plan.unknown.empty());
  const auto& icrc = find(plan, "P.48020000");
  EXPECT_EQ(icrc.action, au_action::full);
  EXPECT_FALSE(icrc.from);
  EXPECT_EQ(icrc.to, "1668000");
  EXPECT_EQ(icrc.path, "pattern/icrc/ioth1668000.zip");
  EXPECT_EQ(icrc.size, 2'600'000U);
  EXPECT_EQ(find(plan, "P.4").path, "pattern/vsapi/lpt$vpn.679");
  const auto& engine = find(plan, "E.4");
  EXPECT_EQ(engine.action, au_action::full);
  EXPECT_EQ(engine.to, "12.500.1004");
  EXPECT_EQ(engine.size, 1'350'445U);
}

TEST(au_update_plan, the_diff_from_the_local_version_is_chosen) {
  const auto plan = plan_update(parsed(), with({{"P.48020000", "1667900"}}), {"P.48020000"});
  ASSERT_EQ(plan.components.size(), 1U);
  const auto& icrc = plan.components[0];
  EXPECT_EQ(icrc.action, au_action::diff);
  EXPECT_EQ(icrc.from, "1667900");
  EXPECT_EQ(icrc.path, "pattern/icrc/ioth_1667900.1668000");
  EXPECT_EQ(icrc.size, 330'000U);
}

TEST(au_update_plan, no_matching_diff_takes_the_full_file) {
  // 1667700 has no diff; 1667950's diff does not name where it leads, so it is never chosen.
  for (const auto* local : {"1667700", "1667950", "not a version"}) {
    const auto plan = plan_update(parsed(), with({{"P.48020000", local}}), {"48020000"});
    ASSERT_EQ(plan.components.size(), 1U);
    EXPECT_EQ(plan.components[0].action, au_action::full) << local;
    EXPECT_EQ(plan.components[0].path, "pattern/icrc/ioth1668000.zip") << local;
  }
}

TEST(au_update_plan, current_or_newer_versions_take_nothing) {
  const auto plan = plan_update(
      parsed(),
      with({{"P.48020000", "1668000"}, {"P.4", "1667999"}, {"E.4", "12.500.1004"}}), {});
  ASSERT_EQ(plan.components.size(), 3U);
  for (const auto& c : plan.components) {
    EXPECT_EQ(c.action, au_action::current) << c.name;
    EXPECT_TRUE(c.path.empty()) << c.name;
  }
}

TEST(au_update_plan, an_older_engine_is_replaced) {
  const auto plan = plan_update(parsed(), with({{"E.4", "12.400.1000"}}), {"E.4"});
  ASSERT_EQ(plan.components.size(), 1U);
  EXPECT_EQ(plan.components[0].action, au_action::full);
  EXPECT_EQ(plan.components[0].from, "12.400.1000");
}

TEST(au_update_plan, bare_ids_select_patterns_and_engines_alike) {
  const auto plan = plan_update(parsed(), {}, {"4"});
  ASSERT_EQ(plan.components.size(), 2U);
  EXPECT_EQ(plan.components[0].name, "P.4");
  EXPECT_EQ(plan.components[1].name, "E.4");
  EXPECT_EQ(plan_update(parsed(), {}, {"p.4"}).components.size(), 1U);
}

TEST(au_update_plan, unknown_components_are_reported) {
  const auto plan = plan_update(parsed(), {}, {"P.4", "P.999", "E.7"});
  EXPECT_EQ(plan.components.size(), 1U);
  EXPECT_EQ(plan.unknown, (std::vector<std::string>{"P.999", "E.7"}));
}

class au_local_versions : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-au-versions.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(au_local_versions, round_trip_and_missing_file) {
  const auto empty = read_local_versions(dir_);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->components.empty());

  local_versions v;
  v.components["P.48020000"] = {"1668000", {"pattern/icrc/ioth1668000.zip",
                                            "pattern/icrc/ioth1668000.sig"}};
  v.components["E.4"] = {"12.500.1004", {"engine/engv.zip"}};
  ASSERT_TRUE(write_local_versions(dir_, v));
  const auto back = read_local_versions(dir_);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->components.size(), 2U);
  EXPECT_EQ(back->components.at("P.48020000").version, "1668000");
  EXPECT_EQ(back->components.at("P.48020000").files, v.components["P.48020000"].files);
  EXPECT_FALSE(fs::exists(dir_ / ".lanrelay-versions.json.tmp"));
}

TEST_F(au_local_versions, corrupt_record_is_an_error) {
  for (const auto* text : {"{", "[]", "{\"components\": {\"P.4\": {\"version\": 4}}}"}) {
    std::ofstream(dir_ / versions_file_name) << text;
    const auto read = read_local_versions(dir_);
    ASSERT_FALSE(read) << text;
    EXPECT_EQ(read.error(), make_error_code(errc::corrupt_index));
  }
}

}  // namespace
}  // namespace lanrelay::agent
