#include "lanrelay/relay/slot_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace lanrelay::relay {
namespace {

TEST(relay_slot_pool, caps_and_counts) {
  slot_pool pool(2);
  auto a = pool.try_acquire();
  auto b = pool.try_acquire();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(pool.active(), 2U);
  EXPECT_FALSE(pool.try_acquire());
  EXPECT_FALSE(pool.try_acquire());
  EXPECT_EQ(pool.refused(), 2U);
  a.reset();
  EXPECT_EQ(pool.active(), 1U);
  auto c = pool.try_acquire();
  ASSERT_TRUE(c);
  EXPECT_EQ(pool.active(), 2U);
  EXPECT_EQ(pool.peak(), 2U);
  EXPECT_EQ(pool.capacity(), 2U);
}

TEST(relay_slot_pool, release_is_idempotent_and_moves_transfer_ownership) {
  slot_pool pool(1);
  auto first = pool.try_acquire();
  ASSERT_TRUE(first);
  slot_pool::slot moved = std::move(*first);
  EXPECT_FALSE(first->held());
  EXPECT_TRUE(moved.held());
  first.reset();
  EXPECT_EQ(pool.active(), 1U);  // the moved-from slot released nothing
  moved.release();
  moved.release();
  EXPECT_EQ(pool.active(), 0U);

  auto x = pool.try_acquire();
  slot_pool::slot holder;
  holder = std::move(*x);
  EXPECT_EQ(pool.active(), 1U);
  holder = slot_pool::slot{};  // move-assigning releases the old slot
  EXPECT_EQ(pool.active(), 0U);
}

TEST(relay_slot_pool, never_exceeds_capacity_under_contention) {
  constexpr std::uint32_t capacity = 3;
  slot_pool pool(capacity);
  std::atomic<std::uint32_t> holders{0};
  std::atomic<bool> exceeded{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20'000; ++i) {
        if (auto slot = pool.try_acquire()) {
          if (holders.fetch_add(1) + 1 > capacity) {
            exceeded = true;
          }
          holders.fetch_sub(1);
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_FALSE(exceeded);
  EXPECT_EQ(pool.active(), 0U);
  EXPECT_LE(pool.peak(), capacity);
  EXPECT_GE(pool.peak(), 1U);
}

}  // namespace
}  // namespace lanrelay::relay
