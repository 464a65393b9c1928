#include "lanrelay/proxyhelper/monitor.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace lanrelay::proxyhelper {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

reachability passed(std::chrono::milliseconds elapsed) {
  reachability r;
  r.reachable = true;
  r.status = 200;
  r.elapsed = elapsed;
  return r;
}

reachability refused() {
  reachability r;
  r.error = boost::system::errc::make_error_code(boost::system::errc::connection_refused);
  return r;
}

TEST(proxy_health, history_keeps_the_last_checks_and_counts_every_one) {
  proxy_health health({{"http://10.77.0.9:3128", 10, false, {}}});
  const auto t0 = std::chrono::system_clock::time_point{} + 1'000'000s;
  for (std::size_t i = 0; i < proxy_health::history_size + 5; ++i) {
    health.record(0, i % 2 == 0 ? passed(12ms) : refused(), t0 + i * 1s);
  }
  const auto s = health.snapshot().at(0);
  ASSERT_EQ(s.history.size(), proxy_health::history_size);
  EXPECT_EQ(s.history.front().at, t0 + 5s);  // the five oldest were dropped
  EXPECT_EQ(s.history.back().at, t0 + (proxy_health::history_size + 4) * 1s);
  EXPECT_EQ(s.checks_passed + s.checks_failed, proxy_health::history_size + 5);
  EXPECT_EQ(s.checks_passed, 28u);
  ASSERT_TRUE(s.last_healthy);
  EXPECT_EQ(*s.last_healthy, t0 + (proxy_health::history_size + 4) * 1s);
}

TEST(proxy_health, a_reloaded_list_keeps_the_state_of_proxies_that_stay) {
  proxy_health health({{"http://a:3128", 10, false, {}}, {"http://b:3128", 20, false, {}}});
  health.record(0, passed(5ms));
  health.record(1, passed(5ms));
  health.replace({{"http://c:3128", 1, false, {}}, {"http://a:3128", 30, true, {"*.corp"}}});
  const auto s = health.snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_FALSE(s[0].checked);  // new: not advertised before its first check
  EXPECT_TRUE(s[1].healthy);
  EXPECT_EQ(s[1].spec.priority, 30);
  EXPECT_EQ(s[1].history.size(), 1u);
  const auto healthy = health.healthy();
  ASSERT_EQ(healthy.size(), 1u);
  EXPECT_EQ(healthy[0].url, "http://a:3128");
  EXPECT_TRUE(healthy[0].needs_credentials);
  // A check of a proxy that was removed meanwhile records nothing.
  EXPECT_FALSE(health.record("http://b:3128", refused()));
  EXPECT_EQ(health.size(), 2u);
}

TEST(proxyhelper_config, changed_settings_name_what_differs_and_what_needs_a_restart) {
  proxyhelper_config a;
  proxyhelper_config b = a;
  EXPECT_TRUE(changed_settings(a, b).empty());
  b.http_port = 8080;
  b.rate_limit = 5;
  b.proxies.push_back({"http://p:3128", 10, false, {}});
  EXPECT_EQ(changed_settings(a, b),
            (std::vector<std::string>{"query.rate_limit", "http.port", "proxy"}));
  EXPECT_TRUE(needs_restart("http.port"));
  EXPECT_FALSE(needs_restart("query.rate_limit"));
  EXPECT_FALSE(needs_restart("proxy"));
}

// The reload decision from proxyhelperd's settings table: sockets, files and the key keep their
// running values; the proxy list, query limits and log level go through the daemon's hooks.
TEST(proxyhelper_config, a_reload_applies_reloadable_settings_through_hooks_and_keeps_the_rest) {
  struct hooks_log : reload_hooks {
    std::vector<std::string> calls;
    std::optional<std::string> set_log_level(const std::string& level) override {
      calls.push_back("log=" + level);
      return std::nullopt;
    }
    std::optional<std::string> set_query_limits(std::uint32_t rate, std::uint32_t,
                                                std::chrono::seconds lifetime) override {
      calls.push_back("query=" + std::to_string(rate) + "/" + std::to_string(lifetime.count()));
      return std::nullopt;
    }
    std::optional<std::string> set_proxies(const std::vector<proxy_spec>& proxies) override {
      calls.push_back("proxies=" + std::to_string(proxies.size()));
      return std::nullopt;
    }
  };
  proxyhelper_config running;
  proxyhelper_config next = running;
  next.http_port = 8080;
  next.https.port = 8443;
  next.rate_limit = 5;
  next.answer_lifetime = std::chrono::seconds(60);
  next.check_interval = std::chrono::seconds(5);
  next.log_level = "debug";
  next.proxies.push_back({"http://p:3128", 10, false, {}});
  auto plan = plan_reload(running, next);
  EXPECT_EQ(plan.applied, (std::vector<std::string>{"query.rate_limit", "query.answer_lifetime",
                                                     "health.interval", "log.level", "proxy"}));
  EXPECT_EQ(plan.need_restart, (std::vector<std::string>{"http.port", "https.port"}));
  EXPECT_EQ(next.http_port, running.http_port);
  EXPECT_EQ(next.https.port, running.https.port);
  hooks_log hooks;
  EXPECT_TRUE(run_reload_hooks(plan, running, next, hooks).empty());
  // query.rate_limit and query.answer_lifetime share one hook; it runs for each.
  EXPECT_EQ(hooks.calls, (std::vector<std::string>{"query=5/60", "query=5/60", "log=debug",
                                                    "proxies=1"}));
}

