#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/tlv_datagram.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

namespace lanrelay::discovery {
namespace {

std::string discovery_message(errc value) {
  switch (value) {
    case errc::truncated:
      return "discovery datagram is truncated: a field runs past its end";
    case errc::bad_magic:
      return "not a lanrelay discovery datagram (no LNRY magic); another service may use this "
             "port";
    case errc::unsupported_version:
      return "discovery protocol version not supported; upgrade the older lanrelay side";
    case errc::wrong_type:
      return "discovery message type is not the one expected here";
    case errc::missing_field:
      return "discovery datagram lacks a mandatory field";
    case errc::duplicate_field:
      return "discovery datagram repeats a field";
    case errc::invalid_field:
      return "discovery field has a bad length or value";
    case errc::too_large:
      return "discovery datagram is larger than allowed";
    case errc::unpadded:
      return "discovery query is shorter than the padded query size; dropped so that replies "
             "cannot amplify traffic";
  }
  return "unknown discovery error " + std::to_string(static_cast<int>(value));
}

constexpr std::uint32_t bit(field_type f) noexcept {
  return tlv::bit(static_cast<std::uint16_t>(f));
}

constexpr std::uint32_t query_fields = bit(field_type::transaction_id) |
                                       bit(field_type::sender_cookie) | bit(field_type::kind) |
                                       bit(field_type::name) | bit(field_type::version) |
                                       bit(field_type::sha256) | bit(field_type::padding) |
                                       bit(field_type::fallbacks);
constexpr std::uint32_t query_mandatory = bit(field_type::transaction_id) |
                                          bit(field_type::sender_cookie) | bit(field_type::kind) |
                                          bit(field_type::name) | bit(field_type::version);
constexpr std::uint32_t offer_fields = (query_fields & ~bit(field_type::fallbacks)) | bit(field_type::size) | bit(field_type::url) |
                                       bit(field_type::free_slots) | bit(field_type::role);
constexpr std::uint32_t offer_mandatory = offer_fields & ~bit(field_type::padding);
constexpr tlv::field_rules query_rules{query_fields, query_mandatory, 0};
constexpr tlv::field_rules offer_rules{offer_fields, offer_mandatory, 0};

static_assert(static_cast<unsigned>(field_type::fallbacks) < 32, "field bits fit a u32");

constexpr bool is_known_fallback(std::uint8_t code) noexcept {
  return code >= 1 && code <= fallback_reason_count;
}

// Known reasons, each once, counts of at least 1, at most max_fallback_entries.
bool is_valid_fallbacks(const std::vector<fallback_count>& fallbacks) noexcept {
  if (fallbacks.size() > max_fallback_entries) {
    return false;
  }
  std::uint32_t seen = 0;
  for (const auto& f : fallbacks) {
    const auto code = static_cast<std::uint8_t>(f.reason);
    if (!is_known_fallback(code) || f.count == 0 || (seen & (1U << code)) != 0) {
      return false;
    }
    seen |= 1U << code;
  }
  return true;
}

// Wire codes of item_kind; its in-memory values are not a wire format.
constexpr std::uint8_t kind_code(item_kind kind) noexcept {
  switch (kind) {
    case item_kind::installer:
      return 1;
    case item_kind::pattern:
      return 2;
    case item_kind::file:
      return 3;
  }
  return 0;
}

constexpr std::optional<item_kind> kind_from_code(std::uint8_t code) noexcept {
  switch (code) {
    case 1:
      return item_kind::installer;
    case 2:
      return item_kind::pattern;
    case 3:
      return item_kind::file;
    default:
      return std::nullopt;
  }
}

constexpr bool is_valid_role(responder_role role) noexcept {
  return role == responder_role::relay || role == responder_role::peer;
}

constexpr tlv::framing datagram_framing{magic, protocol_version, max_datagram,
                                static_cast<std::uint8_t>(message_type::query), query_datagram_size};
static_assert(tlv::header_size == header_size && tlv::field_header_size == field_header_size);

constexpr bool is_visible_ascii(char c) noexcept { return c >= 0x21 && c <= 0x7e; }

using tlv::load_be;

bool is_valid_name_field(std::string_view text) noexcept {
  return !text.empty() && text.size() <= max_name_length && is_valid_name(text);
}

// Values of the fields seen so far; `seen` has bit(f) set for each field f present.
struct field_values {
  std::uint32_t seen = 0;
  std::uint64_t transaction_id = 0;
  std::uint64_t sender_cookie = 0;
  item_kind kind = item_kind::installer;
  std::string name;
  std::string version;
  sha256_digest sha256{};
  std::uint64_t size = 0;
  std::string url;
  std::uint16_t free_slots = 0;
  responder_role role = responder_role::relay;
  std::vector<fallback_count> fallbacks;
};

using tlv::as_text;

// Stores one known field's value, checking its length and rules.
boost::system::error_code read_field(field_type type, std::span<const std::byte> value,
                                     field_values& out) {
  const auto fixed = [&](std::size_t length) { return value.size() == length; };
  switch (type) {
    case field_type::transaction_id:
      if (!fixed(8)) {
        return errc::invalid_field;
      }
      out.transaction_id = load_be<std::uint64_t>(value);
      return {};
    case field_type::sender_cookie:
      if (!fixed(8)) {
        return errc::invalid_field;
      }
      out.sender_cookie = load_be<std::uint64_t>(value);
      return {};
    case field_type::kind: {
      if (!fixed(1)) {
        return errc::invalid_field;
      }
      const auto kind = kind_from_code(load_be<std::uint8_t>(value));
      if (!kind) {
        return errc::invalid_field;
      }
      out.kind = *kind;
      return {};
    }
    case field_type::name:
      if (!is_valid_name_field(as_text(value))) {
        return errc::invalid_field;
      }
      out.name = as_text(value);
      return {};
    case field_type::version:
      if (!is_valid_version_text(as_text(value))) {
        return errc::invalid_field;
      }
      out.version = as_text(value);
      return {};
    case field_type::sha256:
      if (!fixed(out.sha256.size())) {
        return errc::invalid_field;
      }
      std::copy(value.begin(), value.end(), out.sha256.begin());
      return {};
    case field_type::size:
      if (!fixed(8)) {
        return errc::invalid_field;
      }
      out.size = load_be<std::uint64_t>(value);
      return {};
    case field_type::url:
      if (!is_valid_offer_url(as_text(value))) {
        return errc::invalid_field;
      }
      out.url = as_text(value);
      return {};
    case field_type::free_slots:
      if (!fixed(2)) {
        return errc::invalid_field;
      }
      out.free_slots = load_be<std::uint16_t>(value);
      return {};
    case field_type::role: {
      if (!fixed(1)) {
        return errc::invalid_field;
      }
      const auto role = static_cast<responder_role>(load_be<std::uint8_t>(value));
      if (!is_valid_role(role)) {
        return errc::invalid_field;
      }
      out.role = role;
      return {};
    }
    case field_type::padding:
      return {};
    case field_type::fallbacks: {
      // Entries of (reason u8, count u16); a code repeated or a count of 0 is invalid, a code
      // this version does not know is skipped (a newer agent may report more reasons).
      if (value.empty() || value.size() % fallback_entry_size != 0 ||
          value.size() > fallback_entry_size * max_fallback_entries) {
        return errc::invalid_field;
      }
      std::array<bool, 256> seen{};
      for (std::size_t i = 0; i < value.size(); i += fallback_entry_size) {
        const auto code = load_be<std::uint8_t>(value.subspan(i, 1));
        const auto count = load_be<std::uint16_t>(value.subspan(i + 1, 2));
        if (count == 0 || seen[code]) {
          return errc::invalid_field;
        }
        seen[code] = true;
        if (is_known_fallback(code)) {
          out.fallbacks.push_back({static_cast<fallback_reason>(code), count});
        }
      }
      return {};
    }
  }
  return {};
}

// Validates the header of `datagram` and parses the fields `rules` allow for `expected`.
boost::system::error_code parse(std::span<const std::byte> datagram, message_type expected,
                                const tlv::field_rules& rules, field_values& out) {
  return tlv::walk_fields<errc>(datagram, datagram_framing, static_cast<std::uint8_t>(expected), rules,
                                out.seen, [&](const tlv::field& f) {
                                  return read_field(static_cast<field_type>(f.code), f.value, out);
                                });
}

tlv::writer<field_type> make_writer(message_type type) {
  return {datagram_framing, static_cast<std::uint8_t>(type)};
}

}  // namespace

const boost::system::error_category& discovery_category() noexcept {
  static const error_category_of<errc> category(
      "lanrelay.discovery", 0x6c6e72792d646973ULL, discovery_message);
  return category;
}

std::string_view to_string(fallback_reason reason) noexcept {
  switch (reason) {
    case fallback_reason::segment_silent:
      return "segment_silent";
    case fallback_reason::nothing_found:
      return "nothing_found";
    case fallback_reason::holders_busy:
      return "holders_busy";
    case fallback_reason::holders_failed:
      return "holders_failed";
    case fallback_reason::untrusted_offers:
      return "untrusted_offers";
  }
  return {};
}

bool is_valid_version_text(std::string_view text) noexcept {
  return !text.empty() && text.size() <= max_version_length &&
         std::all_of(text.begin(), text.end(), is_visible_ascii);
}

bool is_valid_offer_url(std::string_view text) noexcept {
  if (text.size() > max_url_length || !text.starts_with("http://") ||
      !std::all_of(text.begin(), text.end(), is_visible_ascii)) {
    return false;
  }
  const auto url = boost::urls::parse_absolute_uri(text);
  if (!url || url->scheme_id() != boost::urls::scheme::http || !url->has_authority() ||
      url->has_userinfo() || url->has_fragment() || url->encoded_host().empty()) {
    return false;
  }
  switch (url->host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
    case boost::urls::host_type::name:
      break;
    default:
      return false;
  }
  if (url->has_port()) {
    const auto port = url->port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || port.size() > 5 || ec != std::errc{} || end != port.data() + port.size() ||
        value == 0 || value > 65535) {
      return false;
    }
  }
  return true;
}

