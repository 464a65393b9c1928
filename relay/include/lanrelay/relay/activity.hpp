#pragma once

// What the relay is doing now and did lately, for /-/status and the status page: the transfers
// running (client, item, bytes so far), bytes served per client (top peers), and bytes served
// locally versus fetched upstream over the last 24 hours.
//
// Thread safety: both classes are safe from any thread. transfer_registry guards its tables with
// a mutex taken once when a transfer begins and once when it ends; the bytes of a running transfer
// are a relaxed atomic its connection adds to. traffic_history has a mutex taken once a minute by
// the recorder and at each status request.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lanrelay::relay {

struct running_transfer {
  std::string client;  // peer address, without port
  std::string item;    // the path asked for, e.g. /cache/installer/agent-x64/14.0.1234
  std::uint64_t offset = 0;
  std::uint64_t length = 0;      // bytes this transfer sends in all
  std::uint64_t bytes_sent = 0;  // so far
  std::chrono::system_clock::time_point started;
};

struct peer_total {
  std::string client;
  std::uint64_t bytes = 0;      // item bytes sent to it, running transfers included
  std::uint64_t transfers = 0;  // transfers begun
};

class transfer_registry {
  struct entry;

 public:
  // Clients remembered for top_peers(); beyond, the one served least is forgotten.
  static constexpr std::size_t max_clients = 4096;

  // Registered from begin() until destroyed; the connection that sends the transfer owns it.
  class handle {
   public:
    handle() = default;
    handle(handle&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), id_(other.id_),
          entry_(std::move(other.entry_)) {}
    handle& operator=(handle&&) noexcept;
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle();

    void add_bytes(std::uint64_t n) noexcept;

   private:
    friend class transfer_registry;
    handle(transfer_registry* owner, std::uint64_t id, std::shared_ptr<entry> e) noexcept
        : owner_(owner), id_(id), entry_(std::move(e)) {}
    void end() noexcept;

    transfer_registry* owner_ = nullptr;
    std::uint64_t id_ = 0;
    std::shared_ptr<entry> entry_;
  };

  handle begin(std::string client, std::string item, std::uint64_t offset, std::uint64_t length);

  std::vector<running_transfer> running() const;  // oldest first
  std::vector<peer_total> top_peers(std::size_t count) const;  // most bytes first

 private:
  struct entry {
    running_transfer info;  // immutable after begin(), but bytes_sent
    std::atomic<std::uint64_t> bytes{0};
  };
  void finish(std::uint64_t id) noexcept;

  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 0;                                    // guarded by mutex_
  std::map<std::uint64_t, std::shared_ptr<entry>> running_;      // guarded by mutex_
  std::unordered_map<std::string, peer_total> totals_;           // guarded by mutex_; ended ones
};

// Bytes served locally and fetched upstream in 5-minute buckets over 24 hours, kept in a ring.
// Fed with cumulative totals (the relay's counters): record() puts the growth since its last call
// into the bucket of `now`, so the hot path pays nothing. A gap (the daemon suspended) leaves
// empty buckets; the growth over it lands in the bucket of the next record().
class traffic_history {
 public:
  static constexpr std::chrono::minutes bucket_width{5};
  static constexpr std::size_t bucket_count = 24 * 60 / 5;

  struct point {
    std::chrono::system_clock::time_point start;
    std::uint64_t served = 0;
    std::uint64_t upstream = 0;
  };

  void record(std::chrono::system_clock::time_point now, std::uint64_t served_total,
              std::uint64_t upstream_total);

  // bucket_count points, oldest first, the last being the bucket of `now`; growth of the totals
  // given here that record() has not seen yet is shown in that last bucket.
  std::vector<point> series(std::chrono::system_clock::time_point now, std::uint64_t served_total,
                            std::uint64_t upstream_total) const;

 private:
  struct slot {
    std::int64_t index = -1;  // bucket number since the epoch; -1: never used
    std::uint64_t served = 0;
    std::uint64_t upstream = 0;
  };
  static std::int64_t bucket_of(std::chrono::system_clock::time_point t) noexcept;

  mutable std::mutex mutex_;
  std::array<slot, bucket_count> ring_{};  // guarded by mutex_
  bool started_ = false;
  std::uint64_t last_served_ = 0;
  std::uint64_t last_upstream_ = 0;
};

}  // namespace lanrelay::relay
