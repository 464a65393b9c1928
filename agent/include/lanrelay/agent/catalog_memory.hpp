#pragma once

// The newest signed catalog an agent has believed, per site key: a catalog issued earlier than
// one already believed is a replay (an item withdrawn since would come back) and is refused,
// even though its signature and lifetime are fine (site_key.hpp: verify_catalog leaves this to
// the caller).
//
// Kept in <state dir>/catalogs.json, {"<public key text>": <issued_at, Unix seconds>, ...},
// written atomically, so separate `lanrelay fetch` runs share it. A missing or unreadable file
// admits every catalog (and is rewritten on the next record).
//
// Not thread safe; one instance per command. Two processes recording at once may lose one
// record (last writer wins); the mark then stays at the older of the two, never goes back.

#include "lanrelay/base/site_key.hpp"

#include <chrono>
#include <filesystem>

namespace lanrelay::agent {

class catalog_memory {
 public:
  explicit catalog_memory(std::filesystem::path file);

  // False when a catalog signed with `key` and issued later than `issued_at` was recorded.
  bool admits(const public_key& key, std::chrono::system_clock::time_point issued_at) const;
  // Raises the mark of `key` to `issued_at` (never lowers it).
  void record(const public_key& key, std::chrono::system_clock::time_point issued_at);

 private:
  std::filesystem::path file_;
};

}  // namespace lanrelay::agent
