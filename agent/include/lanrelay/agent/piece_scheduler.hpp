#pragma once

// Which piece to fetch next, from which holder, when an agent swarms an item (fetch.hpp): the
// pure bookkeeping, no sockets, so that tests drive it directly.
//
// Rules, in order:
//  - A holder is asked for one piece at a time (so one agent never takes more than one of a
//    holder's transfer slots), not before the time a 503 or a failure paused it until, and never
//    again once dropped (it sent a bad piece).
//  - Rarest first: among the pieces still missing and not being fetched, the one the fewest known
//    holders have (ties at random), so that pieces spread over the segment instead of every
//    agent taking the same ones from the relay.
//  - Among holders that offer such a piece, a peer before the relay: the relay's uplink is the
//    one every agent shares.
//  - Endgame: when every missing piece is being fetched already, an idle holder that has one of
//    them fetches it again (the piece fetched by the fewest so far); the first verified copy wins.
//
// Thread safety: none; one fetch uses it from its own coroutines on one thread.

#include "lanrelay/content/partial_items.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

class piece_scheduler {
 public:
  using clock = std::chrono::steady_clock;

  struct assignment {
    std::size_t holder = 0;
    std::size_t piece = 0;
    bool endgame = false;  // the piece is being fetched from another holder as well
  };

  piece_scheduler(std::size_t piece_count, std::uint64_t seed);

  // The holder serving `url` (added when new, knowing no pieces yet).
  std::size_t holder(std::string_view url, bool is_relay);
  std::optional<std::size_t> find(std::string_view url) const;
  std::size_t holder_count() const noexcept { return holders_.size(); }
  const std::string& url(std::size_t holder) const { return holders_[holder].url; }
  bool is_relay(std::size_t holder) const { return holders_[holder].relay; }

  // What the holder has: every piece, or the bitfield it published (of piece_count pieces).
  void holds_all(std::size_t holder);
  void holds(std::size_t holder, const piece_bitfield& have);
  // How many pieces the holder was last known to have.
  std::size_t known_pieces(std::size_t holder) const { return holders_[holder].count; }
  // The holder refused a piece it was thought to have: forget that it has it.
  void refused(std::size_t holder, std::size_t piece);
  void pause(std::size_t holder, clock::time_point until);
  void drop(std::size_t holder);
  bool dropped(std::size_t holder) const { return holders_[holder].dropped; }

  // The next piece to fetch and from whom, marking both busy; nullopt when nothing can start now.
  std::optional<assignment> next(clock::time_point now);
  // The fetch of `a` ended; `verified` when its bytes matched the piece list. Returns whether the
  // piece is new (false: another holder's copy was verified first).
  bool finished(const assignment& a, bool verified);

  bool complete() const noexcept { return done_count_ == done_.size(); }
  std::size_t done_count() const noexcept { return done_count_; }
  bool done(std::size_t piece) const { return done_[piece]; }
  // Whether some holder not dropped has a piece still missing (busy or paused or not).
  bool someone_has_a_missing_piece() const;

 private:
  struct holder_state {
    std::string url;
    bool relay = false;
    std::vector<bool> have;
    std::size_t count = 0;
    bool busy = false;
    bool dropped = false;
    clock::time_point not_before{};
  };

  bool usable(const holder_state& h, clock::time_point now) const {
    return !h.busy && !h.dropped && h.count > 0 && now >= h.not_before;
  }

  std::vector<holder_state> holders_;
  std::vector<bool> done_;
  std::vector<unsigned> in_flight_;
  std::size_t done_count_ = 0;
  std::mt19937_64 random_;
};

}  // namespace lanrelay::agent
