#include "lanrelay/relay/piece_lists.hpp"

#include "lanrelay/base/file_io.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>

#include <algorithm>

namespace lanrelay::relay {

std::shared_ptr<const piece_list_cache::entry> piece_list_cache::cached(const sha256_digest& sha256) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(sha256);
  return it != entries_.end() ? it->second : nullptr;
}

std::shared_ptr<const piece_list_cache::entry> piece_list_cache::find(content_store& store,
                                                                      const sha256_digest& sha256) {
  {
    std::lock_guard lock(mutex_);
    if (const auto it = entries_.find(sha256); it != entries_.end()) {
      return it->second;
    }
  }
  const auto items = store.list();
  if (std::none_of(items.begin(), items.end(), [&](const item& it) { return it.sha256 == sha256; })) {
    return nullptr;
  }
  const auto object = store.dir() / "objects" / to_hex(sha256);
  const unique_fd fd = open_fd(object, O_RDONLY | O_NOFOLLOW);
  if (!fd) {
    spdlog::warn("event=piece_list_unavailable object={} error=\"{}\"", object.string(),
                 last_errno().message());
    return nullptr;
  }
  auto built = build_piece_list(fd.get());
  if (!built || built->sha256 != sha256) {
    spdlog::warn("event=piece_list_unavailable object={} error=\"{}\"", object.string(),
                 built ? "the object does not hash to its name (corrupted on disk)"
                       : built.error().message());
    return nullptr;
  }
  auto made = std::make_shared<entry>();
  made->encoded = encode(built->list);
  made->digest = sha256_of(made->encoded);
  std::lock_guard lock(mutex_);
  const auto [it, inserted] = entries_.try_emplace(sha256, std::move(made));
  std::shared_ptr<const entry> found = it->second;
  if (inserted) {
    order_.push_back(sha256);
    while (entries_.size() > max_entries_) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
  }
  return found;
}

}  // namespace lanrelay::relay
