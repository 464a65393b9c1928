#include "lanrelay/relay/request_target.hpp"

#include "lanrelay/base/text_format.hpp"
#include "lanrelay/base/version.hpp"
#include "lanrelay/content/activeupdate_index.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::relay {
namespace {

parsed_target reject(target_verdict verdict, std::string_view reason) {
  parsed_target out;
  out.verdict = verdict;
  out.reason = reason;
  return out;
}

// Characters item names and versions are made of (is_valid_name's alphabet), minus '.', which is
// only accepted unescaped.
bool is_escapable_name_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '+' || c == '-';
}

// Characters a mirrored ActiveUpdate path may carry escaped (is_safe_relative_path's alphabet).
bool is_escapable_mirror_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '\\' && c != '%' && c != '?' && c != '#' && c != ':' &&
         c != '*' && c != '"' && c != '<' && c != '>' && c != '|';
}

// Raw characters allowed in a path: RFC 3986 pchar minus '%' (handled apart) and minus '\'.
bool is_raw_path_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) {
    return false;  // controls, space, DEL, NUL and non-ASCII
  }
  switch (c) {
    case '\\':
    case '"':
    case '<':
    case '>':
    case '^':
    case '`':
    case '{':
    case '|':
    case '}':
    case '[':
    case ']':
    case '#':
    case '?':
      return false;
    default:
      return true;
  }
}

// %00, %2e, %2f and %5c in any case, anywhere in the target (the query included).
bool has_forbidden_escape(std::string_view target) noexcept {
  for (std::size_t i = 0; i + 2 < target.size(); ++i) {
    if (target[i] != '%') {
      continue;
    }
    const auto hi = hex_digit_value(target[i + 1]);
    const auto lo = hex_digit_value(target[i + 2]);
    if (!hi || !lo) {
      continue;  // malformed escapes are refused by split_path
    }
    const int decoded = *hi * 16 + *lo;
    if (decoded == 0x00 || decoded == 0x2e || decoded == 0x2f || decoded == 0x5c) {
      return true;
    }
  }
  return false;
}

struct split_result {
  std::vector<std::string> segments;
  std::string_view error;  // empty when the path was acceptable
};

// Splits an origin-form path into percent-decoded segments, refusing everything unsafe.
split_result split_path(std::string_view path, bool (*is_escapable)(char) noexcept) {
  split_result out;
  std::string segment;
  for (std::size_t i = 1; i <= path.size(); ++i) {  // path[0] is the leading '/'
    if (i == path.size() || path[i] == '/') {
      if (segment.empty()) {
        out.error = "empty path segment";
        return out;
      }
      if (segment == "." || segment.find("..") != std::string::npos) {
        out.error = "dot segment";
        return out;
      }
      out.segments.push_back(std::move(segment));
      segment.clear();
      continue;
    }
    const char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) {
        out.error = "truncated percent escape";
        return out;
      }
      const auto hi = hex_digit_value(path[i + 1]);
      const auto lo = hex_digit_value(path[i + 2]);
      if (!hi || !lo) {
        out.error = "malformed percent escape";
        return out;
      }
      const char decoded = static_cast<char>(*hi * 16 + *lo);
      if (decoded == '.' || decoded == '/' || decoded == '\\' || decoded == '\0') {
        out.error = "percent-encoded dot, slash, backslash or NUL";
        return out;
      }
      if (!is_escapable(decoded)) {
        out.error = "percent escape of a character no name contains";
        return out;
      }
      segment += decoded;
      i += 2;
      continue;
    }
    if (c == '\\') {
      out.error = "backslash in path";
      return out;
    }
    if (!is_raw_path_char(c)) {
      out.error = "character not allowed in a path";
      return out;
    }
    segment += c;
  }
  return out;
}

// /activeupdate/<source>/<path...>; `seg` are the decoded segments.
parsed_target parse_mirror_target(const std::vector<std::string>& seg) {
  if (seg.size() < 3) {
    return reject(target_verdict::not_found, "a mirror path is /activeupdate/<source>/<path>");
  }
  if (!activeupdate::is_valid_source_name(seg[1])) {
    return reject(target_verdict::bad_request, "invalid mirror source name");
  }
  std::string relative;
  for (std::size_t i = 2; i < seg.size(); ++i) {
    relative += relative.empty() ? "" : "/";
    relative += seg[i];
  }
  if (!activeupdate::is_safe_relative_path(relative)) {
    return reject(target_verdict::bad_request, "not a safe ActiveUpdate path");
  }
  parsed_target out;
  out.verdict = target_verdict::ok;
  out.resource = resource_kind::mirror_file;
  out.mirror_source = seg[1];
  out.mirror_path = std::move(relative);
  return out;
}

}  // namespace

