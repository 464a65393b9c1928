#include "lanrelay/base/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lanrelay::metrics {
namespace {

TEST(metrics_registry, renders_help_type_and_value_of_each_family_sorted_by_name) {
  registry r;
  auto& requests = r.add_counter("lanrelay_requests_total", "Request heads handled.");
  auto& running = r.add_gauge("lanrelay_transfers_running", "Transfers sending bytes now.");
  requests.increment();
  requests.increment(41);
  running.set(3);
  EXPECT_EQ(r.render(),
            "# HELP lanrelay_requests_total Request heads handled.\n"
            "# TYPE lanrelay_requests_total counter\n"
            "lanrelay_requests_total 42\n"
            "# HELP lanrelay_transfers_running Transfers sending bytes now.\n"
            "# TYPE lanrelay_transfers_running gauge\n"
            "lanrelay_transfers_running 3\n");
}

TEST(metrics_registry, labelled_family_children_are_created_on_use_and_sorted) {
  registry r;
  auto& dropped = r.add_counter_family("drops_total", "Dropped queries.", {"reason"});
  dropped.with({"rate_limited"}).increment(2);
  dropped.with({"malformed"}).increment();
  dropped.with({"rate_limited"}).increment();
  EXPECT_EQ(r.render(),
            "# HELP drops_total Dropped queries.\n"
            "# TYPE drops_total counter\n"
            "drops_total{reason=\"malformed\"} 1\n"
            "drops_total{reason=\"rate_limited\"} 3\n");
  dropped.remove({"malformed"});
  EXPECT_EQ(r.render().find("malformed"), std::string::npos);
  EXPECT_THROW(dropped.with({"a", "b"}), std::invalid_argument);
}

TEST(metrics_registry, label_values_and_help_are_escaped) {
  registry r;
  auto& up = r.add_gauge_family("proxy_up", "Proxy health \\ 1 = up\nsecond line", {"proxy", "site"});
  up.with({"http://a\"b\\c", "line\nbreak"}).set(1);
  EXPECT_EQ(r.render(),
            "# HELP proxy_up Proxy health \\\\ 1 = up\\nsecond line\n"
            "# TYPE proxy_up gauge\n"
            "proxy_up{proxy=\"http://a\\\"b\\\\c\",site=\"line\\nbreak\"} 1\n");
}

TEST(metrics_registry, collectors_are_read_at_every_render) {
  registry r;
  std::uint64_t source = 5;
  r.add_collector("cache_items", "Items in the cache.", metric_type::gauge, {},
                  [&] { return std::vector<sample>{{{}, static_cast<double>(source)}}; });
  r.add_collector("mirror_syncs_total", "Syncs by result.", metric_type::counter,
                  {"source", "result"}, [] {
                    return std::vector<sample>{{{"b", "ok"}, 2}, {{"a", "error"}, 1}};
                  });
  EXPECT_NE(r.render().find("cache_items 5\n"), std::string::npos);
  source = 6;
  const auto text = r.render();
  EXPECT_NE(text.find("cache_items 6\n"), std::string::npos);
  const auto a = text.find("mirror_syncs_total{source=\"a\",result=\"error\"} 1\n");
  const auto b = text.find("mirror_syncs_total{source=\"b\",result=\"ok\"} 2\n");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_LT(a, b);
  EXPECT_LT(text.find("cache_items"), text.find("mirror_syncs_total"));
}

TEST(metrics_registry, a_collector_sample_with_the_wrong_labels_is_refused) {
  registry r;
  r.add_collector("x", "x", metric_type::gauge, {"a"},
                  [] { return std::vector<sample>{{{}, 1}}; });
  EXPECT_THROW(r.render(), std::invalid_argument);
}

TEST(metrics_registry, bad_and_duplicate_names_are_refused) {
  registry r;
  r.add_counter("ok_total", "fine");
  EXPECT_THROW(r.add_counter("ok_total", "again"), std::invalid_argument);
  EXPECT_THROW(r.add_gauge("1st", "digit first"), std::invalid_argument);
  EXPECT_THROW(r.add_gauge("has-dash", "dash"), std::invalid_argument);
  EXPECT_THROW(r.add_gauge("", "empty"), std::invalid_argument);
  EXPECT_THROW(r.add_counter_family("f", "h", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.add_counter_family("g", "h", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(r.add_counter_family("h", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.add_collector("i", "h", metric_type::gauge, {}, nullptr), std::invalid_argument);
  EXPECT_TRUE(is_valid_metric_name("ns:sub_name_2"));
  EXPECT_FALSE(is_valid_label_name("ns:sub"));
}

TEST(metrics_format, values_use_prometheus_spelling) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(1234567), "1234567");
  EXPECT_EQ(format_value(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(-3.5), "-3.5");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(format_value(1e300)), 1e300);
}

TEST(metrics_registry, counters_count_exactly_from_many_threads) {
  registry r;
  auto& c = r.add_counter("hits_total", "hits");
  auto& g = r.add_gauge("level", "level");
  auto& f = r.add_counter_family("by_thread_total", "by thread", {"t"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto& mine = f.with({std::to_string(t % 2)});
      for (int i = 0; i < 10'000; ++i) {
        c.increment();
        g.add(1);
        mine.increment();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(c.value(), 40'000U);
  EXPECT_EQ(g.value(), 40'000.0);
  const auto text = r.render();
  EXPECT_NE(text.find("by_thread_total{t=\"0\"} 20000\n"), std::string::npos);
  EXPECT_NE(text.find("by_thread_total{t=\"1\"} 20000\n"), std::string::npos);
}

}  // namespace
}  // namespace lanrelay::metrics
