// libFuzzer target for the signed-catalog parser: arbitrary bytes go to verify_catalog with a
// fixed pinned key and a fixed clock, and to parse_public_key.
//
// The seeds in corpus/catalog/ named signed_* were signed with the private key whose public half
// is pinned_key (the private key was discarded), issued at 1750000000 and valid for a day, so
// that the fuzzer starts from documents that pass every check. Seeds named unsigned_* have the
// shape of a format 2 catalog (with `urls`, say) but a signature that does not match, so that the
// fuzzer reaches the whole parser and the canonical encoding.

#include "lanrelay/base/site_key.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

constexpr std::string_view pinned_key =
    "lanrelay-ed25519:/QSSAU3zQS3Zw2cXaIz+WkZ6DxaB39ZfDz0hrBP4YB8=";
const std::chrono::system_clock::time_point fixed_now{std::chrono::seconds{1'750'003'600}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lanrelay::public_key pinned = lanrelay::parse_public_key(pinned_key).value();
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (const auto verified = lanrelay::verify_catalog(text, pinned, fixed_now)) {
    // Whatever verifies obeys the catalog rules and is what the pinned key signed.
    if (!lanrelay::validate_catalog(*verified)) {
      __builtin_trap();
    }
    for (const auto& url : verified->urls) {
      if (!lanrelay::is_valid_catalog_url(url)) {
        __builtin_trap();
      }
    }
    for (const auto& entry : verified->entries) {
      const auto found = lanrelay::find_entry(*verified, entry.kind, entry.name, entry.version);
      if (!found || *found != entry) {
        __builtin_trap();
      }
    }
  }

  // Accepted public key text is canonical: it prints back to the same bytes.
  if (const auto key = lanrelay::parse_public_key(text)) {
    if (key->to_string() != text) {
      __builtin_trap();
    }
  }
  return 0;
}
