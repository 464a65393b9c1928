#pragma once

// A problem found while loading a daemon's configuration file, and the result of a load: shared
// by lanrelayd (relay/config.hpp) and proxyhelperd (proxyhelper/config.hpp), produced by the
// settings table machinery (settings_table.hpp).

#include <cstdint>
#include <string>
#include <vector>

namespace lanrelay {

struct config_diagnostic {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when the problem has no position
  std::uint32_t column = 0;  // 1-based; 0 when the problem has no position
  std::string message;

  std::string to_string() const;  // "file:line:column: message"
};

template <typename Config>
struct basic_config_load_result {
  Config config;
  std::vector<config_diagnostic> diagnostics;  // empty when the file is valid

  bool ok() const noexcept { return diagnostics.empty(); }
};

}  // namespace lanrelay
