// libFuzzer target for the content server's request parsers: the request-target parser and the
// Range, If-None-Match and If-Range parsers (relay/src/request_target.cpp, relay/src/range.cpp).
// Seeds: tests/fuzz/corpus/request/.
//
// Beyond "never crash", it checks their contracts: an accepted cache target names a valid item
// (no '/', no "..", valid name and version) whose catalog path parses back to the same key, and a
// satisfiable range lies inside the item.

#include "lanrelay/relay/range.hpp"
#include "lanrelay/relay/request_target.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

void require(bool condition) {
  if (!condition) {
    __builtin_trap();
  }
}

void check_target(std::string_view text) {
  using namespace lanrelay::relay;
  const parsed_target parsed = parse_request_target(text);
  if (parsed.verdict != target_verdict::ok) {
    require(!parsed.reason.empty());
    return;
  }
  if (parsed.resource != resource_kind::cache_item) {
    return;
  }
  for (const std::string& part : {parsed.key.name, parsed.key.version}) {
    require(lanrelay::is_valid_name(part));
    require(part.find("..") == std::string::npos);
    require(part.find('/') == std::string::npos);
    require(part.find('\\') == std::string::npos);
  }
  const parsed_target again = parse_request_target(cache_path(parsed.key));
  require(again.verdict == target_verdict::ok);
  require(again.key == parsed.key);
}

void check_range(std::string_view text, std::uint64_t size) {
  using namespace lanrelay::relay;
  const range_result range = parse_range(text, size);
  if (range.verdict == range_verdict::satisfiable) {
    require(range.length > 0);
    require(range.first < size);
    require(range.length <= size - range.first);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_target(text);

  constexpr std::array<std::uint64_t, 5> sizes{0, 1, 1000, 1ULL << 40, ~0ULL};
  for (const std::uint64_t item_size : sizes) {
    check_range(text, item_size);
  }

  static const std::string etag = lanrelay::relay::make_etag(lanrelay::sha256_digest{});
  const bool weak = lanrelay::relay::etag_list_matches(text, etag,
                                                       lanrelay::relay::etag_comparison::weak);
  const bool strong = lanrelay::relay::etag_list_matches(text, etag,
                                                         lanrelay::relay::etag_comparison::strong);
  require(weak || !strong);  // a strong match is always a weak match
  if (lanrelay::relay::if_range_matches(text, etag)) {
    require(strong);
  }
  return 0;
}
