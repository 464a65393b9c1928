// Fuzzes the download client's header parsers (Content-Range, Retry-After): arbitrary header
// values from an untrusted server must never crash and must give self-consistent results.

#include "lanrelay/upstream/http_client.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);

  if (const auto range = lanrelay::detail::parse_content_range(value)) {
    if (range->has_range && range->first > range->last) {
      std::abort();  // an inverted range must be rejected, not returned
    }
    if (range->has_range && range->complete_length && range->last >= *range->complete_length) {
      std::abort();  // a range past the end of the representation is invalid
    }
  }
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  if (const auto delay = lanrelay::detail::parse_retry_after(value, now)) {
    if (delay->count() < 0) {
      std::abort();
    }
  }
  return 0;
}
