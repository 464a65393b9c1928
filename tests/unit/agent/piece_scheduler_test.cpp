#include "lanrelay/agent/piece_scheduler.hpp"

#include <gtest/gtest.h>

#include <set>

namespace lanrelay::agent {
namespace {

using clock = piece_scheduler::clock;

piece_bitfield bits(std::size_t count, std::initializer_list<std::size_t> held) {
  piece_bitfield b(count);
  for (const auto i : held) {
    b.set(i);
  }
  return b;
}

TEST(piece_scheduler, takes_the_rarest_piece_first) {
  piece_scheduler s(4, 1);
  const auto relay = s.holder("http://relay/x", true);
  const auto peer = s.holder("http://peer/x", false);
  s.holds_all(relay);
  s.holds(peer, bits(4, {0, 1, 2}));
  // Piece 3 is at the relay alone: it goes first, and from the relay (its only holder).
  const auto now = clock::now();
  const auto first = s.next(now).value();
  EXPECT_EQ(first.piece, 3u);
  EXPECT_EQ(first.holder, relay);
  EXPECT_FALSE(first.endgame);
  // The relay is busy now: the peer serves one of its pieces.
  const auto second = s.next(now).value();
  EXPECT_EQ(second.holder, peer);
  EXPECT_LT(second.piece, 3u);
  // Each holder serves one piece at a time.
  EXPECT_FALSE(s.next(now));
  EXPECT_TRUE(s.finished(first, true));
  EXPECT_TRUE(s.finished(second, true));
  EXPECT_EQ(s.done_count(), 2u);
}

TEST(piece_scheduler, prefers_a_peer_to_the_relay_for_equally_rare_pieces) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    piece_scheduler s(2, seed);
    const auto relay = s.holder("http://relay/x", true);
    const auto peer = s.holder("http://peer/x", false);
    s.holds_all(relay);
    s.holds_all(peer);
    EXPECT_EQ(s.next(clock::now()).value().holder, peer) << seed;
  }
}

TEST(piece_scheduler, endgame_fetches_a_missing_piece_again_from_an_idle_holder) {
  piece_scheduler s(1, 1);
  const auto a = s.holder("http://a/x", false);
  const auto b = s.holder("http://b/x", false);
  s.holds_all(a);
  s.holds_all(b);
  const auto now = clock::now();
  const auto first = s.next(now).value();
  const auto second = s.next(now).value();
  EXPECT_FALSE(first.endgame);
  EXPECT_TRUE(second.endgame);
  EXPECT_NE(first.holder, second.holder);
  EXPECT_EQ(first.piece, second.piece);
  EXPECT_TRUE(s.finished(second, true));
  EXPECT_FALSE(s.finished(first, true));  // the other copy came first
  EXPECT_TRUE(s.complete());
  EXPECT_FALSE(s.next(now));
}

TEST(piece_scheduler, a_dropped_or_paused_holder_is_not_asked) {
  piece_scheduler s(3, 1);
  const auto bad = s.holder("http://bad/x", false);
  const auto slow = s.holder("http://slow/x", false);
  s.holds_all(bad);
  s.holds_all(slow);
  const auto now = clock::now();
  s.drop(bad);
  s.pause(slow, now + std::chrono::seconds(1));
  EXPECT_FALSE(s.next(now));
  EXPECT_TRUE(s.someone_has_a_missing_piece());
  const auto later = s.next(now + std::chrono::seconds(1)).value();
  EXPECT_EQ(later.holder, slow);
  s.finished(later, false);
  EXPECT_EQ(s.done_count(), 0u);
  EXPECT_EQ(s.holder("http://bad/x", false), bad);  // known by its URL: stays dropped
  EXPECT_TRUE(s.dropped(bad));
}

TEST(piece_scheduler, a_refused_piece_is_forgotten_for_that_holder) {
  piece_scheduler s(2, 1);
  const auto peer = s.holder("http://peer/x", false);
  s.holds(peer, bits(2, {1}));
  const auto now = clock::now();
  const auto a = s.next(now).value();
  EXPECT_EQ(a.piece, 1u);
  s.refused(peer, 1);
  s.finished(a, false);
  EXPECT_EQ(s.known_pieces(peer), 0u);
  EXPECT_FALSE(s.next(now));
  EXPECT_FALSE(s.someone_has_a_missing_piece());
}

TEST(piece_scheduler, pieces_spread_over_agents_that_start_together) {
  // Ten agents, each knowing only the relay, start at the same moment: rarest-first with random
  // ties sends them to different pieces, not all to piece 0.
  std::set<std::size_t> first_pieces;
  for (std::uint64_t agent = 0; agent < 10; ++agent) {
    piece_scheduler s(16, agent + 100);
    s.holds_all(s.holder("http://relay/x", true));
    first_pieces.insert(s.next(clock::now()).value().piece);
  }
  EXPECT_GT(first_pieces.size(), 3u);
}

}  // namespace
}  // namespace lanrelay::agent
