// libFuzzer target for a peer's /-/have answer: the first two bytes choose the piece count, the
// rest goes to piece_bitfield::parse as the body a peer sent.

#include "lanrelay/content/partial_items.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::size_t count = static_cast<std::size_t>(data[0]) << 8 | data[1];
  const auto body = std::as_bytes(std::span(data + 2, size - 2));
  const auto parsed = lanrelay::piece_bitfield::parse(body, count);
  if (!parsed) {
    return 0;
  }
  // What parses has the asked count, its own bytes back, and no held piece beyond the count.
  const auto bytes = parsed->bytes();
  if (parsed->size() != count || parsed->held() > count ||
      !std::equal(bytes.begin(), bytes.end(), body.begin(), body.end())) {
    __builtin_trap();
  }
  std::size_t held = 0;
  for (std::size_t i = 0; i < count; ++i) {
    held += parsed->test(i) ? 1 : 0;
  }
  if (held != parsed->held()) {
    __builtin_trap();
  }
  return 0;
}
