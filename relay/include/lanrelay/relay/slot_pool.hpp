#pragma once

// The peer cap: at most `capacity` body transfers run at once. A GET that sends item bytes holds a
// slot for exactly as long as the transfer runs; HEAD, 304, 416 and the /-/ endpoints take none.
//
// Thread safety: lock-free; any thread may acquire and release. The pool must outlive its slots
// (the server keeps it alive until its last connection has ended).

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

namespace lanrelay::relay {

class slot_pool {
 public:
  // Held by one transfer; releasing (destroying or moving from) frees the slot at once, however
  // the transfer ended.
  class slot {
   public:
    slot() = default;
    slot(slot&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
    slot& operator=(slot&& other) noexcept;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { release(); }

    bool held() const noexcept { return pool_ != nullptr; }
    void release() noexcept;

   private:
    friend class slot_pool;
    explicit slot(slot_pool* pool) noexcept : pool_(pool) {}
    slot_pool* pool_ = nullptr;
  };

  explicit slot_pool(std::uint32_t capacity) noexcept : capacity_(capacity) {}
  slot_pool(const slot_pool&) = delete;
  slot_pool& operator=(const slot_pool&) = delete;

  // A slot, or nullopt (counted in refused()) when all are taken.
  std::optional<slot> try_acquire() noexcept;

  std::uint32_t capacity() const noexcept { return capacity_.load(std::memory_order_relaxed); }
  // A new cap (configuration reload), from any thread. Transfers holding slots keep them; when
  // the cap drops below the running count, new transfers wait until enough have ended.
  void set_capacity(std::uint32_t capacity) noexcept {
    capacity_.store(capacity, std::memory_order_relaxed);
  }
  // Slots a new transfer could take now (0 while more run than the cap allows).
  std::uint32_t available() const noexcept {
    const std::uint32_t cap = capacity();
    const std::uint32_t running = active();
    return cap > running ? cap - running : 0;
  }
  std::uint32_t active() const noexcept { return active_.load(std::memory_order_relaxed); }
  std::uint32_t peak() const noexcept { return peak_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint32_t> capacity_;
  std::atomic<std::uint32_t> active_{0};
  std::atomic<std::uint32_t> peak_{0};
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace lanrelay::relay
