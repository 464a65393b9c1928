#include "lanrelay/agent/piece_scheduler.hpp"

#include <algorithm>
#include <limits>

namespace lanrelay::agent {

piece_scheduler::piece_scheduler(std::size_t piece_count, std::uint64_t seed)
    : done_(piece_count, false), in_flight_(piece_count, 0), random_(seed) {}

std::size_t piece_scheduler::holder(std::string_view url, bool is_relay) {
  if (const auto found = find(url)) {
    return *found;
  }
  holders_.push_back(holder_state{std::string(url), is_relay, std::vector<bool>(done_.size(), false)});
  return holders_.size() - 1;
}

std::optional<std::size_t> piece_scheduler::find(std::string_view url) const {
  for (std::size_t i = 0; i < holders_.size(); ++i) {
    if (holders_[i].url == url) {
      return i;
    }
  }
  return std::nullopt;
}

void piece_scheduler::holds_all(std::size_t holder) {
  auto& h = holders_[holder];
  std::fill(h.have.begin(), h.have.end(), true);
  h.count = h.have.size();
}

void piece_scheduler::holds(std::size_t holder, const piece_bitfield& have) {
  auto& h = holders_[holder];
  if (have.size() != h.have.size()) {
    return;
  }
  h.count = 0;
  for (std::size_t i = 0; i < h.have.size(); ++i) {
    h.have[i] = have.test(i);
    h.count += h.have[i] ? 1 : 0;
  }
}

void piece_scheduler::refused(std::size_t holder, std::size_t piece) {
  auto& h = holders_[holder];
  if (h.have[piece]) {
    h.have[piece] = false;
    --h.count;
  }
}

void piece_scheduler::pause(std::size_t holder, clock::time_point until) {
  holders_[holder].not_before = std::max(holders_[holder].not_before, until);
}

void piece_scheduler::drop(std::size_t holder) { holders_[holder].dropped = true; }

bool piece_scheduler::someone_has_a_missing_piece() const {
  for (const auto& h : holders_) {
    if (h.dropped) {
      continue;
    }
    for (std::size_t p = 0; p < done_.size(); ++p) {
      if (!done_[p] && h.have[p]) {
        return true;
      }
    }
  }
  return false;
}

std::optional<piece_scheduler::assignment> piece_scheduler::next(clock::time_point now) {
  // How many live holders have each missing piece.
  std::vector<unsigned> rarity(done_.size(), 0);
  for (const auto& h : holders_) {
    if (h.dropped) {
      continue;
    }
    for (std::size_t p = 0; p < done_.size(); ++p) {
      rarity[p] += h.have[p] ? 1 : 0;
    }
  }
  struct choice {
    std::size_t holder;
    std::size_t piece;
    unsigned rank;   // rarity (or, in the endgame, copies in flight)
    bool relay;
    std::uint64_t tie;
  };
  const auto better = [](const choice& a, const choice& b) {
    if (a.rank != b.rank) {
      return a.rank < b.rank;
    }
    if (a.relay != b.relay) {
      return !a.relay;
    }
    return a.tie < b.tie;
  };
  const auto pick = [&](bool endgame) -> std::optional<choice> {
    std::optional<choice> best;
    for (std::size_t i = 0; i < holders_.size(); ++i) {
      const auto& h = holders_[i];
      if (!usable(h, now)) {
        continue;
      }
      for (std::size_t p = 0; p < done_.size(); ++p) {
        if (done_[p] || !h.have[p] || (in_flight_[p] > 0) != endgame) {
          continue;
        }
        const choice c{i, p, endgame ? in_flight_[p] : rarity[p], h.relay, random_()};
        if (!best || better(c, *best)) {
          best = c;
        }
      }
    }
    return best;
  };
  bool endgame = false;
  auto best = pick(false);
  if (!best) {
    endgame = true;
    best = pick(true);
  }
  if (!best) {
    return std::nullopt;
  }
  holders_[best->holder].busy = true;
  ++in_flight_[best->piece];
  return assignment{best->holder, best->piece, endgame};
}

bool piece_scheduler::finished(const assignment& a, bool verified) {
  holders_[a.holder].busy = false;
  --in_flight_[a.piece];
  if (!verified || done_[a.piece]) {
    return false;
  }
  done_[a.piece] = true;
  ++done_count_;
  return true;
}

}  // namespace lanrelay::agent
