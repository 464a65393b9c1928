#pragma once

// The datagram framing both segment protocols use (discovery_codec.hpp for items,
// proxy_codec.hpp for proxies; docs/protocol.md): a 6-byte header — 4 magic bytes, a version
// byte, a message type byte — then fields of `type u16, length u16, value`, big-endian. This
// file frames and walks; what a field means is each codec's business, which it states as one
// table per message type (`field_spec`, `describe`): each field's code, how often it appears,
// how it is read and how it is written. read_fields and write_fields run a table.
//
// To add a field to a message: a code in the codec's field_type, the member in the message
// struct, and a row in that message's table (docs/protocol.md says what it means on the wire).
//
// Both codecs' error enums have the enumerators used here (truncated, bad_magic,
// unsupported_version, wrong_type, too_large, unpadded, duplicate_field, missing_field), so the
// walkers report in the caller's own error category.
//
// Threads: no state; everything is a pure function or a value.

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay::tlv {

inline constexpr std::size_t header_size = 6;       // magic, version, message type
inline constexpr std::size_t field_header_size = 4;  // type u16, length u16

template <typename T>
T load_be(std::span<const std::byte> bytes) noexcept {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value = static_cast<T>((value << 8) | std::to_integer<T>(bytes[i]));
  }
  return value;
}

inline std::string_view as_text(std::span<const std::byte> value) noexcept {
  return {reinterpret_cast<const char*>(value.data()), value.size()};
}

// One protocol's framing constants.
struct framing {
  std::array<std::byte, 4> magic;
  std::uint8_t version = 1;
  std::size_t max_datagram = 1200;
  std::uint8_t query_type = 1;  // queries must be padded to query_size (anti-amplification)
  std::size_t query_size = 1024;
};

struct field {
  std::uint16_t code = 0;
  std::span<const std::byte> value;
  std::size_t offset = 0;  // of the field's header in the datagram
  bool last = false;       // nothing follows it
};

// Checks, in order, the size, magic, version and message type (and a query's padding), then
// calls `on_field(const field&)` for every field in datagram order; `on_field` returns an
// error_code, and the first error ends the walk. Fields that run past the end: Errc::truncated.
template <typename Errc, typename OnField>
boost::system::error_code walk(std::span<const std::byte> datagram, const framing& f,
                               std::uint8_t expected_type, OnField&& on_field) {
  if (datagram.size() > f.max_datagram) {
    return Errc::too_large;
  }
  if (datagram.size() < header_size) {
    return Errc::truncated;
  }
  if (!std::equal(f.magic.begin(), f.magic.end(), datagram.begin())) {
    return Errc::bad_magic;
  }
  if (std::to_integer<std::uint8_t>(datagram[4]) != f.version) {
    return Errc::unsupported_version;
  }
  if (std::to_integer<std::uint8_t>(datagram[5]) != expected_type) {
    return Errc::wrong_type;
  }
  if (expected_type == f.query_type && datagram.size() < f.query_size) {
    return Errc::unpadded;
  }
  auto rest = datagram.subspan(header_size);
  while (!rest.empty()) {
    if (rest.size() < field_header_size) {
      return Errc::truncated;
    }
    field current;
    current.offset = datagram.size() - rest.size();
    current.code = load_be<std::uint16_t>(rest.first(2));
    const auto length = load_be<std::uint16_t>(rest.subspan(2, 2));
    rest = rest.subspan(field_header_size);
    if (rest.size() < length) {
      return Errc::truncated;
    }
    current.value = rest.first(length);
    rest = rest.subspan(length);
    current.last = rest.empty();
    if (const boost::system::error_code ec = on_field(current)) {
      return ec;
    }
  }
  return {};
}

// The message type byte when `datagram` is at most max_datagram bytes and has this protocol's
// magic and version; the fields are not read.
inline std::optional<std::uint8_t> peek_type(std::span<const std::byte> datagram,
                                             const framing& f) noexcept {
  if (datagram.size() < header_size || datagram.size() > f.max_datagram ||
      !std::equal(f.magic.begin(), f.magic.end(), datagram.begin()) ||
      std::to_integer<std::uint8_t>(datagram[4]) != f.version) {
    return std::nullopt;
  }
  return std::to_integer<std::uint8_t>(datagram[5]);
}

