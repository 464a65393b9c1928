#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/tlv_datagram.hpp"

#include <algorithm>
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

using tlv::load_be;

bool is_valid_name_field(std::string_view text) noexcept {
  return !text.empty() && text.size() <= max_name_length && is_valid_name(text);
}

using enum tlv::presence;

template <typename M>
bool read_kind(const tlv::field& f, M& out) {
  if (f.value.size() != 1) {
    return false;
  }
  const auto kind = kind_from_code(load_be<std::uint8_t>(f.value));
  if (!kind) {
    return false;
  }
  out.kind = *kind;
  return true;
}

template <typename M>
void write_kind(tlv::writer<field_type>& w, const M& in) {
  w.field_uint(field_type::kind, kind_code(in.kind));
}

bool read_role(const tlv::field& f, offer& out) {
  if (f.value.size() != 1) {
    return false;
  }
  const auto role = static_cast<responder_role>(load_be<std::uint8_t>(f.value));
  if (!is_valid_role(role)) {
    return false;
  }
  out.role = role;
  return true;
}

void write_role(tlv::writer<field_type>& w, const offer& in) {
  w.field_uint(field_type::role, static_cast<std::uint8_t>(in.role));
}

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

// Entries of (reason u8, count u16); a code repeated or a count of 0 is invalid, a code this
// version does not know is skipped (a newer agent may report more reasons).
bool read_fallbacks(const tlv::field& f, query& out) {
  const auto value = f.value;
  if (value.empty() || value.size() % fallback_entry_size != 0 ||
      value.size() > fallback_entry_size * max_fallback_entries) {
    return false;
  }
  std::array<bool, 256> seen{};
  for (std::size_t i = 0; i < value.size(); i += fallback_entry_size) {
    const auto code = load_be<std::uint8_t>(value.subspan(i, 1));
    const auto count = load_be<std::uint16_t>(value.subspan(i + 1, 2));
    if (count == 0 || seen[code]) {
      return false;
    }
    seen[code] = true;
    if (is_known_fallback(code)) {
      out.fallbacks.push_back({static_cast<fallback_reason>(code), count});
    }
  }
  return true;
}

void write_fallbacks(tlv::writer<field_type>& w, const query& in) {
  if (in.fallbacks.empty()) {
    return;
  }
  w.header(field_type::fallbacks, fallback_entry_size * in.fallbacks.size());
  for (const auto& f : in.fallbacks) {
    w.put_uint(static_cast<std::uint8_t>(f.reason));
    w.put_uint(f.count);
  }
}

// The fields of each message (docs/protocol.md), in the order encode writes them. Padding is
// skipped when read; encode pads a query itself.

// The fields a query and an offer share; M is query or offer.
template <typename M, typename S = tlv::field_spec<field_type, M>>
constexpr auto shared_fields = std::to_array<S>({
    tlv::uint_field<S, field_type::transaction_id, &M::transaction_id>(mandatory),
    tlv::uint_field<S, field_type::sender_cookie, &M::sender_cookie>(mandatory),
    {field_type::kind, mandatory, read_kind<M>, write_kind<M>},
    tlv::text_field<S, field_type::name, &M::name, is_valid_name_field>(mandatory),
    tlv::text_field<S, field_type::version, &M::version, is_valid_version_text>(mandatory),
});

using query_field = tlv::field_spec<field_type, query>;
constexpr auto query_fields = tlv::describe(message_type::query, tlv::join(
    shared_fields<query>,
    std::to_array<query_field>({
        tlv::bytes_field<query_field, field_type::sha256, &query::sha256>(optional),
        tlv::flag_field<query_field, field_type::partial_ok, &query::partial_ok>(optional),
        {field_type::fallbacks, optional, read_fallbacks, write_fallbacks},
        {field_type::padding, optional},
    })));

using offer_field = tlv::field_spec<field_type, offer>;
constexpr auto offer_fields = tlv::describe(message_type::offer, tlv::join(
    shared_fields<offer>,
    std::to_array<offer_field>({
        tlv::bytes_field<offer_field, field_type::sha256, &offer::sha256>(mandatory),
        tlv::uint_field<offer_field, field_type::size, &offer::size>(mandatory),
        tlv::text_field<offer_field, field_type::url, &offer::url, is_valid_offer_url>(mandatory),
        tlv::uint_field<offer_field, field_type::free_slots, &offer::free_slots>(mandatory),
        {field_type::role, mandatory, read_role, write_role},
        tlv::uint_field<offer_field, field_type::pieces_held, &offer::pieces_held>(optional),
        {field_type::padding, optional},
    })));

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
         std::all_of(text.begin(), text.end(), tlv::is_visible_ascii);
}

bool is_valid_offer_url(std::string_view text) noexcept {
  return tlv::is_http_url(text, max_url_length);
}

result<std::vector<std::byte>> encode(const query& q) {
  if (kind_code(q.kind) == 0 || !is_valid_name_field(q.name) || !is_valid_version_text(q.version) ||
      !is_valid_fallbacks(q.fallbacks)) {
    return errc::invalid_field;
  }
  auto w = make_writer(message_type::query);
  tlv::write_fields(w, query_fields, q);
  w.pad_to(field_type::padding, query_datagram_size);
  return std::move(w).take();
}

result<std::vector<std::byte>> encode(const offer& o, std::size_t max_size) {
  if (kind_code(o.kind) == 0 || !is_valid_role(o.role) || !is_valid_name_field(o.name) ||
      !is_valid_version_text(o.version) || !is_valid_offer_url(o.url)) {
    return errc::invalid_field;
  }
  auto w = make_writer(message_type::offer);
  tlv::write_fields(w, offer_fields, o);
  if (!reply_fits(max_size, w.size())) {
    return errc::too_large;
  }
  return std::move(w).take();
}

result<query> decode_query(std::span<const std::byte> datagram) {
  return tlv::read_message<errc>(datagram, datagram_framing, query_fields);
}

result<offer> decode_offer(std::span<const std::byte> datagram) {
  return tlv::read_message<errc>(datagram, datagram_framing, offer_fields);
}

std::optional<message_type> peek_type(std::span<const std::byte> datagram) noexcept {
  const auto type = tlv::peek_type(datagram, datagram_framing);
  if (type == static_cast<std::uint8_t>(message_type::query) ||
      type == static_cast<std::uint8_t>(message_type::offer)) {
    return static_cast<message_type>(*type);
  }
  return std::nullopt;
}

bool reply_fits(std::size_t query_size, std::size_t offer_size) noexcept {
  return offer_size <= query_size && offer_size <= max_datagram;
}

}  // namespace lanrelay::discovery
