#include "lanrelay/relay/slot_pool.hpp"

namespace lanrelay::relay {

slot_pool::slot& slot_pool::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
  }
  return *this;
}

void slot_pool::slot::release() noexcept {
  if (slot_pool* pool = std::exchange(pool_, nullptr)) {
    pool->active_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

std::optional<slot_pool::slot> slot_pool::try_acquire() noexcept {
  std::uint32_t current = active_.load(std::memory_order_relaxed);
  do {
    if (current >= capacity_.load(std::memory_order_relaxed)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
  } while (!active_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  const std::uint32_t now = current + 1;
  std::uint32_t peak = peak_.load(std::memory_order_relaxed);
  while (peak < now && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return slot(this);
}

}  // namespace lanrelay::relay