std::string mirror_path(std::string_view source, std::string_view relative) {
  return "/activeupdate/" + std::string(source) + "/" + std::string(relative);
}

parsed_target parse_request_target(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return reject(target_verdict::bad_request, "not an origin-form target");
  }
  if (target.find('\0') != std::string_view::npos) {
    return reject(target_verdict::bad_request, "NUL in target");
  }
  if (target.find('#') != std::string_view::npos) {
    return reject(target_verdict::bad_request, "fragment in target");
  }
  if (has_forbidden_escape(target)) {
    return reject(target_verdict::bad_request, "percent-encoded dot, slash, backslash or NUL");
  }

  std::string_view path = target;
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    for (const char c : target.substr(q + 1)) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f || c == '\\') {
        return reject(target_verdict::bad_request, "character not allowed in the query");
      }
    }
  }
  if (path == "/") {
    parsed_target page;
    page.verdict = target_verdict::ok;
    page.resource = resource_kind::status_page;
    return page;
  }
  if (path.size() >= 2 && path[1] == '/') {
    return reject(target_verdict::bad_request, "empty path segment");  // also "//host/..."
  }

  const bool mirror = path.starts_with("/activeupdate/");
  split_result split =
      split_path(path, mirror ? is_escapable_mirror_char : is_escapable_name_char);
  if (!split.error.empty()) {
    return reject(target_verdict::bad_request, split.error);
  }
  const std::vector<std::string>& seg = split.segments;

  parsed_target out;
  if (seg.size() >= 3 && seg.size() <= 4 && seg[0] == "-" && seg[1] == "mirror" && seg[2] == "sync") {
    if (seg.size() == 4 && !activeupdate::is_valid_source_name(seg[3])) {
      return reject(target_verdict::bad_request, "invalid mirror source name");
    }
    out.verdict = target_verdict::ok;
    out.resource = resource_kind::mirror_sync;
    out.mirror_source = seg.size() == 4 ? seg[3] : std::string{};
    return out;
  }
  if (seg.size() == 3 && seg[0] == "-" && (seg[1] == "pieces" || seg[1] == "have")) {
    const auto sha256 = parse_sha256_hex(seg[2]);
    if (!sha256) {
      return reject(target_verdict::bad_request, "a piece list is named by 64 hex digits");
    }
    out.verdict = target_verdict::ok;
    out.resource = seg[1] == "pieces" ? resource_kind::piece_list : resource_kind::piece_have;
    out.sha256 = *sha256;
    return out;
  }
  if (seg.size() == 2 && seg[0] == "-") {
    out.verdict = target_verdict::ok;
    if (seg[1] == "healthz") {
      out.resource = resource_kind::healthz;
    } else if (seg[1] == "catalog") {
      out.resource = resource_kind::catalog;
    } else if (seg[1] == "catalog.signed") {
      out.resource = resource_kind::signed_catalog;
    } else if (seg[1] == "stats") {
      out.resource = resource_kind::stats;
    } else if (seg[1] == "mirror") {
      out.resource = resource_kind::mirror_status;
      // Monitoring and admin endpoints.
    } else if (seg[1] == "status") {
      out.resource = resource_kind::status;
    } else if (seg[1] == "metrics") {
      out.resource = resource_kind::metrics;
    } else if (seg[1] == "log-level") {
      out.resource = resource_kind::log_level;
    } else {
      return reject(target_verdict::not_found, "unknown endpoint");
    }
    return out;
  }
  if (mirror) {
    return parse_mirror_target(seg);
  }
  if (seg.empty() || seg[0] != "cache") {
    return reject(target_verdict::not_found, "unknown path");
  }
  if (seg.size() != 4) {
    return reject(target_verdict::not_found, "a cache path is /cache/<kind>/<name>/<version>");
  }
  const auto kind = parse_item_kind(seg[1]);
  if (!kind) {
    return reject(target_verdict::not_found, "unknown item kind");
  }
  if (!is_valid_name(seg[2])) {
    return reject(target_verdict::bad_request, "invalid item name");
  }
  if (!is_valid_name(seg[3])) {
    return reject(target_verdict::bad_request, "invalid item version");
  }
  auto version = canonical_version(*kind, seg[3]);
  if (!version) {
    return reject(target_verdict::bad_request, "invalid item version");
  }
  out.verdict = target_verdict::ok;
  out.resource = resource_kind::cache_item;
  out.key = item_key{*kind, seg[2], std::move(*version)};
  return out;
}

std::string cache_path(const item_key& key) {
  std::string out = "/cache/";
  out += to_string(key.kind);
  out += '/';
  out += key.name;
  out += '/';
  out += key.version;
  return out;
}

}  // namespace lanrelay::relay