result<std::vector<std::byte>> encode(const query& q) {
  if (kind_code(q.kind) == 0 || !is_valid_name_field(q.name) || !is_valid_version_text(q.version) ||
      !is_valid_fallbacks(q.fallbacks)) {
    return errc::invalid_field;
  }
  auto w = make_writer(message_type::query);
  w.field_uint(field_type::transaction_id, q.transaction_id);
  w.field_uint(field_type::sender_cookie, q.sender_cookie);
  w.field_uint(field_type::kind, kind_code(q.kind));
  w.field(field_type::name, q.name);
  w.field(field_type::version, q.version);
  if (q.sha256) {
    w.field(field_type::sha256, *q.sha256);
  }
  if (!q.fallbacks.empty()) {
    w.header(field_type::fallbacks, fallback_entry_size * q.fallbacks.size());
    for (const auto& f : q.fallbacks) {
      w.put_uint(static_cast<std::uint8_t>(f.reason));
      w.put_uint(f.count);
    }
  }
  w.pad_to(field_type::padding, query_datagram_size);
  return std::move(w).take();
}

result<std::vector<std::byte>> encode(const offer& o, std::size_t max_size) {
  if (kind_code(o.kind) == 0 || !is_valid_role(o.role) || !is_valid_name_field(o.name) ||
      !is_valid_version_text(o.version) || !is_valid_offer_url(o.url)) {
    return errc::invalid_field;
  }
  auto w = make_writer(message_type::offer);
  w.field_uint(field_type::transaction_id, o.transaction_id);
  w.field_uint(field_type::sender_cookie, o.sender_cookie);
  w.field_uint(field_type::kind, kind_code(o.kind));
  w.field(field_type::name, o.name);
  w.field(field_type::version, o.version);
  w.field(field_type::sha256, o.sha256);
  w.field_uint(field_type::size, o.size);
  w.field(field_type::url, o.url);
  w.field_uint(field_type::free_slots, o.free_slots);
  w.field_uint(field_type::role, static_cast<std::uint8_t>(o.role));
  if (!reply_fits(max_size, w.size())) {
    return errc::too_large;
  }
  return std::move(w).take();
}

