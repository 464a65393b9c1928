#pragma once

// Why this machine had to download from the upstream, until a relay has been told (issue 15,
// "agents that fall back say so, later"; docs/protocol.md, "Fallback reports").
//
// fetch.hpp records each fallback here; the next discovery query carries the counts (the query's
// fallbacks field) and, once a relay has answered such a query, the counts it carried are
// subtracted (settle). A relay that answered is where an operator looks, so the segment's
// fallbacks show in its metrics however long the segment was silent.
//
// Kept in <state dir>/fallbacks.json, {"segment_silent": 3, "holders_busy": 1}, written
// atomically, so separate `lanrelay fetch` runs and restarts share it. Bounded: the reasons are a
// fixed set and each count stops at discovery::max_reported_fallbacks (further fallbacks are not
// counted until a relay has been told). A missing or unreadable file counts nothing (and is
// rewritten on the next record).
//
// Not thread safe; one instance per command. Two processes writing at once may lose one update
// (last writer wins): a report counted once more or a fallback not counted, never more.

#include "lanrelay/segment/discovery_codec.hpp"

#include <filesystem>
#include <vector>

namespace lanrelay::agent {

class fallback_memory {
 public:
  explicit fallback_memory(std::filesystem::path file);

  // One more fallback for `reason` (up to max_reported_fallbacks).
  void record(discovery::fallback_reason reason);
  // What the next query reports: every reason with a count, in code order.
  std::vector<discovery::fallback_count> pending() const;
  // A relay answered a query that carried `reported`: those are told. Fallbacks recorded since
  // (by another run) stay.
  void settle(const std::vector<discovery::fallback_count>& reported);

 private:
  std::filesystem::path file_;
};

}  // namespace lanrelay::agent
