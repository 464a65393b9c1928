// libFuzzer target for the piece list parser: arbitrary bytes go to parse_piece_list.

#include "lanrelay/content/piece_list.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  const auto parsed = lanrelay::parse_piece_list(bytes);
  if (!parsed) {
    return 0;
  }
  // What parses is consistent and is its own unique encoding.
  if (parsed->pieces.size() != lanrelay::piece_count(parsed->item_size, parsed->piece_size) ||
      !lanrelay::valid_piece_size(parsed->piece_size)) {
    __builtin_trap();
  }
  const auto encoded = lanrelay::encode(*parsed);
  if (!std::equal(encoded.begin(), encoded.end(), bytes.begin(), bytes.end())) {
    __builtin_trap();
  }
  return 0;
}
