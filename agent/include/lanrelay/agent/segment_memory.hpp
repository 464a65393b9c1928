#pragma once

// Remembers segments where nobody answered a discovery query (clouds that drop broadcast), so an
// agent pays the discovery window there once and then goes straight to the upstream until the
// memory expires. Kept in a small JSON file so separate `lanrelay fetch` runs share it.
//
// Memory per source (issue 14): a segment where the broadcast was silent but a unicast source
// (the address plan, DNS-SD) found relays that answered is remembered with those relays
// (remember_unicast), so later fetches skip the broadcast window and ask them at once.
//
// Holders answer only for what they hold, so one unanswered query may just mean nobody holds that
// item. A segment that answered some query recently (remember_answer) is therefore not marked
// silent by a later unanswered one: the next item is still asked for on the segment.
//
// Not thread safe; one instance per command. Concurrent processes may overwrite each other's
// entries (last writer wins), which only costs one more discovery window.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::agent {

class segment_memory {
 public:
  using clock = std::chrono::system_clock;

  explicit segment_memory(std::filesystem::path file);

  // True while a silence recorded for `segment` has not expired.
  bool is_silent(std::string_view segment, clock::time_point now) const;
  // Marks `segment` silent until `until`, unless it answered a query that is remembered at `now`.
  void remember_silence(std::string_view segment, clock::time_point now, clock::time_point until);
  // Someone on `segment` answered: it is not silent, and stays trusted to answer until `until`.
  void remember_answer(std::string_view segment, clock::time_point until);

  struct unicast_relays {
    std::string via;                  // the source that found them: "address-plan", "dns-sd"
    std::vector<std::string> relays;  // "10.1.0.5:4126", "[fd00::5]:4126"
  };
  // The broadcast on `segment` was silent and `relays`, found by `via`, answered: until
  // `until`, skip the broadcast and ask them.
  void remember_unicast(std::string_view segment, std::string_view via,
                        const std::vector<std::string>& relays, clock::time_point until);
  std::optional<unicast_relays> unicast(std::string_view segment, clock::time_point now) const;

 private:
  std::filesystem::path file_;
};

}  // namespace lanrelay::agent