constexpr bool is_visible_ascii(char c) noexcept { return c >= 0x21 && c <= 0x7e; }

// The rule both protocols' URL fields share: at most `max_length` visible ASCII characters
// (0x21..0x7e), starting with "http://", an absolute URI with a non-empty IPv4, bracketed IPv6 (no
// zone ID) or registered-name host, an optional port in 1..65535, and no userinfo or fragment.
bool is_http_url(std::string_view text, std::size_t max_length) noexcept;

// Which fields one message type carries, as masks of field codes (bit(code) = 1 << code; codes
// 0..31, so a codec's field codes must stay below 32):
//   allowed:    the fields defined for the message; other codes are skipped (a newer peer may
//               send fields this version does not know);
//   mandatory:  must each appear, else Errc::missing_field;
//   repeatable: may appear more than once; any other allowed field seen twice is
//               Errc::duplicate_field.
struct field_rules {
  std::uint32_t allowed = 0;
  std::uint32_t mandatory = 0;
  std::uint32_t repeatable = 0;
};

constexpr std::uint32_t bit(std::uint16_t code) noexcept { return std::uint32_t{1} << code; }

// walk() with `rules`: calls `on_field(const field&)` only for allowed fields, in datagram
// order, after the duplicate check; adds each one's bit to `seen`; after the last field, checks
// that every mandatory field was seen. Codes of 32 and above are beyond every defined code and
// are skipped.
template <typename Errc, typename OnField>
boost::system::error_code walk_fields(std::span<const std::byte> datagram, const framing& f,
                                      std::uint8_t expected_type, const field_rules& rules,
                                      std::uint32_t& seen, OnField&& on_field) {
  const auto walked = walk<Errc>(datagram, f, expected_type,
                                 [&](const field& current) -> boost::system::error_code {
                                   if (current.code >= 32) {
                                     return {};
                                   }
                                   const auto b = bit(current.code);
                                   if ((rules.allowed & b) == 0) {
                                     return {};
                                   }
                                   if ((seen & b) != 0 && (rules.repeatable & b) == 0) {
                                     return Errc::duplicate_field;
                                   }
                                   seen |= b;
                                   return on_field(current);
                                 });
  if (walked) {
    return walked;
  }
  if ((seen & rules.mandatory) != rules.mandatory) {
    return Errc::missing_field;
  }
  return {};
}

// Builds a datagram: the header, then fields in the order written.
template <typename FieldType>
class writer {
 public:
  writer(const framing& f, std::uint8_t message_type) {
    bytes_.reserve(f.max_datagram);
    bytes_.insert(bytes_.end(), f.magic.begin(), f.magic.end());
    bytes_.push_back(std::byte{f.version});
    bytes_.push_back(static_cast<std::byte>(message_type));
  }

  void field(FieldType type, std::span<const std::byte> value) {
    header(type, value.size());
    append(value);
  }
  void field(FieldType type, std::string_view text) { field(type, std::as_bytes(std::span(text))); }

  template <typename T>
  requires std::is_unsigned_v<T>
  void field_uint(FieldType type, T value) {
    header(type, sizeof(T));
    put_uint(value);
  }

  // For fields with an inner structure: the header, then put_uint and append for the value.
  // Contract: length fits a u16 (every field is bounded far below that).
  void header(FieldType type, std::size_t length) {
    put_uint(static_cast<std::uint16_t>(type));
    put_uint(static_cast<std::uint16_t>(length));
  }
  template <typename T>
  requires std::is_unsigned_v<T>
  void put_uint(T value) {
    for (std::size_t i = sizeof(T); i-- > 0;) {
      bytes_.push_back(static_cast<std::byte>((value >> (8 * i)) & 0xff));
    }
  }
  void append(std::span<const std::byte> value) {
    bytes_.insert(bytes_.end(), value.begin(), value.end());
  }
  void append(std::string_view text) { append(std::as_bytes(std::span(text))); }

