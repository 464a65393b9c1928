// Running transfers, peer totals and the 24-hour traffic history behind the status page.

#include "lanrelay/relay/activity.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace lanrelay::relay {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

TEST(status_transfers, running_transfers_show_their_bytes_and_end_into_peer_totals) {
  transfer_registry r;
  {
    auto a = r.begin("10.0.0.5", "/cache/file/a/1", 0, 1000);
    auto b = r.begin("10.0.0.6", "/cache/file/b/1", 100, 50);
    a.add_bytes(400);
    b.add_bytes(50);
    const auto running = r.running();
    ASSERT_EQ(running.size(), 2U);
    EXPECT_EQ(running[0].client, "10.0.0.5");
    EXPECT_EQ(running[0].item, "/cache/file/a/1");
    EXPECT_EQ(running[0].bytes_sent, 400U);
    EXPECT_EQ(running[0].length, 1000U);
    EXPECT_EQ(running[1].offset, 100U);
    // Running transfers count in the top peers already.
    const auto top = r.top_peers(10);
    ASSERT_EQ(top.size(), 2U);
    EXPECT_EQ(top[0].client, "10.0.0.5");
    EXPECT_EQ(top[0].bytes, 400U);

    auto moved = std::move(b);  // the moved-from handle must not end the transfer twice
    EXPECT_EQ(r.running().size(), 2U);
  }
  EXPECT_TRUE(r.running().empty());
  auto again = r.begin("10.0.0.6", "/cache/file/b/1", 0, 500);
  again.add_bytes(500);
  again = transfer_registry::handle{};
  const auto top = r.top_peers(1);
  ASSERT_EQ(top.size(), 1U);
  EXPECT_EQ(top[0].client, "10.0.0.6");
  EXPECT_EQ(top[0].bytes, 550U);
  EXPECT_EQ(top[0].transfers, 2U);
}

TEST(status_transfers, the_client_served_least_is_forgotten_beyond_the_limit) {
  transfer_registry r;
  for (std::size_t i = 0; i <= transfer_registry::max_clients; ++i) {
    auto h = r.begin("client-" + std::to_string(i), "/x", 0, 10);
    h.add_bytes(i == 0 ? 1 : 1000 + i);
  }
  const auto all = r.top_peers(transfer_registry::max_clients + 10);
  EXPECT_EQ(all.size(), transfer_registry::max_clients);
  for (const auto& p : all) {
    EXPECT_NE(p.client, "client-0");
  }
  EXPECT_EQ(all.front().client, "client-" + std::to_string(transfer_registry::max_clients));
}

// Connections begin, feed and end transfers on their threads while status requests read.
TEST(status_transfers, readers_and_transfers_on_many_threads) {
  transfer_registry r;
  traffic_history h;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> total{0};
  std::thread reader([&] {
    while (!done.load()) {
      for (const auto& t : r.running()) {
        EXPECT_LE(t.bytes_sent, t.length);
      }
      (void)r.top_peers(10);
      h.record(clock_type::now(), total.load(), 0);
      (void)h.series(clock_type::now(), total.load(), 0);
    }
  });
  std::vector<std::thread> connections;
  for (int c = 0; c < 4; ++c) {
    connections.emplace_back([&, c] {
      for (int i = 0; i < 2000; ++i) {
        auto t = r.begin("10.0.0." + std::to_string(c), "/cache/file/x/1", 0, 100);
        t.add_bytes(60);
        t.add_bytes(40);
        total.fetch_add(100);
      }
    });
  }
  for (auto& t : connections) {
    t.join();
  }
  done = true;
  reader.join();
  EXPECT_TRUE(r.running().empty());
  const auto peers = r.top_peers(10);
  ASSERT_EQ(peers.size(), 4U);
  for (const auto& p : peers) {
    EXPECT_EQ(p.bytes, 200'000U);
    EXPECT_EQ(p.transfers, 2000U);
  }
}

TEST(status_traffic, growth_lands_in_the_bucket_of_its_record) {
  traffic_history h;
  // A bucket boundary: 2026-01-01T00:00:00Z is a multiple of 5 minutes.
  const clock_type::time_point t0{std::chrono::seconds(1767225600)};
  h.record(t0, 1000, 0);  // the first record only sets the baseline
  h.record(t0 + 1min, 1500, 100);
  h.record(t0 + 4min, 1700, 100);
  h.record(t0 + 6min, 2700, 300);

  const auto s = h.series(t0 + 6min, 2900, 300);
  ASSERT_EQ(s.size(), traffic_history::bucket_count);
  EXPECT_EQ(s.back().start, t0 + 5min);
  EXPECT_EQ(s.back().served, 1000U + 200U);  // recorded, plus what record() has not seen yet
  EXPECT_EQ(s.back().upstream, 200U);
  EXPECT_EQ(s[s.size() - 2].start, t0);
  EXPECT_EQ(s[s.size() - 2].served, 700U);
  EXPECT_EQ(s[s.size() - 2].upstream, 100U);
  EXPECT_EQ(s.front().start, t0 + 5min - (traffic_history::bucket_count - 1) * 5min);
  EXPECT_EQ(s.front().served, 0U);
}

TEST(status_traffic, buckets_older_than_a_day_are_dropped) {
  traffic_history h;
  const clock_type::time_point t0{std::chrono::seconds(1767225600)};
  h.record(t0, 0, 0);
  h.record(t0 + 1min, 500, 0);
  const auto same_day = h.series(t0 + 23h, 500, 0);
  EXPECT_EQ(same_day[same_day.size() - 1 - 23 * 12].served, 500U);
  // One day later the ring slot is reused: the old value must not show up again.
  h.record(t0 + 24h + 1min, 600, 0);
  const auto next_day = h.series(t0 + 24h + 1min, 600, 0);
  EXPECT_EQ(next_day.back().served, 100U);
  std::uint64_t total = 0;
  for (const auto& p : next_day) {
    total += p.served;
  }
  EXPECT_EQ(total, 100U);
}

}  // namespace
}  // namespace lanrelay::relay
