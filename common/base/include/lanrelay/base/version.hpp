#pragma once

// Version rules for every kind of item, in one place.
//
// - installer: dotted `Major.Minor[.Build[.Patch]]`. An offer qualifies when its Major.Minor is at
//   least the wanted Major.Minor; Build and later parts are never compared for qualification.
// - pattern: an ActiveUpdate pattern number `RRRRRVVVBB` (an unsigned integer), displayed
//   `R.VVV.BB` (1667900 is 16.679.00). Either form parses; the canonical text is the integer.
//   Only the exact version qualifies.
// - file: an opaque version string; only exact equality qualifies.

#include "lanrelay/base/error.hpp"

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

enum class item_kind { installer, pattern, file };

std::string_view to_string(item_kind kind) noexcept;
std::optional<item_kind> parse_item_kind(std::string_view text) noexcept;

// Dotted version with 1 to 4 numeric components; missing components are zero.
struct dotted_version {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  std::uint32_t build = 0;
  std::uint32_t patch = 0;

  static result<dotted_version> parse(std::string_view text);
  std::string to_string() const;  // always Major.Minor.Build, plus .Patch when non-zero
  auto operator<=>(const dotted_version&) const = default;
};

struct pattern_version {
  std::uint64_t value = 0;

  // Accepts "1667900" or the display form "16.679.00" (VVV three digits, BB two digits).
  static result<pattern_version> parse(std::string_view text);
  std::string to_display() const;  // "16.679.00"
  auto operator<=>(const pattern_version&) const = default;
};

// The canonical spelling stored and compared for `kind` (pattern: the integer; installer: the
// dotted form as given, validated; file: the text itself, validated against the name rules).
result<std::string> canonical_version(item_kind kind, std::string_view text);

// Does an item of `kind` held at `held` satisfy a request for `wanted`? Both are parsed with the
// kind's rules; text that does not parse never qualifies.
bool version_satisfies(item_kind kind, std::string_view held, std::string_view wanted);

// Orders two versions of the same kind (newest last); unparsable text sorts first.
std::strong_ordering compare_versions(item_kind kind, std::string_view a, std::string_view b);

// Names and file versions: 1..128 characters from [A-Za-z0-9._+-], not starting with '.' or '-'.
bool is_valid_name(std::string_view text) noexcept;

}  // namespace lanrelay
