#include "lanrelay/relay/slot_pool.hpp"

#include <algorithm>
#include <functional>
#include <string_view>

namespace lanrelay::relay {

namespace ip = boost::asio::ip;

slot_pool::slot& slot_pool::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    client_ = other.client_;
  }
  return *this;
}

void slot_pool::slot::release() noexcept {
  if (slot_pool* pool = std::exchange(pool_, nullptr)) {
    pool->release_one(client_);
  }
}

std::size_t slot_pool::client_key_hash::operator()(const client_key& k) const noexcept {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
}

slot_pool::client_key slot_pool::key_of(const ip::address& client,
                                         unsigned ipv6_prefix) noexcept {
  client_key key{};
  if (client.is_v4() || client.to_v6().is_v4_mapped()) {
    const auto v4 = client.is_v4() ? client.to_v4()
                                   : ip::make_address_v4(ip::v4_mapped, client.to_v6());
    const auto bytes = v4.to_bytes();
    std::copy(bytes.begin(), bytes.end(), key.begin());
    key[16] = 4;
    return key;
  }
  const auto bytes = client.to_v6().to_bytes();
  const unsigned prefix = std::min(ipv6_prefix, 128U);
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned bits_here = prefix > i * 8 ? std::min(8U, prefix - i * 8) : 0U;
    const auto mask = static_cast<unsigned char>(0xff00U >> bits_here);
    key[i] = static_cast<unsigned char>(bytes[i] & mask);
  }
  key[16] = 6;
  return key;
}

std::optional<slot_pool::slot> slot_pool::try_acquire(const std::optional<ip::address>& client,
                                                      refusal* why) {
  const auto refuse = [&](refusal reason) -> std::optional<slot> {
    (reason == refusal::all_busy ? refused_ : refused_client_share_)
        .fetch_add(1, std::memory_order_relaxed);
    if (why != nullptr) {
      *why = reason;
    }
    return std::nullopt;
  };
  std::optional<client_key> key;
  if (client) {
    key = key_of(*client, ipv6_prefix_);
  }
  std::lock_guard lock(mutex_);
  const std::uint32_t running = active_.load(std::memory_order_relaxed);
  if (running >= capacity()) {
    return refuse(refusal::all_busy);
  }
  if (key) {
    const auto it = by_client_.try_emplace(*key, 0).first;
    if (it->second >= per_client()) {
      return refuse(refusal::client_share);
    }
    ++it->second;
  }
  const std::uint32_t now = running + 1;
  active_.store(now, std::memory_order_relaxed);
  if (peak_.load(std::memory_order_relaxed) < now) {
    peak_.store(now, std::memory_order_relaxed);
  }
  if (why != nullptr) {
    *why = refusal::none;
  }
  return slot(this, key);
}

void slot_pool::release_one(const std::optional<client_key>& client) noexcept {
  std::lock_guard lock(mutex_);
  active_.fetch_sub(1, std::memory_order_relaxed);
  if (client) {
    if (auto it = by_client_.find(*client); it != by_client_.end() && --it->second == 0) {
      by_client_.erase(it);
    }
  }
}

std::uint32_t slot_pool::held_by(const ip::address& client) const {
  const auto key = key_of(client, ipv6_prefix_);
  std::lock_guard lock(mutex_);
  const auto it = by_client_.find(key);
  return it == by_client_.end() ? 0 : it->second;
}

}  // namespace lanrelay::relay
