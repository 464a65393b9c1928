#include "lanrelay/relay/range.hpp"
#include "lanrelay/base/text_format.hpp"

#include <limits>
#include <optional>

namespace lanrelay::relay {
namespace {

constexpr std::uint64_t saturated = std::numeric_limits<std::uint64_t>::max();

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

// 1*DIGIT; values beyond 2^64-1 saturate (they are larger than any item anyway).
std::optional<std::uint64_t> parse_digits(std::string_view text) noexcept {
  if (text.empty()) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const auto digit = static_cast<std::uint64_t>(c - '0');
    value = value > (saturated - digit) / 10 ? saturated : value * 10 + digit;
  }
  return value;
}

range_result unsatisfiable() noexcept { return {range_verdict::unsatisfiable, 0, 0}; }

range_result evaluate_spec(std::string_view spec, std::uint64_t size) noexcept {
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) {
    return {};
  }
  const std::string_view first_text = spec.substr(0, dash);
  const std::string_view last_text = spec.substr(dash + 1);

  if (first_text.empty()) {  // suffix-range "-n"
    const auto suffix = parse_digits(last_text);
    if (!suffix) {
      return {};
    }
    if (*suffix == 0) {
      return unsatisfiable();
    }
    if (size == 0) {
      return {};  // the last n bytes of nothing: send the (empty) whole
    }
    const std::uint64_t length = *suffix < size ? *suffix : size;
    return {range_verdict::satisfiable, size - length, length};
  }

  const auto first = parse_digits(first_text);
  if (!first) {
    return {};
  }
  std::uint64_t last = saturated;
  if (!last_text.empty()) {
    const auto parsed = parse_digits(last_text);
    if (!parsed || *parsed < *first) {
      return {};  // "a-b" with b < a is invalid syntax, not unsatisfiable
    }
    last = *parsed;
  }
  if (*first >= size) {
    return unsatisfiable();
  }
  if (last >= size) {
    last = size - 1;
  }
  return {range_verdict::satisfiable, *first, last - *first + 1};
}

// Parses one entity-tag at the start of `text`; returns its length or 0 when malformed.
// Sets `weak` and `opaque` (the quoted part, quotes included).
std::size_t parse_entity_tag(std::string_view text, bool& weak, std::string_view& opaque) noexcept {
  std::size_t pos = 0;
  weak = false;
  if (text.size() >= 2 && text[0] == 'W' && text[1] == '/') {
    weak = true;
    pos = 2;
  }
  if (pos >= text.size() || text[pos] != '"') {
    return 0;
  }
  const std::size_t open = pos++;
  for (; pos < text.size(); ++pos) {
    const auto c = static_cast<unsigned char>(text[pos]);
    if (c == '"') {
      opaque = text.substr(open, pos - open + 1);
      return pos + 1;
    }
    if (c < 0x21 || c == 0x7f) {  // etagc = %x21 / %x23-7E / obs-text
      return 0;
    }
  }
  return 0;
}

}  // namespace

range_result parse_range(std::string_view value, std::uint64_t size) noexcept {
  value = trim(value);
  const auto eq = value.find('=');
  if (eq == std::string_view::npos || !iequals(value.substr(0, eq), "bytes")) {
    return {};
  }
  std::string_view set = value.substr(eq + 1);
  std::string_view only;
  std::size_t count = 0;
  while (true) {
    const auto comma = set.find(',');
    const std::string_view element = trim(set.substr(0, comma));
    if (!element.empty()) {
      ++count;
      only = element;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    set.remove_prefix(comma + 1);
  }
  if (count != 1) {
    return {};  // no range at all, or several: serve the whole item
  }
  return evaluate_spec(only, size);
}

std::string content_range(const range_result& range, std::uint64_t size) {
  return "bytes " + std::to_string(range.first) + "-" +
         std::to_string(range.first + range.length - 1) + "/" + std::to_string(size);
}

std::string make_etag(const sha256_digest& digest) { return "\"" + to_hex(digest) + "\""; }

bool etag_list_matches(std::string_view field_value, std::string_view etag,
                       etag_comparison comparison) noexcept {
  bool ours_weak = false;
  std::string_view ours;
  if (parse_entity_tag(etag, ours_weak, ours) != etag.size()) {
    return false;
  }
  std::string_view rest = trim(field_value);
  if (rest == "*") {
    return true;
  }
  while (!rest.empty()) {
    while (!rest.empty() && (is_ows(rest.front()) || rest.front() == ',')) {
      rest.remove_prefix(1);
    }
    if (rest.empty()) {
      break;
    }
    bool weak = false;
    std::string_view opaque;
    const std::size_t used = parse_entity_tag(rest, weak, opaque);
    if (used == 0) {
      // Malformed member: skip to the next comma (a quoted comma cannot be told apart; fine).
      const auto comma = rest.find(',');
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
      continue;
    }
    rest.remove_prefix(used);
    if (opaque == ours &&
        (comparison == etag_comparison::weak || (!weak && !ours_weak))) {
      return true;
    }
  }
  return false;
}

bool if_range_matches(std::string_view field_value, std::string_view etag) noexcept {
  field_value = trim(field_value);
  bool weak = false;
  std::string_view opaque;
  if (parse_entity_tag(field_value, weak, opaque) != field_value.size() || weak) {
    return false;
  }
  bool ours_weak = false;
  std::string_view ours;
  if (parse_entity_tag(etag, ours_weak, ours) != etag.size() || ours_weak) {
    return false;
  }
  return opaque == ours;
}

}  // namespace lanrelay::relay
