// The reload decision of the settings table (detail/settings_toml.hpp): "reloadable" and the
// apply hook are properties of each setting; plan_reload sorts changed settings into applied and
// need_restart and puts the running value of the latter back; run_reload_hooks calls each
// applied setting's hook and keeps the running value when a hook refuses.

#include "lanrelay/base/detail/settings_toml.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace lanrelay::settings {
namespace {

using namespace std::chrono_literals;
using testing::ElementsAre;
using testing::IsEmpty;

struct item {
  std::string name;
  bool operator==(const item&) const = default;
};

struct toy_config {
  std::uint16_t port = 80;                       // restart
  std::uint32_t limit = 10;                      // live, hook
  std::chrono::milliseconds window{500};         // live, no hook
  std::string level = "info";                    // live, hook that may refuse
  std::vector<item> items;                       // live list, hook
};

struct toy_hooks : live_hooks {
  std::vector<std::string> calls;
  bool refuse_level = false;
};

const table<toy_config>& toy_table() {
  static const table<toy_config> t{
      {
          integer_setting<std::uint16_t, toy_config>("net", "port", "Port.", 0, 65535,
                                                     [](toy_config& c) -> auto& { return c.port; }),
          live<toy_hooks>(integer_setting<std::uint32_t, toy_config>(
                              "net", "limit", "Limit.", 1, 100,
                              [](toy_config& c) -> auto& { return c.limit; }),
                          [](toy_hooks& h, const toy_config& next) -> apply_result {
                            h.calls.push_back("limit=" + std::to_string(next.limit));
                            return std::nullopt;
                          }),
          live<toy_hooks>(duration_setting<std::chrono::milliseconds, toy_config>(
              "net", "window", "Window.", 1ms, 1h, [](toy_config& c) -> auto& { return c.window; })),
          live<toy_hooks>(string_setting<toy_config>("log", "level", setting_type::log_level,
                                                     "Level.",
                                                     [](toy_config& c) -> auto& { return c.level; }),
                          [](toy_hooks& h, const toy_config& next) -> apply_result {
                            if (h.refuse_level) {
                              return "refused";
                            }
                            h.calls.push_back("level=" + next.level);
                            return std::nullopt;
                          }),
      },
      {
          make_list_reader(list_of_tables<toy_config, item>{
              {"item"},
              "An item.",
              {required(string_setting<item>("", "name", setting_type::text, "Name.",
                                             [](item& i) -> auto& { return i.name; }))},
              [](toy_config& c) -> auto& { return c.items; },
              {},
              item{"example"},
              true,
              [](live_hooks& h, const toy_config& next) -> apply_result {
                static_cast<toy_hooks&>(h).calls.push_back("items=" +
                                                           std::to_string(next.items.size()));
                return std::nullopt;
              },
          }),
      }};
  return t;
}

toy_config parsed(std::string_view text) {
  toy_config c;
  const auto problems = parse(toy_table(), c, text, "toy.toml");
  EXPECT_THAT(problems, IsEmpty());
  return c;
}

TEST(settings_reload, nothing_changed_plans_nothing) {
  const auto running = parsed("");
  auto next = parsed("[net]\nport = 80\n");
  const auto plan = plan_reload(toy_table(), running, next);
  EXPECT_FALSE(plan.changed());
}

TEST(settings_reload, reloadable_settings_apply_and_the_rest_keep_their_running_value) {
  const auto running = parsed("");
  auto next = parsed("[net]\nport = 8080\nlimit = 20\nwindow = \"2s\"\n[[item]]\nname = \"a\"\n");
  auto plan = plan_reload(toy_table(), running, next);
  EXPECT_THAT(plan.applied, ElementsAre("net.limit", "net.window", "item"));
  EXPECT_THAT(plan.need_restart, ElementsAre("net.port"));
  EXPECT_EQ(next.port, 80);  // put back: what runs until a restart
  EXPECT_EQ(next.limit, 20u);
  EXPECT_EQ(next.window, 2s);

  toy_hooks hooks;
  const auto problems = run_reload_hooks(toy_table(), plan, running, next, hooks);
  EXPECT_THAT(problems, IsEmpty());
  // Each applied setting's hook once, in table order; a setting without a hook needs none.
  EXPECT_THAT(hooks.calls, ElementsAre("limit=20", "items=1"));
  EXPECT_THAT(plan.applied, ElementsAre("net.limit", "net.window", "item"));
}

TEST(settings_reload, a_refusing_hook_keeps_the_running_value_and_asks_for_a_restart) {
  const auto running = parsed("");
  auto next = parsed("[net]\nlimit = 30\n[log]\nlevel = \"debug\"\n");
  auto plan = plan_reload(toy_table(), running, next);
  EXPECT_THAT(plan.applied, ElementsAre("net.limit", "log.level"));
  toy_hooks hooks;
  hooks.refuse_level = true;
  const auto problems = run_reload_hooks(toy_table(), plan, running, next, hooks);
  EXPECT_THAT(problems, ElementsAre("log.level: refused"));
  EXPECT_THAT(plan.applied, ElementsAre("net.limit"));
  EXPECT_THAT(plan.need_restart, ElementsAre("log.level"));
  EXPECT_EQ(next.level, "info");
  EXPECT_EQ(next.limit, 30u);
}

TEST(settings_reload, reloadable_is_read_from_the_table) {
  EXPECT_FALSE(is_reloadable(toy_table(), "net.port"));
  EXPECT_TRUE(is_reloadable(toy_table(), "net.limit"));
  EXPECT_TRUE(is_reloadable(toy_table(), "item"));
  EXPECT_FALSE(is_reloadable(toy_table(), "net.nonsense"));
}

TEST(settings_reload, changed_names_scalars_then_lists) {
  const auto a = parsed("");
  const auto b = parsed("[[item]]\nname = \"x\"\n[net]\nport = 1\n");
  EXPECT_THAT(changed(toy_table(), a, b), ElementsAre("net.port", "item"));
}

}  // namespace
}  // namespace lanrelay::settings
