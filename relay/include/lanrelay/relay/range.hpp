#pragma once

// Pure parsers for the conditional and partial-request headers the content server honours.
//
// Range (RFC 9110 §14): one byte range, `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges are
// not supported and make the server ignore Range (200 with the whole item), as does any syntax
// error or another unit. A syntactically valid range that selects nothing is unsatisfiable (416
// with `Content-Range: bytes */<size>`).
//
// Entity tags: the relay's ETag is the strong tag "<sha256 hex>" of the item.

#include "lanrelay/base/sha256.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace lanrelay::relay {

enum class range_verdict {
  ignore,         // no Range, several ranges, another unit or invalid syntax: send everything
  satisfiable,    // send `first`..`first + length - 1` with 206
  unsatisfiable,  // answer 416
};

struct range_result {
  range_verdict verdict = range_verdict::ignore;
  std::uint64_t first = 0;
  std::uint64_t length = 0;  // never 0 when satisfiable

  bool operator==(const range_result&) const = default;
};

// `value` is the Range field value; `size` the item's size in bytes.
range_result parse_range(std::string_view value, std::uint64_t size) noexcept;

// "bytes 0-99/1000" for a satisfiable range.
std::string content_range(const range_result& range, std::uint64_t size);

std::string make_etag(const sha256_digest& digest);  // "\"<64 hex digits>\""

enum class etag_comparison {
  strong,  // both tags strong and equal (If-Match, If-Range)
  weak,    // opaque parts equal, W/ ignored (If-None-Match)
};

// Does an If-None-Match or If-Match field value (`*` or a comma-separated list of entity tags)
// match `etag`? `*` matches any current representation. Malformed list members match nothing.
bool etag_list_matches(std::string_view field_value, std::string_view etag,
                       etag_comparison comparison) noexcept;

// If-Range: a Range is honoured only when the field is an entity tag strongly equal to `etag`.
// A date (the relay sends no Last-Modified) or a weak or malformed tag never validates.
bool if_range_matches(std::string_view field_value, std::string_view etag) noexcept;

}  // namespace lanrelay::relay