  // A field of `padding` type filled with zeros, so that the datagram is `total` bytes.
  // Contract: size() + field_header_size <= total.
  void pad_to(FieldType padding, std::size_t total) {
    header(padding, total - bytes_.size() - field_header_size);
    bytes_.resize(total, std::byte{0});
  }

  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  std::size_t size() const noexcept { return bytes_.size(); }
  std::vector<std::byte> take() && { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

// How often a field may appear in one message.
enum class presence : std::uint8_t {
  optional,      // at most once
  mandatory,     // exactly once
  any_number,    // zero or more times
  at_least_one,  // one or more times
};

// One field of one message type, one row of the codec's table for it:
//   type:  the field's code;
//   how:   how often it appears (field_rules: a field is allowed by having a row);
//   read:  stores one occurrence into the message being decoded (`Decoded`); false when the
//          value breaks the field's rules (Errc::invalid_field). nullptr: the value is skipped
//          (padding);
//   write: writes the field's occurrences from the message being encoded (`Encoded`), none for
//          an absent optional field. nullptr: encode writes it itself (padding, a signature),
//          or never.
// Decoded and Encoded differ when decoding needs state the message does not keep (it then
// derives from Encoded, so the shapes below can name Encoded's members).
template <typename FieldType, typename Decoded, typename Encoded = Decoded>
struct field_spec {
  using field_type = FieldType;
  using decoded_type = Decoded;
  using encoded_type = Encoded;

  FieldType type{};
  presence how = presence::optional;
  bool (*read)(const field&, Decoded&) = nullptr;
  void (*write)(writer<FieldType>&, const Encoded&) = nullptr;
};

// A message type's rows in the order encode writes them, with the rules walk_fields checks.
template <typename Spec, std::size_t N>
struct message_fields {
  std::uint8_t type = 0;
  std::array<Spec, N> rows;
  field_rules rules;
};

// The message_fields of message type `type` (the codec's message_type) with `rows`. A field code
// of 32 or more does not compile (see field_rules).
template <typename MessageType, typename Spec, std::size_t N>
consteval message_fields<Spec, N> describe(MessageType type, const std::array<Spec, N>& rows) {
  field_rules rules;
  for (const auto& row : rows) {
    const auto code = static_cast<std::uint16_t>(row.type);
    if (code >= 32) {
      throw "field codes must stay below 32";
    }
    rules.allowed |= bit(code);
    if (row.how == presence::mandatory || row.how == presence::at_least_one) {
      rules.mandatory |= bit(code);
    }
    if (row.how == presence::any_number || row.how == presence::at_least_one) {
      rules.repeatable |= bit(code);
    }
  }
  return {static_cast<std::uint8_t>(type), rows, rules};
}

// `a` then `b`: for rows several message types share.
template <typename T, std::size_t A, std::size_t B>
constexpr std::array<T, A + B> join(const std::array<T, A>& a, const std::array<T, B>& b) {
  std::array<T, A + B> out{};
  std::copy(a.begin(), a.end(), out.begin());
  std::copy(b.begin(), b.end(), out.begin() + A);
  return out;
}

// walk_fields with the message type and rules of `fields`, each allowed field read by its row
// into `out`.
template <typename Errc, typename Spec, std::size_t N>
boost::system::error_code read_fields(std::span<const std::byte> datagram, const framing& f,
                                      const message_fields<Spec, N>& fields,
                                      typename Spec::decoded_type& out) {
  std::uint32_t seen = 0;
  return walk_fields<Errc>(datagram, f, fields.type, fields.rules, seen,
                           [&](const field& current) -> boost::system::error_code {
                             for (const auto& row : fields.rows) {
                               if (static_cast<std::uint16_t>(row.type) == current.code &&
                                   row.read != nullptr && !row.read(current, out)) {
                                 return Errc::invalid_field;
                               }
                             }
                             return {};
                           });
}

// read_fields into a new message.
template <typename Errc, typename Spec, std::size_t N>
boost::system::result<typename Spec::decoded_type> read_message(
    std::span<const std::byte> datagram, const framing& f, const message_fields<Spec, N>& fields) {
  typename Spec::decoded_type out{};
  if (const auto ec = read_fields<Errc>(datagram, f, fields, out)) {
    return ec;
  }
  return out;
}

// Writes the fields of `in` whose rows write, in table order.
template <typename Spec, std::size_t N>
void write_fields(writer<typename Spec::field_type>& w, const message_fields<Spec, N>& fields,
                  const typename Spec::encoded_type& in) {
  for (const auto& row : fields.rows) {
    if (row.write != nullptr) {
      row.write(w, in);
    }
  }
}

// Rows for the common value shapes. `Member` points to the value in Encoded (which Decoded is
// or derives from).

namespace detail {
template <typename T>
struct maybe {
  using type = T;
  static constexpr bool optional = false;
};
template <typename T>
struct maybe<std::optional<T>> {
  using type = T;
  static constexpr bool optional = true;
};
}  // namespace detail

// An unsigned integer in exactly its own size (u8, u16, u32, u64); a std::optional one is
// written when set.
template <typename Spec, auto Type, auto Member>
constexpr Spec uint_field(presence how) {
  using decoded = typename Spec::decoded_type;
  using encoded = typename Spec::encoded_type;
  using member = detail::maybe<std::remove_cvref_t<decltype(std::declval<encoded&>().*Member)>>;
  return {Type, how,
          [](const field& f, decoded& out) {
            using T = typename member::type;
            if (f.value.size() != sizeof(T)) {
              return false;
            }
            out.*Member = load_be<T>(f.value);
            return true;
          },
          [](writer<typename Spec::field_type>& w, const encoded& in) {
            if constexpr (member::optional) {
              if (in.*Member) {
                w.field_uint(Type, *(in.*Member));
              }
            } else {
              w.field_uint(Type, in.*Member);
            }
          }};
}

// A flag: present (one byte, 1) when the bool member is true, absent when false.
template <typename Spec, auto Type, auto Member>
constexpr Spec flag_field(presence how) {
  using decoded = typename Spec::decoded_type;
  using encoded = typename Spec::encoded_type;
  return {Type, how,
          [](const field& f, decoded& out) {
            if (f.value.size() != 1 || load_be<std::uint8_t>(f.value) != 1) {
              return false;
            }
            out.*Member = true;
            return true;
          },
          [](writer<typename Spec::field_type>& w, const encoded& in) {
            if (in.*Member) {
              w.field_uint(Type, std::uint8_t{1});
            }
          }};
}

// Text that `Valid(std::string_view)` accepts.
template <typename Spec, auto Type, auto Member, auto Valid>
constexpr Spec text_field(presence how) {
  using decoded = typename Spec::decoded_type;
  using encoded = typename Spec::encoded_type;
  return {Type, how,
          [](const field& f, decoded& out) {
            if (!Valid(as_text(f.value))) {
              return false;
            }
            out.*Member = as_text(f.value);
            return true;
          },
          [](writer<typename Spec::field_type>& w, const encoded& in) { w.field(Type, in.*Member); }};
}

// A fixed number of bytes (a std::array of std::byte); a std::optional one is written when set.
template <typename Spec, auto Type, auto Member>
constexpr Spec bytes_field(presence how) {
  using decoded = typename Spec::decoded_type;
  using encoded = typename Spec::encoded_type;
  using member = detail::maybe<std::remove_cvref_t<decltype(std::declval<encoded&>().*Member)>>;
  return {Type, how,
          [](const field& f, decoded& out) {
            typename member::type bytes{};
            if (f.value.size() != bytes.size()) {
              return false;
            }
            std::copy(f.value.begin(), f.value.end(), bytes.begin());
            out.*Member = bytes;
            return true;
          },
          [](writer<typename Spec::field_type>& w, const encoded& in) {
            if constexpr (member::optional) {
              if (in.*Member) {
                w.field(Type, *(in.*Member));
              }
            } else {
              w.field(Type, in.*Member);
            }
          }};
}

}  // namespace lanrelay::tlv