TEST(query_log, keeps_the_newest_first_and_at_most_its_size) {
  query_log log;
  const auto t0 = std::chrono::system_clock::now();
  for (std::size_t i = 0; i < query_log::max_records + 3; ++i) {
    log.add({t0 + i * 1s, "10.77.0." + std::to_string(i), "answered", {}});
  }
  const auto recent = log.recent();
  ASSERT_EQ(recent.size(), query_log::max_records);
  EXPECT_EQ(recent.front().client, "10.77.0." + std::to_string(query_log::max_records + 2));
  EXPECT_EQ(recent.back().client, "10.77.0.3");
}

class monitor_test : public testing::Test {
 protected:
  monitor_test()
      : health_({{"http://10.77.0.9:3128", 10, false, {}},
                 {"http://proxy.corp.example:8080", 20, true, {}}}),
        sources_{counters_, health_, queries_, "lanrelay-ed25519:key", t0_} {
    register_metrics(registry_, sources_);
  }

  const std::chrono::system_clock::time_point t0_ = std::chrono::system_clock::now() - 90s;
  proxyhelper_counters counters_;
  proxy_health health_;
  query_log queries_;
  monitor_sources sources_;
  metrics::registry registry_;
};

TEST_F(monitor_test, metrics_follow_counters_and_health) {
  counters_.queries += 3;
  counters_.answers_sent += 2;
  counters_.no_healthy_proxy += 1;
  counters_.malformed += 4;
  health_.record(0, passed(25ms));
  health_.record(1, refused());
  const auto text = registry_.render();
  EXPECT_NE(text.find("lanrelay_proxy_queries_received_total 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lanrelay_proxy_queries_answered_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("lanrelay_proxy_queries_dropped_total{reason=\"no_healthy_proxy\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("lanrelay_proxy_healthy{proxy=\"http://10.77.0.9:3128\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("lanrelay_proxy_healthy{proxy=\"http://proxy.corp.example:8080\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("lanrelay_proxy_check_duration_seconds{proxy=\"http://10.77.0.9:3128\"} 0.025\n"),
            std::string::npos);
  // Never healthy: no age sample at all rather than a made-up one.
  EXPECT_EQ(text.find("lanrelay_proxy_last_healthy_age_seconds{proxy=\"http://proxy.corp.example:8080\"}"),
            std::string::npos);
  EXPECT_NE(text.find("lanrelay_proxy_health_checks_total{proxy=\"http://proxy.corp.example:8080\","
                      "result=\"failed\"} 1\n"),
            std::string::npos);
}

TEST_F(monitor_test, status_json_and_page_show_proxies_and_queries_escaped) {
  health_.record(0, passed(25ms));
  queries_.add({t0_ + 10s, "10.77.0.4", "answered", {"http://10.77.0.9:3128"}});
  queries_.add({t0_ + 20s, "<script>", "rate limited", {}});
  const auto now = t0_ + 90s;
  const auto status = json::parse(status_json(sources_, now)).as_object();
  EXPECT_EQ(status.at("uptime_seconds").to_number<int>(), 90);
  EXPECT_EQ(status.at("recent_queries").at(0).at("outcome").as_string(), "rate limited");
  EXPECT_EQ(status.at("recent_queries").at(1).at("proxies").at(0).as_string(),
            "http://10.77.0.9:3128");
  EXPECT_EQ(status.at("proxies").at(0).at("state").as_string(), "healthy");
  EXPECT_EQ(status.at("proxies").at(1).at("state").as_string(), "not checked yet");
  EXPECT_TRUE(status.at("proxies").at(1).at("last_healthy").is_null());

  const auto page = status_page(sources_, now);
  EXPECT_NE(page.find("1 of 2"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(page.find("lanrelay-ed25519:key"), std::string::npos);
}

}  // namespace
}  // namespace lanrelay::proxyhelper
