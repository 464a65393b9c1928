#include "lanrelay/base/redact.hpp"

namespace lanrelay {
namespace {

constexpr std::string_view mask = "***";

// A character that ends a URL's authority: a delimiter of the path, query or fragment, or a
// character no URL may contain unescaped (RFC 3986 section 2).
bool ends_authority(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u == 0x7f) {
    return true;
  }
  switch (c) {
    case '/':
    case '?':
    case '#':
    case '"':
    case '<':
    case '>':
    case '\\':
    case '`':
    case '{':
    case '}':
    case '|':
    case '^':
      return true;
    default:
      return false;
  }
}

// Calls `on_userinfo(begin, end)` for each URL userinfo in `text`, in order.
template <typename F>
void for_each_userinfo(std::string_view text, F&& on_userinfo) {
  std::size_t from = 0;
  while (from < text.size()) {
    const auto marker = text.find("://", from);
    if (marker == std::string_view::npos) {
      return;
    }
    const std::size_t begin = marker + 3;
    std::size_t end = begin;
    std::size_t last_at = std::string_view::npos;
    while (end < text.size() && !ends_authority(text[end])) {
      if (text[end] == '@') {
        last_at = end;
      }
      ++end;
    }
    if (last_at != std::string_view::npos) {
      on_userinfo(begin, last_at);
    }
    // The authority holds no '/', so the next "://" starts at its last character at the
    // earliest ("http://h://u:p@x"): userinfos never overlap and the scan stays linear.
    from = marker + 1;
  }
}

}  // namespace

std::string redact_urls(std::string_view text) {
  std::string out;
  std::size_t copied = 0;
  for_each_userinfo(text, [&](std::size_t begin, std::size_t end) {
    if (out.empty()) {
      out.reserve(text.size());
    }
    out.append(text.substr(copied, begin - copied));
    out.append(mask);
    copied = end;
  });
  if (copied == 0) {
    return std::string(text);
  }
  out.append(text.substr(copied));
  return out;
}

bool has_url_credentials(std::string_view text) noexcept {
  bool found = false;
  for_each_userinfo(text, [&](std::size_t begin, std::size_t end) {
    if (text.substr(begin, end - begin) != mask) {
      found = true;
    }
  });
  return found;
}

}  // namespace lanrelay
