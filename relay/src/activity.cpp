#include "lanrelay/relay/activity.hpp"

#include <algorithm>

namespace lanrelay::relay {

transfer_registry::handle& transfer_registry::handle::operator=(handle&& other) noexcept {
  if (this != &other) {
    end();
    owner_ = std::exchange(other.owner_, nullptr);
    id_ = other.id_;
    entry_ = std::move(other.entry_);
  }
  return *this;
}

transfer_registry::handle::~handle() { end(); }

void transfer_registry::handle::add_bytes(std::uint64_t n) noexcept {
  if (entry_) {
    entry_->bytes.fetch_add(n, std::memory_order_relaxed);
  }
}

void transfer_registry::handle::end() noexcept {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->finish(id_);
  }
  entry_.reset();
}

transfer_registry::handle transfer_registry::begin(std::string client, std::string item,
                                                   std::uint64_t offset, std::uint64_t length) {
  auto e = std::make_shared<entry>();
  e->info = running_transfer{std::move(client), std::move(item), offset, length, 0,
                             std::chrono::system_clock::now()};
  std::lock_guard lock(mutex_);
  const auto id = ++next_id_;
  running_.emplace(id, e);
  return handle{this, id, std::move(e)};
}

void transfer_registry::finish(std::uint64_t id) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = running_.find(id);
  if (it == running_.end()) {
    return;
  }
  const auto& e = *it->second;
  auto found = totals_.find(e.info.client);
  if (found == totals_.end()) {
    if (totals_.size() >= max_clients) {
      totals_.erase(std::min_element(totals_.begin(), totals_.end(), [](const auto& a, const auto& b) {
        return a.second.bytes < b.second.bytes;
      }));
    }
    found = totals_.emplace(e.info.client, peer_total{e.info.client, 0, 0}).first;
  }
  found->second.bytes += e.bytes.load(std::memory_order_relaxed);
  found->second.transfers += 1;
  running_.erase(it);
}

std::vector<running_transfer> transfer_registry::running() const {
  std::lock_guard lock(mutex_);
  std::vector<running_transfer> out;
  out.reserve(running_.size());
  for (const auto& [id, e] : running_) {
    out.push_back(e->info);
    out.back().bytes_sent = e->bytes.load(std::memory_order_relaxed);
  }
  return out;
}

std::vector<peer_total> transfer_registry::top_peers(std::size_t count) const {
  std::unordered_map<std::string, peer_total> merged;
  {
    std::lock_guard lock(mutex_);
    merged = totals_;
    for (const auto& [id, e] : running_) {
      auto& total = merged.try_emplace(e->info.client, peer_total{e->info.client, 0, 0}).first->second;
      total.bytes += e->bytes.load(std::memory_order_relaxed);
      total.transfers += 1;
    }
  }
  std::vector<peer_total> out;
  out.reserve(merged.size());
  for (auto& [client, total] : merged) {
    out.push_back(std::move(total));
  }
  std::sort(out.begin(), out.end(), [](const peer_total& a, const peer_total& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.client < b.client;
  });
  if (out.size() > count) {
    out.resize(count);
  }
  return out;
}

std::int64_t traffic_history::bucket_of(std::chrono::system_clock::time_point t) noexcept {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch());
  const auto width = std::chrono::duration_cast<std::chrono::seconds>(bucket_width);
  return static_cast<std::int64_t>(since_epoch.count() / width.count());
}

void traffic_history::record(std::chrono::system_clock::time_point now,
                             std::uint64_t served_total, std::uint64_t upstream_total) {
  std::lock_guard lock(mutex_);
  const auto index = bucket_of(now);
  auto& s = ring_[static_cast<std::size_t>(index) % bucket_count];
  if (s.index != index) {
    s = slot{index, 0, 0};
  }
  if (started_) {
    // Totals only grow; a smaller one (a counter source replaced) restarts from it.
    s.served += served_total >= last_served_ ? served_total - last_served_ : 0;
    s.upstream += upstream_total >= last_upstream_ ? upstream_total - last_upstream_ : 0;
  }
  started_ = true;
  last_served_ = served_total;
  last_upstream_ = upstream_total;
}

std::vector<traffic_history::point> traffic_history::series(
    std::chrono::system_clock::time_point now, std::uint64_t served_total,
    std::uint64_t upstream_total) const {
  std::lock_guard lock(mutex_);
  const auto current = bucket_of(now);
  std::vector<point> out;
  out.reserve(bucket_count);
  for (auto index = current - static_cast<std::int64_t>(bucket_count) + 1; index <= current;
       ++index) {
    point p;
    p.start = std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(bucket_width * index)};
    const auto& s = ring_[static_cast<std::size_t>(index) % bucket_count];
    if (s.index == index) {
      p.served = s.served;
      p.upstream = s.upstream;
    }
    out.push_back(p);
  }
  if (started_) {
    out.back().served += served_total >= last_served_ ? served_total - last_served_ : 0;
    out.back().upstream += upstream_total >= last_upstream_ ? upstream_total - last_upstream_ : 0;
  }
  return out;
}

}  // namespace lanrelay::relay