result<query> decode_query(std::span<const std::byte> datagram) {
  field_values v;
  if (const auto ec = parse(datagram, message_type::query, query_rules, v)) {
    return ec;
  }
  query q;
  q.transaction_id = v.transaction_id;
  q.sender_cookie = v.sender_cookie;
  q.kind = v.kind;
  q.name = std::move(v.name);
  q.version = std::move(v.version);
  if ((v.seen & bit(field_type::sha256)) != 0) {
    q.sha256 = v.sha256;
  }
  q.fallbacks = std::move(v.fallbacks);
  return q;
}

result<offer> decode_offer(std::span<const std::byte> datagram) {
  field_values v;
  if (const auto ec = parse(datagram, message_type::offer, offer_rules, v)) {
    return ec;
  }
  offer o;
  o.transaction_id = v.transaction_id;
  o.sender_cookie = v.sender_cookie;
  o.role = v.role;
  o.kind = v.kind;
  o.name = std::move(v.name);
  o.version = std::move(v.version);
  o.size = v.size;
  o.sha256 = v.sha256;
  o.url = std::move(v.url);
  o.free_slots = v.free_slots;
  return o;
}

std::optional<message_type> peek_type(std::span<const std::byte> datagram) noexcept {
  if (datagram.size() < header_size || datagram.size() > max_datagram ||
      !std::equal(magic.begin(), magic.end(), datagram.begin()) ||
      std::to_integer<std::uint8_t>(datagram[4]) != protocol_version) {
    return std::nullopt;
  }
  switch (const auto type = static_cast<message_type>(std::to_integer<std::uint8_t>(datagram[5]))) {
    case message_type::query:
    case message_type::offer:
      return type;
  }
  return std::nullopt;
}

bool reply_fits(std::size_t query_size, std::size_t offer_size) noexcept {
  return offer_size <= query_size && offer_size <= max_datagram;
}

}  // namespace lanrelay::discovery
