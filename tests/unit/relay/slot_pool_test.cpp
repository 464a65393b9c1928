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


boost::asio::ip::address addr(const char* text) { return boost::asio::ip::make_address(text); }

TEST(relay_slot_pool, a_client_gets_its_share_and_others_the_rest) {
  slot_pool pool(4, 2);
  slot_pool::refusal why = slot_pool::refusal::none;
  auto a1 = pool.try_acquire(addr("10.0.0.1"), &why);
  auto a2 = pool.try_acquire(addr("10.0.0.1"), &why);
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(why, slot_pool::refusal::none);
  EXPECT_FALSE(pool.try_acquire(addr("10.0.0.1"), &why));
  EXPECT_EQ(why, slot_pool::refusal::client_share);
  // An IPv4-mapped IPv6 peer is the same client.
  EXPECT_FALSE(pool.try_acquire(addr("::ffff:10.0.0.1"), &why));
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 2U);

  auto b1 = pool.try_acquire(addr("10.0.0.2"), &why);
  auto b2 = pool.try_acquire(addr("10.0.0.2"), &why);
  ASSERT_TRUE(b1 && b2);
  // Every slot taken: "busy" wins over the share, for a client with slots or without.
  EXPECT_FALSE(pool.try_acquire(addr("10.0.0.3"), &why));
  EXPECT_EQ(why, slot_pool::refusal::all_busy);
  EXPECT_FALSE(pool.try_acquire(addr("10.0.0.1"), &why));
  EXPECT_EQ(why, slot_pool::refusal::all_busy);
  EXPECT_EQ(pool.refused_client_share(), 2U);
  EXPECT_EQ(pool.refused(), 2U);

  a1.reset();
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 1U);
  EXPECT_TRUE(pool.try_acquire(addr("10.0.0.1")));  // taken and released again at once
  a2.reset();
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 0U);
  EXPECT_EQ(pool.active(), 2U);
}

TEST(relay_slot_pool, without_a_client_address_only_the_global_cap_applies) {
  slot_pool pool(3, 1);
  auto a = pool.try_acquire();
  auto b = pool.try_acquire();
  auto c = pool.try_acquire();
  EXPECT_TRUE(a && b && c);
  EXPECT_FALSE(pool.try_acquire());
  EXPECT_EQ(pool.refused(), 1U);
}

TEST(relay_slot_pool, ipv6_clients_are_grouped_by_prefix) {
  slot_pool per_address(10, 1, 128);
  auto x = per_address.try_acquire(addr("fe80::1"));
  EXPECT_TRUE(x);
  EXPECT_TRUE(per_address.try_acquire(addr("fe80::2")));

  slot_pool per_64(10, 1, 64);
  auto y = per_64.try_acquire(addr("2001:db8:1:2::1"));
  EXPECT_TRUE(y);
  EXPECT_FALSE(per_64.try_acquire(addr("2001:db8:1:2:ffff::9")));  // same /64
  EXPECT_TRUE(per_64.try_acquire(addr("2001:db8:1:3::1")));

  slot_pool per_60(10, 1, 60);  // a prefix that cuts a byte in two
  auto z = per_60.try_acquire(addr("2001:db8:1:20::1"));
  EXPECT_TRUE(z);
  EXPECT_FALSE(per_60.try_acquire(addr("2001:db8:1:2f::1")));
  EXPECT_TRUE(per_60.try_acquire(addr("2001:db8:1:30::1")));
  EXPECT_EQ(per_60.held_by(addr("2001:db8:1:2a::5")), 1U);
}

TEST(relay_slot_pool, a_reloaded_share_applies_to_new_transfers) {
  slot_pool pool(10, 1);
  auto first = pool.try_acquire(addr("10.0.0.1"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(pool.try_acquire(addr("10.0.0.1")));
  pool.set_per_client(2);
  auto second = pool.try_acquire(addr("10.0.0.1"));
  EXPECT_TRUE(second);
  pool.set_per_client(1);
  EXPECT_FALSE(pool.try_acquire(addr("10.0.0.1")));  // running ones keep their slots
  EXPECT_EQ(pool.active(), 2U);
}

TEST(relay_slot_pool, moved_slots_release_their_client_share_once) {
  slot_pool pool(4, 1);
  auto first = pool.try_acquire(addr("10.0.0.1"));
  ASSERT_TRUE(first);
  slot_pool::slot moved = std::move(*first);
  first.reset();
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 1U);
  slot_pool::slot target;
  target = std::move(moved);
  moved.release();
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 1U);
  target.release();
  EXPECT_EQ(pool.held_by(addr("10.0.0.1")), 0U);
  EXPECT_EQ(pool.active(), 0U);
}

}  // namespace
}  // namespace lanrelay::relay
