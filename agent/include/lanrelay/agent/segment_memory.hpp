#pragma once

// Remembers segments where nobody answered a discovery query (clouds that drop broadcast), so an
// agent pays the discovery window there once and then goes straight to the upstream until the
// memory expires. Kept in a small JSON file so separate `lanrelay fetch` runs share it.
//
// Not thread safe; one instance per command. Concurrent processes may overwrite each other's
// entries (last writer wins), which only costs one more discovery window.

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace lanrelay::agent {

class segment_memory {
 public:
  using clock = std::chrono::system_clock;

  explicit segment_memory(std::filesystem::path file);

  // True while a silence recorded for `segment` has not expired.
  bool is_silent(std::string_view segment, clock::time_point now) const;
  void remember_silence(std::string_view segment, clock::time_point until);
  void forget(std::string_view segment);

 private:
  std::filesystem::path file_;
};

}  // namespace lanrelay::agent
