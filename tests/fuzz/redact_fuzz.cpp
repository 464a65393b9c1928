// libFuzzer target for URL redaction (common/base/src/redact.cpp). Seeds: tests/fuzz/corpus/redact/.
//
// Beyond "never crash": redaction is idempotent, leaves no userinfo behind, and never lengthens
// a text by more than the masks it puts in.

#include "lanrelay/base/redact.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

void require(bool condition) {
  if (!condition) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string once = lanrelay::redact_urls(text);
  require(!lanrelay::has_url_credentials(once));
  require(lanrelay::redact_urls(once) == once);
  std::size_t markers = 0;
  for (auto at = text.find("://"); at != std::string_view::npos; at = text.find("://", at + 1)) {
    ++markers;
  }
  require(once.size() <= text.size() + 3 * markers);
  if (!lanrelay::has_url_credentials(text)) {
    require(once.size() <= text.size());
  }
  return 0;
}
