#pragma once

// The piece lists of the items a server holds, built on first use and kept in memory: served at
// /-/pieces/<sha256> and named (by digest) in the signed catalog, so that agents can check each
// piece from an untrusted holder as it arrives (content/piece_list.hpp).
//
// A list is built by reading the store's object file (<store>/objects/<sha256>, opened with
// O_NOFOLLOW; the store's LRU is not touched) and is kept only when the whole file hashes to its
// name, so a corrupted object never gets a list. Building reads the whole item once; a signed
// catalog builds at most a bounded amount per request (catalog_signer.hpp), so the first catalogs
// after a start may name the piece lists of only some items.
//
// Memory: one entry per distinct content, 32 bytes per MiB of item plus a small header; at most
// `max_entries` entries (the oldest go first).
//
// Thread safety: every member function may be called from any thread; a mutex guards the map.
// Two threads asking for the same new list may both build it (the result is the same).

#include "lanrelay/content/piece_list.hpp"
#include "lanrelay/content/store.hpp"

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace lanrelay::relay {

class piece_list_cache {
 public:
  struct entry {
    std::vector<std::byte> encoded;  // encode(list)
    sha256_digest digest{};          // piece_list_digest(list)
  };

  explicit piece_list_cache(std::size_t max_entries = 65'536) : max_entries_(max_entries) {}

  // The piece list of the content `sha256` held in `store`; nullptr when the store holds no such
  // content or its object cannot be read or does not hash to its name.
  std::shared_ptr<const entry> find(content_store& store, const sha256_digest& sha256);
  // The piece list when it was built already; never reads the store.
  std::shared_ptr<const entry> cached(const sha256_digest& sha256);

 private:
  const std::size_t max_entries_;
  std::mutex mutex_;
  std::map<sha256_digest, std::shared_ptr<const entry>> entries_;  // guarded by mutex_
  std::deque<sha256_digest> order_;                                // guarded by mutex_; oldest first
};

}  // namespace lanrelay::relay
