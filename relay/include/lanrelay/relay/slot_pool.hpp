#pragma once

// The peer cap: at most `capacity` body transfers run at once, and at most `per_client` of them
// for one client. A GET that sends item bytes holds a slot for exactly as long as the transfer
// runs; HEAD, 304, 416 and the /-/ endpoints take none.
//
// Clients: an IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address) is one client;
// IPv6 addresses are grouped by their first `ipv6_prefix` bits (128: each address on its own). A
// transfer asked for without a client address is bound by the global cap only.
//
// Refusals are counted by reason: every slot taken (refused()), or the client already holds its
// share while other slots are free (refused_client_share()). When both hold, it is "every slot".
//
// Thread safety: any thread may acquire and release. The table of slots per client is guarded by
// `mutex_` (a few entries at most: one per client holding a slot); the counters are relaxed
// atomics readable without it. The pool must outlive its slots (the server keeps it alive until
// its last connection has ended).

#include <boost/asio/ip/address.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace lanrelay::relay {

class slot_pool {
 public:
  // A client as the pool counts it: the address masked to its group, plus its family.
  using client_key = std::array<unsigned char, 17>;

  // Held by one transfer; releasing (destroying or moving from) frees the slot at once, however
  // the transfer ended.
  class slot {
   public:
    slot() = default;
    slot(slot&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), client_(other.client_) {}
    slot& operator=(slot&& other) noexcept;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { release(); }

    bool held() const noexcept { return pool_ != nullptr; }
    void release() noexcept;

   private:
    friend class slot_pool;
    slot(slot_pool* pool, std::optional<client_key> client) noexcept
        : pool_(pool), client_(client) {}
    slot_pool* pool_ = nullptr;
    std::optional<client_key> client_;
  };

  enum class refusal { none, all_busy, client_share };

  // `per_client` above `capacity` means the global cap alone applies.
  explicit slot_pool(std::uint32_t capacity, std::uint32_t per_client = UINT32_MAX,
                     unsigned ipv6_prefix = 128) noexcept
      : capacity_(capacity), per_client_(per_client), ipv6_prefix_(ipv6_prefix) {}
  slot_pool(const slot_pool&) = delete;
  slot_pool& operator=(const slot_pool&) = delete;

  // A slot, or nullopt (counted by reason; `why`, when given, says which).
  std::optional<slot> try_acquire(const std::optional<boost::asio::ip::address>& client = {},
                                  refusal* why = nullptr);

  std::uint32_t capacity() const noexcept { return capacity_.load(std::memory_order_relaxed); }
  // A new cap (configuration reload), from any thread. Transfers holding slots keep them; when
  // the cap drops below the running count, new transfers wait until enough have ended.
  void set_capacity(std::uint32_t capacity) noexcept {
    capacity_.store(capacity, std::memory_order_relaxed);
  }
  std::uint32_t per_client() const noexcept { return per_client_.load(std::memory_order_relaxed); }
  // A new share per client (configuration reload); running transfers keep their slots.
  void set_per_client(std::uint32_t per_client) noexcept {
    per_client_.store(per_client, std::memory_order_relaxed);
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
  std::uint64_t refused_client_share() const noexcept {
    return refused_client_share_.load(std::memory_order_relaxed);
  }
  // Slots held right now by `client`'s group.
  std::uint32_t held_by(const boost::asio::ip::address& client) const;

  // `client`'s group under an IPv6 prefix of `ipv6_prefix` bits.
  static client_key key_of(const boost::asio::ip::address& client, unsigned ipv6_prefix) noexcept;

 private:
  struct client_key_hash {
    std::size_t operator()(const client_key& k) const noexcept;
  };
  void release_one(const std::optional<client_key>& client) noexcept;

  std::atomic<std::uint32_t> capacity_;
  std::atomic<std::uint32_t> per_client_;
  const unsigned ipv6_prefix_;
  std::atomic<std::uint32_t> active_{0};
  std::atomic<std::uint32_t> peak_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> refused_client_share_{0};
  mutable std::mutex mutex_;
  std::unordered_map<client_key, std::uint32_t, client_key_hash> by_client_;  // guarded by mutex_
};

}  // namespace lanrelay::relay
