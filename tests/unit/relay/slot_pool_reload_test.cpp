// A reload changes the peer cap of a running slot pool: transfers holding slots keep them, and a
// lower cap refuses newcomers until enough have ended.

#include "lanrelay/relay/slot_pool.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace lanrelay::relay {
namespace {

TEST(slot_pool_reload, lower_cap_keeps_running_slots_and_refuses_newcomers) {
  slot_pool pool(3);
  std::vector<slot_pool::slot> running;
  for (int i = 0; i < 3; ++i) {
    auto s = pool.try_acquire();
    ASSERT_TRUE(s);
    running.push_back(std::move(*s));
  }
  pool.set_capacity(1);
  EXPECT_EQ(pool.capacity(), 1U);
  EXPECT_EQ(pool.active(), 3U);
  EXPECT_EQ(pool.available(), 0U);  // not 1 - 3 wrapped around
  EXPECT_FALSE(pool.try_acquire());

  running.pop_back();
  running.pop_back();
  EXPECT_FALSE(pool.try_acquire());  // one still runs: the cap of 1 is taken
  running.clear();
  EXPECT_EQ(pool.available(), 1U);
  auto next = pool.try_acquire();
  EXPECT_TRUE(next);
  EXPECT_EQ(pool.refused(), 2U);
}

TEST(slot_pool_reload, higher_cap_admits_more_at_once) {
  slot_pool pool(1);
  auto first = pool.try_acquire();
  ASSERT_TRUE(first);
  EXPECT_FALSE(pool.try_acquire());
  pool.set_capacity(3);
  auto second = pool.try_acquire();
  auto third = pool.try_acquire();
  EXPECT_TRUE(second && third);
  EXPECT_FALSE(pool.try_acquire());
  EXPECT_EQ(pool.peak(), 3U);
}

}  // namespace
}  // namespace lanrelay::relay
