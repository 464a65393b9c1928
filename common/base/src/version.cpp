#include "lanrelay/base/version.hpp"

#include <array>
#include <limits>
#include <utility>

namespace lanrelay {
namespace {

// Names, file versions and version texts of any kind are at most this long.
constexpr std::size_t max_text_length = 128;

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// A non-empty run of decimal digits whose value is at most `max`; nothing else is accepted (no
// sign, no spaces).
std::optional<std::uint64_t> parse_decimal(std::string_view text, std::uint64_t max) noexcept {
  if (text.empty()) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (char c : text) {
    if (!is_digit(c)) {
      return std::nullopt;
    }
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (max - digit) / 10) {
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

// Splits on '.'; empty parts are kept so that callers reject them.
std::vector<std::string_view> split_dots(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto dot = text.find('.', start);
    if (dot == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, dot - start));
    start = dot + 1;
  }
}

// Text that does not parse sorts before text that does; two unparsable texts compare as bytes so
// that the order stays total.
template <typename Version>
std::strong_ordering compare_parsed(std::string_view a, std::string_view b) {
  const auto va = Version::parse(a);
  const auto vb = Version::parse(b);
  if (va && vb) {
    return *va <=> *vb;
  }
  if (va || vb) {
    return va ? std::strong_ordering::greater : std::strong_ordering::less;
  }
  return a <=> b;
}

}  // namespace

std::string_view to_string(item_kind kind) noexcept {
  switch (kind) {
    case item_kind::installer:
      return "installer";
    case item_kind::pattern:
      return "pattern";
    case item_kind::file:
      return "file";
  }
  return "unknown";
}

std::optional<item_kind> parse_item_kind(std::string_view text) noexcept {
  for (const auto kind : {item_kind::installer, item_kind::pattern, item_kind::file}) {
    if (text == to_string(kind)) {
      return kind;
    }
  }
  return std::nullopt;
}

result<dotted_version> dotted_version::parse(std::string_view text) {
  if (text.size() > max_text_length) {
    return errc::invalid_version;
  }
  const auto parts = split_dots(text);
  if (parts.size() > 4) {
    return errc::invalid_version;
  }
  std::array<std::uint32_t, 4> values{};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto value = parse_decimal(parts[i], std::numeric_limits<std::uint32_t>::max());
    if (!value) {
      return errc::invalid_version;
    }
    values[i] = static_cast<std::uint32_t>(*value);
  }
  return dotted_version{values[0], values[1], values[2], values[3]};
}

std::string dotted_version::to_string() const {
  std::string out = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(build);
  if (patch != 0) {
    out += "." + std::to_string(patch);
  }
  return out;
}

result<pattern_version> pattern_version::parse(std::string_view text) {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  if (text.size() > max_text_length) {
    return errc::invalid_version;
  }
  const auto parts = split_dots(text);
  if (parts.size() == 1) {
    const auto value = parse_decimal(parts[0], max);
    if (!value) {
      return errc::invalid_version;
    }
    return pattern_version{*value};
  }
  if (parts.size() != 3 || parts[1].size() != 3 || parts[2].size() != 2) {
    return errc::invalid_version;
  }
  const auto release = parse_decimal(parts[0], max / 100'000);
  const auto vvv = parse_decimal(parts[1], 999);
  const auto bb = parse_decimal(parts[2], 99);
  if (!release || !vvv || !bb) {
    return errc::invalid_version;
  }
  const std::uint64_t low = *vvv * 100 + *bb;
  if (*release * 100'000 > max - low) {
    return errc::invalid_version;
  }
  return pattern_version{*release * 100'000 + low};
}

std::string pattern_version::to_display() const {
  const std::uint64_t release = value / 100'000;
  const std::uint64_t vvv = (value / 100) % 1000;
  const std::uint64_t bb = value % 100;
  std::string out = std::to_string(release) + ".";
  const std::string v = std::to_string(vvv);
  out.append(3 - v.size(), '0').append(v).push_back('.');
  const std::string b = std::to_string(bb);
  out.append(2 - b.size(), '0').append(b);
  return out;
}

result<std::string> canonical_version(item_kind kind, std::string_view text) {
  switch (kind) {
    case item_kind::installer:
      if (!dotted_version::parse(text)) {
        return errc::invalid_version;
      }
      return std::string(text);
    case item_kind::pattern: {
      const auto parsed = pattern_version::parse(text);
      if (!parsed) {
        return errc::invalid_version;
      }
      return std::to_string(parsed->value);
    }
    case item_kind::file:
      if (!is_valid_name(text)) {
        return errc::invalid_version;
      }
      return std::string(text);
  }
  return errc::invalid_kind;
}

bool version_satisfies(item_kind kind, std::string_view held, std::string_view wanted) {
  switch (kind) {
    case item_kind::installer: {
      const auto h = dotted_version::parse(held);
      const auto w = dotted_version::parse(wanted);
      if (!h || !w) {
        return false;
      }
      return std::pair(h->major, h->minor) >= std::pair(w->major, w->minor);
    }
    case item_kind::pattern: {
      const auto h = pattern_version::parse(held);
      const auto w = pattern_version::parse(wanted);
      return h && w && *h == *w;  // a newer pattern is another file: exact version only
    }
    case item_kind::file:
      return is_valid_name(held) && held == wanted;
  }
  return false;
}

std::strong_ordering compare_versions(item_kind kind, std::string_view a, std::string_view b) {
  switch (kind) {
    case item_kind::installer:
      return compare_parsed<dotted_version>(a, b);
    case item_kind::pattern:
      return compare_parsed<pattern_version>(a, b);
    case item_kind::file: {
      const bool valid_a = is_valid_name(a);
      const bool valid_b = is_valid_name(b);
      if (valid_a != valid_b) {
        return valid_a ? std::strong_ordering::greater : std::strong_ordering::less;
      }
      return a <=> b;
    }
  }
  return a <=> b;
}

bool is_valid_name(std::string_view text) noexcept {
  if (text.empty() || text.size() > max_text_length || text.front() == '.' ||
      text.front() == '-') {
    return false;
  }
  for (char c : text) {
    const bool ok = is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' ||
                    c == '_' || c == '+' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace lanrelay
