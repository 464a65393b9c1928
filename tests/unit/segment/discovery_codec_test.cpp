#include "lanrelay/base/text_format.hpp"
#include "lanrelay/segment/discovery_codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace lanrelay::discovery {
namespace {

using bytes = std::vector<std::byte>;

std::string hex(std::span<const std::byte> data) { return hex_encode(data); }

sha256_digest counting_digest(std::uint8_t first) {
  sha256_digest d{};
  for (std::size_t i = 0; i < d.size(); ++i) {
    d[i] = static_cast<std::byte>(first + i);
  }
  return d;
}

// The examples of docs/protocol.md.
query example_query() {
  query q;
  q.transaction_id = 0x0123456789abcdefULL;
  q.sender_cookie = 0x1122334455667788ULL;
  q.kind = item_kind::pattern;
  q.name = "icrc";
  q.version = "1667900";
  return q;
}

offer example_offer() {
  offer o;
  o.transaction_id = 0x0123456789abcdefULL;
  o.sender_cookie = 0x8877665544332211ULL;
  o.role = responder_role::relay;
  o.kind = item_kind::pattern;
  o.name = "icrc";
  o.version = "1667900";
  o.size = 41'943'040;
  o.sha256 = counting_digest(0xa0);
  o.url = "http://10.1.2.3:4127/cache/pattern/icrc/1667900";
  o.free_slots = 7;
  return o;
}

// An agent that fell back three times to the upstream on a silent segment and once when every
// holder was busy (the fallbacks example of docs/protocol.md).
query reporting_query() {
  query q = example_query();
  q.fallbacks = {{fallback_reason::segment_silent, 3}, {fallback_reason::holders_busy, 1}};
  return q;
}

offer largest_offer() {
  offer o = example_offer();
  o.transaction_id = ~0ULL;
  o.sender_cookie = ~0ULL;
  o.role = responder_role::peer;
  o.kind = item_kind::installer;
  o.name = std::string(max_name_length, 'n');
  o.version = std::string(max_version_length, '9');
  o.size = ~0ULL;
  o.url = "http://host/" + std::string(max_url_length - 12, 'p');
  o.free_slots = 0xffff;
  o.pieces_held = 0xffffffffu;
  return o;
}

// Crafts datagrams field by field, including ones the encoder refuses to produce.
class packet {
 public:
  explicit packet(message_type type, std::uint8_t version = protocol_version) {
    data_.assign(magic.begin(), magic.end());
    data_.push_back(std::byte{version});
    data_.push_back(static_cast<std::byte>(type));
  }

  packet& raw_field(std::uint16_t type, std::span<const std::byte> value) {
    put16(type);
    put16(static_cast<std::uint16_t>(value.size()));
    data_.insert(data_.end(), value.begin(), value.end());
    return *this;
  }
  packet& field(field_type type, std::span<const std::byte> value) {
    return raw_field(static_cast<std::uint16_t>(type), value);
  }
  packet& field(field_type type, std::string_view text) {
    return field(type, std::as_bytes(std::span(text)));
  }
  packet& u64(field_type type, std::uint64_t v) { return field(type, be(v, 8)); }
  packet& u16(field_type type, std::uint16_t v) { return field(type, be(v, 2)); }
  packet& u8(field_type type, std::uint8_t v) { return field(type, be(v, 1)); }

  packet& pad_to(std::size_t total) {
    const std::size_t length = total - data_.size() - field_header_size;
    return raw_field(static_cast<std::uint16_t>(field_type::padding), bytes(length));
  }

  const bytes& data() const { return data_; }

 private:
  static bytes be(std::uint64_t v, std::size_t n) {
    bytes out(n);
    for (std::size_t i = 0; i < n; ++i) {
      out[n - 1 - i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
    }
    return out;
  }
  void put16(std::uint16_t v) {
    data_.push_back(static_cast<std::byte>(v >> 8));
    data_.push_back(static_cast<std::byte>(v & 0xff));
  }

  bytes data_;
};

// A valid query built by hand, without the fields in `omit`; fields in `extra` go before padding.
packet query_packet(std::initializer_list<field_type> omit = {}) {
  const auto skip = [&](field_type f) {
    return std::find(omit.begin(), omit.end(), f) != omit.end();
  };
  packet p(message_type::query);
  if (!skip(field_type::transaction_id)) {
    p.u64(field_type::transaction_id, 1);
  }
  if (!skip(field_type::sender_cookie)) {
    p.u64(field_type::sender_cookie, 2);
  }
  if (!skip(field_type::kind)) {
    p.u8(field_type::kind, 3);
  }
  if (!skip(field_type::name)) {
    p.field(field_type::name, "agent.msi");
  }
  if (!skip(field_type::version)) {
    p.field(field_type::version, "14.0");
  }
  return p;
}

packet offer_packet(std::initializer_list<field_type> omit = {}) {
  const auto skip = [&](field_type f) {
    return std::find(omit.begin(), omit.end(), f) != omit.end();
  };
  const auto digest = counting_digest(0);
  packet p(message_type::offer);
  if (!skip(field_type::transaction_id)) {
    p.u64(field_type::transaction_id, 1);
  }
  if (!skip(field_type::sender_cookie)) {
    p.u64(field_type::sender_cookie, 2);
  }
  if (!skip(field_type::kind)) {
    p.u8(field_type::kind, 1);
  }
  if (!skip(field_type::name)) {
    p.field(field_type::name, "agent");
  }
  if (!skip(field_type::version)) {
    p.field(field_type::version, "14.0.1234");
  }
  if (!skip(field_type::sha256)) {
    p.field(field_type::sha256, digest);
  }
  if (!skip(field_type::size)) {
    p.u64(field_type::size, 5);
  }
  if (!skip(field_type::url)) {
    p.field(field_type::url, "http://[fe80::1]:4127/cache/installer/agent/14.0.1234");
  }
  if (!skip(field_type::free_slots)) {
    p.u16(field_type::free_slots, 3);
  }
  if (!skip(field_type::role)) {
    p.u8(field_type::role, 2);
  }
  return p;
}

boost::system::error_code query_error(const bytes& data) {
  const auto r = decode_query(data);
  return r ? boost::system::error_code{} : r.error();
}

boost::system::error_code offer_error(const bytes& data) {
  const auto r = decode_offer(data);
  return r ? boost::system::error_code{} : r.error();
}

boost::system::error_code offer_error(const packet& p) { return offer_error(p.data()); }

boost::system::error_code padded_query_error(packet p) {
  return query_error(p.pad_to(query_datagram_size).data());
}

// --- round trips -------------------------------------------------------------------------------

TEST(discovery_codec, query_round_trips) {
  auto with_digest = example_query();
  with_digest.kind = item_kind::file;
  with_digest.name = "readme.txt";
  with_digest.version = "r2";
  with_digest.sha256 = counting_digest(7);
  with_digest.transaction_id = 0;
  with_digest.sender_cookie = ~0ULL;
  for (const auto& q : {example_query(), with_digest}) {
    const auto encoded = encode(q);
    ASSERT_TRUE(encoded) << encoded.error().message();
    EXPECT_EQ(encoded->size(), query_datagram_size);
    EXPECT_EQ(peek_type(*encoded), message_type::query);
    const auto decoded = decode_query(*encoded);
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(*decoded, q);
  }
}

TEST(discovery_codec, offer_round_trips) {
  for (const auto& o : {example_offer(), largest_offer()}) {
    const auto encoded = encode(o, max_datagram);
    ASSERT_TRUE(encoded) << encoded.error().message();
    EXPECT_EQ(peek_type(*encoded), message_type::offer);
    const auto decoded = decode_offer(*encoded);
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(*decoded, o);
  }
}

TEST(discovery_codec, every_kind_and_role_round_trips) {
  for (const auto kind : {item_kind::installer, item_kind::pattern, item_kind::file}) {
    for (const auto role : {responder_role::relay, responder_role::peer}) {
      auto o = example_offer();
      o.kind = kind;
      o.role = role;
      const auto encoded = encode(o, query_datagram_size);
      ASSERT_TRUE(encoded);
      EXPECT_EQ(decode_offer(*encoded).value(), o);
    }
    auto q = example_query();
    q.kind = kind;
    EXPECT_EQ(decode_query(encode(q).value()).value(), q);
  }
}

TEST(discovery_codec, hand_built_packets_decode) {
  const auto q = decode_query(query_packet().pad_to(query_datagram_size).data());
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->transaction_id, 1u);
  EXPECT_EQ(q->sender_cookie, 2u);
  EXPECT_EQ(q->kind, item_kind::file);
  EXPECT_EQ(q->name, "agent.msi");
  EXPECT_EQ(q->version, "14.0");
  EXPECT_FALSE(q->sha256);

  const auto o = decode_offer(offer_packet().data());
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->role, responder_role::peer);
  EXPECT_EQ(o->kind, item_kind::installer);
  EXPECT_EQ(o->size, 5u);
  EXPECT_EQ(o->free_slots, 3u);
  EXPECT_EQ(o->sha256, counting_digest(0));
  EXPECT_EQ(o->url, "http://[fe80::1]:4127/cache/installer/agent/14.0.1234");
}

// The hex dumps in docs/protocol.md are these bytes; change both together.
TEST(discovery_codec, golden_bytes_match_the_spec) {
  std::string expected_query =
      "4c4e52590101"
      "000100080123456789abcdef"
      "000200081122334455667788"
      "0003000102"
      "0004000469637263"
      "0005000731363637393030"
      "000b03c6";
  expected_query.resize(query_datagram_size * 2, '0');
  EXPECT_EQ(hex(encode(example_query()).value()), expected_query);

  const std::string expected_offer =
      "4c4e52590102"
      "000100080123456789abcdef"
      "000200088877665544332211"
      "0003000102"
      "0004000469637263"
      "0005000731363637393030"
      "00060020a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
      "000700080000000002800000"
      "0008002f687474703a2f2f31302e312e322e333a343132372f63616368652f7061747465726e2f696372632f"
      "31363637393030"
      "000900020007"
      "000a000101";
  EXPECT_EQ(hex(encode(example_offer(), query_datagram_size).value()), expected_offer);
}

// --- header errors -----------------------------------------------------------------------------

TEST(discovery_codec, truncation_at_every_offset_is_an_error) {
  const auto q = encode(example_query()).value();
  for (std::size_t n = 0; n < q.size(); ++n) {
    const auto r = decode_query(std::span(q).first(n));
    EXPECT_FALSE(r) << "query prefix of " << n << " bytes decoded";
  }
  // The largest offer ends with pieces_held, an optional field: without it, it is an offer too.
  const std::size_t without_pieces_held = encode(largest_offer(), max_datagram).value().size() -
                                          (field_header_size + 4);
  for (const auto& o : {encode(example_offer(), max_datagram).value(),
                        encode(largest_offer(), max_datagram).value()}) {
    for (std::size_t n = 0; n < o.size(); ++n) {
      const auto r = decode_offer(std::span(o).first(n));
      if (n == without_pieces_held && o.size() == without_pieces_held + field_header_size + 4) {
        EXPECT_TRUE(r);
        continue;
      }
      EXPECT_FALSE(r) << "offer prefix of " << n << " bytes decoded";
    }
  }
}

TEST(discovery_codec, truncation_inside_a_field_reports_truncated) {
  const auto o = encode(example_offer(), max_datagram).value();
  EXPECT_EQ(offer_error(bytes(o.begin(), o.begin() + 5)), errc::truncated);
  EXPECT_EQ(offer_error(bytes(o.begin(), o.begin() + 8)), errc::truncated);   // field header
  EXPECT_EQ(offer_error(bytes(o.begin(), o.begin() + 12)), errc::truncated);  // field value
  EXPECT_EQ(offer_error(bytes(o.begin(), o.end() - 1)), errc::truncated);
  EXPECT_EQ(offer_error(bytes(o.begin(), o.begin() + 6)), errc::missing_field);
  EXPECT_EQ(offer_error(bytes(o.begin(), o.end() - 5)), errc::missing_field);

  auto q = query_packet().pad_to(query_datagram_size).data();
  q.resize(query_datagram_size + 3);  // a partial field header after the padding
  EXPECT_EQ(query_error(q), errc::truncated);
}

TEST(discovery_codec, bad_magic) {
  auto o = encode(example_offer(), max_datagram).value();
  o[0] = std::byte{'X'};
  EXPECT_EQ(offer_error(o), errc::bad_magic);
  EXPECT_FALSE(peek_type(o));
  auto q = encode(example_query()).value();
  q[3] = std::byte{'y'};
  EXPECT_EQ(query_error(q), errc::bad_magic);
}

TEST(discovery_codec, unsupported_version) {
  for (const std::uint8_t version : {0, 2, 255}) {
    const auto o = offer_packet().data();
    auto changed = o;
    changed[4] = std::byte{version};
    EXPECT_EQ(offer_error(changed), errc::unsupported_version);
    EXPECT_FALSE(peek_type(changed));
    EXPECT_EQ(query_error(packet(message_type::query, version).pad_to(query_datagram_size).data()),
              errc::unsupported_version);
  }
}

TEST(discovery_codec, wrong_type) {
  const auto q = encode(example_query()).value();
  const auto o = encode(example_offer(), max_datagram).value();
  EXPECT_EQ(offer_error(q), errc::wrong_type);
  EXPECT_EQ(query_error(o), errc::wrong_type);
  auto unknown = o;
  unknown[5] = std::byte{9};
  EXPECT_EQ(offer_error(unknown), errc::wrong_type);
  EXPECT_FALSE(peek_type(unknown));
  unknown[5] = std::byte{0};
  EXPECT_EQ(query_error(unknown), errc::wrong_type);
}

TEST(discovery_codec, peek_type_needs_a_whole_header) {
  const auto q = encode(example_query()).value();
  EXPECT_FALSE(peek_type({}));
  EXPECT_FALSE(peek_type(std::span(q).first(header_size - 1)));
  EXPECT_EQ(peek_type(std::span(q).first(header_size)), message_type::query);
  EXPECT_FALSE(peek_type(bytes(max_datagram + 1)));
}

// --- size rules --------------------------------------------------------------------------------

TEST(discovery_codec, oversize_datagrams_are_rejected) {
  auto q = query_packet().pad_to(max_datagram).data();
  EXPECT_TRUE(decode_query(q));
  q = query_packet().pad_to(max_datagram + 1).data();
  EXPECT_EQ(query_error(q), errc::too_large);
  EXPECT_FALSE(peek_type(q));
  auto o = offer_packet().pad_to(max_datagram + 1).data();
  EXPECT_EQ(offer_error(o), errc::too_large);
  o = offer_packet().pad_to(max_datagram).data();
  EXPECT_TRUE(decode_offer(o));
}

TEST(discovery_codec, queries_are_padded_to_a_fixed_size) {
  auto q = example_query();
  q.name = std::string(max_name_length, 'a');
  q.version = std::string(max_version_length, '~');
  q.sha256 = counting_digest(1);
  for (const auto& candidate : {example_query(), q}) {
    const auto encoded = encode(candidate).value();
    EXPECT_EQ(encoded.size(), query_datagram_size);
    EXPECT_EQ(decode_query(encoded).value(), candidate);
  }
  EXPECT_LT(max_query_content_size + field_header_size, query_datagram_size);
}

TEST(discovery_codec, unpadded_queries_are_rejected) {
  EXPECT_EQ(query_error(query_packet().data()), errc::unpadded);
  EXPECT_EQ(query_error(query_packet().pad_to(query_datagram_size - 1).data()), errc::unpadded);
  EXPECT_TRUE(decode_query(query_packet().pad_to(query_datagram_size).data()));
  EXPECT_TRUE(decode_query(query_packet().pad_to(query_datagram_size + 1).data()));
  // Any bytes may pad, not only a padding field.
  auto q = query_packet();
  q.raw_field(0x4242, bytes(query_datagram_size - q.data().size() - field_header_size, std::byte{0x5a}));
  EXPECT_TRUE(decode_query(q.data()));
}

TEST(discovery_codec, offers_respect_the_size_limit) {
  const auto o = example_offer();
  const auto size = encode(o, max_datagram).value().size();
  EXPECT_TRUE(encode(o, size));
  EXPECT_EQ(encode(o, size - 1).error(), errc::too_large);
  EXPECT_EQ(encode(o, 0).error(), errc::too_large);
  EXPECT_EQ(encode(o, ~std::size_t{0}).value().size(), size);

  const auto largest = encode(largest_offer(), max_datagram).value();
  EXPECT_EQ(largest.size(), max_offer_size);
  EXPECT_TRUE(encode(largest_offer(), query_datagram_size)) << "a padded query must admit any offer";
}

TEST(discovery_codec, reply_fits) {
  EXPECT_TRUE(reply_fits(query_datagram_size, query_datagram_size));
  EXPECT_TRUE(reply_fits(query_datagram_size, max_offer_size));
  EXPECT_TRUE(reply_fits(100, 0));
  EXPECT_FALSE(reply_fits(100, 101));
  EXPECT_FALSE(reply_fits(0, 1));
  EXPECT_TRUE(reply_fits(max_datagram, max_datagram));
  EXPECT_FALSE(reply_fits(max_datagram + 10, max_datagram + 1));
}

// --- field rules -------------------------------------------------------------------------------

TEST(discovery_codec, missing_mandatory_fields) {
  for (const auto f : {field_type::transaction_id, field_type::sender_cookie, field_type::kind,
                       field_type::name, field_type::version}) {
    EXPECT_EQ(padded_query_error(query_packet({f})), errc::missing_field) << static_cast<int>(f);
  }
  for (const auto f : {field_type::transaction_id, field_type::sender_cookie, field_type::kind,
                       field_type::name, field_type::version, field_type::sha256, field_type::size,
                       field_type::url, field_type::free_slots, field_type::role}) {
    EXPECT_EQ(offer_error(offer_packet({f})), errc::missing_field) << static_cast<int>(f);
  }
  EXPECT_EQ(offer_error(packet(message_type::offer).data()), errc::missing_field);
}

TEST(discovery_codec, duplicate_fields) {
  EXPECT_EQ(padded_query_error(query_packet().field(field_type::name, "other")),
            errc::duplicate_field);
  EXPECT_EQ(padded_query_error(query_packet().u64(field_type::transaction_id, 1)),
            errc::duplicate_field);
  auto twice_padded = query_packet().pad_to(query_datagram_size - 10);
  twice_padded.pad_to(query_datagram_size);
  EXPECT_EQ(query_error(twice_padded.data()), errc::duplicate_field);
  EXPECT_EQ(offer_error(offer_packet().u8(field_type::role, 1)), errc::duplicate_field);
  EXPECT_EQ(offer_error(offer_packet().field(field_type::sha256, counting_digest(1))),
            errc::duplicate_field);
  // Fields are checked in datagram order: an invalid first copy is reported before the repeat.
  EXPECT_EQ(
      offer_error(offer_packet({field_type::role}).u8(field_type::role, 9).u8(field_type::role, 1)),
      errc::invalid_field);
}

TEST(discovery_codec, unknown_fields_are_skipped) {
  const std::byte junk[] = {std::byte{1}, std::byte{2}, std::byte{3}};
  auto o = packet(message_type::offer);
  o.raw_field(0x0000, junk).raw_field(0x7777, junk).raw_field(0x7777, {});
  auto base = offer_packet().data();
  auto with_unknown = o.data();
  with_unknown.insert(with_unknown.end(), base.begin() + header_size, base.end());
  packet tail(message_type::offer);
  tail.raw_field(0xffff, junk).raw_field(0x001f, junk).raw_field(0x000c, junk);
  with_unknown.insert(with_unknown.end(), tail.data().begin() + header_size, tail.data().end());
  const auto decoded = decode_offer(with_unknown);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(*decoded, decode_offer(base).value());

  // Offer-only fields in a query are not defined there, so they are skipped too.
  auto q = query_packet()
               .field(field_type::url, "not a url")
               .u8(field_type::role, 77)
               .field(field_type::size, "?")
               .raw_field(0x1234, junk)
               .pad_to(query_datagram_size)
               .data();
  const auto query_decoded = decode_query(q);
  ASSERT_TRUE(query_decoded) << query_decoded.error().message();
  EXPECT_EQ(*query_decoded, decode_query(query_packet().pad_to(query_datagram_size).data()).value());
}

TEST(discovery_codec, fixed_size_fields_need_their_exact_length) {
  const auto digest = counting_digest(0);
  const std::byte seven[7] = {};
  const std::byte nine[9] = {};
  EXPECT_EQ(
      padded_query_error(
          query_packet({field_type::transaction_id}).field(field_type::transaction_id, seven)),
      errc::invalid_field);
  EXPECT_EQ(padded_query_error(
                query_packet({field_type::sender_cookie}).field(field_type::sender_cookie, nine)),
            errc::invalid_field);
  EXPECT_EQ(padded_query_error(query_packet({field_type::kind}).u16(field_type::kind, 1)),
            errc::invalid_field);
  EXPECT_EQ(
      padded_query_error(query_packet().field(field_type::sha256, std::span(digest).first(31))),
      errc::invalid_field);
  EXPECT_EQ(offer_error(offer_packet({field_type::size}).field(field_type::size, seven)),
            errc::invalid_field);
  EXPECT_EQ(offer_error(offer_packet({field_type::free_slots}).u8(field_type::free_slots, 1)),
            errc::invalid_field);
  EXPECT_EQ(offer_error(offer_packet({field_type::role}).u16(field_type::role, 1)),
            errc::invalid_field);
}

TEST(discovery_codec, kind_and_role_codes_are_checked) {
  for (const std::uint8_t code : {0, 4, 255}) {
    EXPECT_EQ(padded_query_error(query_packet({field_type::kind}).u8(field_type::kind, code)),
              errc::invalid_field);
  }
  for (const std::uint8_t code : {0, 3, 255}) {
    EXPECT_EQ(offer_error(offer_packet({field_type::role}).u8(field_type::role, code)),
              errc::invalid_field);
  }
}

TEST(discovery_codec, names_are_validated) {
  for (const std::string& name : {std::string{}, std::string("../etc"), std::string(".hidden"),
                                  std::string("-x"), std::string("a b"), std::string("a/b"),
                                  std::string(max_name_length + 1, 'a'), std::string("a\0b", 3)}) {
    EXPECT_EQ(padded_query_error(query_packet({field_type::name}).field(field_type::name, name)),
              errc::invalid_field)
        << name;
    auto q = example_query();
    q.name = name;
    EXPECT_EQ(encode(q).error(), errc::invalid_field) << name;
    auto o = example_offer();
    o.name = name;
    EXPECT_EQ(encode(o, max_datagram).error(), errc::invalid_field) << name;
  }
}

TEST(discovery_codec, versions_are_validated) {
  EXPECT_TRUE(is_valid_version_text("14.0.1234"));
  EXPECT_TRUE(is_valid_version_text("!~"));
  EXPECT_TRUE(is_valid_version_text(std::string(max_version_length, 'v')));
  for (const std::string& version :
       {std::string{}, std::string("1 2"), std::string("1\n"), std::string("\x7f"),
        std::string("v\xc3\xa9"), std::string(max_version_length + 1, 'v'), std::string("1\0", 2)}) {
    EXPECT_FALSE(is_valid_version_text(version)) << version;
    EXPECT_EQ(offer_error(offer_packet({field_type::version}).field(field_type::version, version)),
              errc::invalid_field)
        << version;
    auto q = example_query();
    q.version = version;
    EXPECT_EQ(encode(q).error(), errc::invalid_field) << version;
  }
}

TEST(discovery_codec, urls_are_validated) {
  for (const std::string_view url :
       {"http://10.1.2.3:4127/cache/pattern/icrc/1667900", "http://[fe80::1]:4127/x",
        "http://relay.example/x?y=1", "http://h", "http://h:1/", "http://h:65535/"}) {
    EXPECT_TRUE(is_valid_offer_url(url)) << url;
  }
  const std::string too_long = "http://h/" + std::string(max_url_length - 8, 'x');
  EXPECT_TRUE(is_valid_offer_url(std::string_view(too_long).substr(0, max_url_length)));
  for (const std::string_view url :
       {std::string_view(too_long), std::string_view(""), std::string_view("https://h/"),
        std::string_view("HTTP://h/"), std::string_view("ftp://h/"), std::string_view("http://"),
        std::string_view("http:///x"), std::string_view("http://u:p@h/"),
        std::string_view("http://h/#frag"), std::string_view("http://h/a b"),
        std::string_view("http://h:0/"), std::string_view("http://h:65536/"),
        std::string_view("http://h:/"), std::string_view("http://[fe80::1%25eth0]/"),
        std::string_view("http://[v1.x]/"), std::string_view("http://h/\x80"),
        std::string_view("http://h/\0", 10)}) {
    EXPECT_FALSE(is_valid_offer_url(url)) << url;
    EXPECT_EQ(offer_error(offer_packet({field_type::url}).field(field_type::url, url)),
              errc::invalid_field)
        << url;
    auto o = example_offer();
    o.url = std::string(url);
    EXPECT_EQ(encode(o, max_datagram).error(), errc::invalid_field) << url;
  }
}

TEST(discovery_codec, encode_rejects_out_of_range_enums) {
  auto q = example_query();
  q.kind = static_cast<item_kind>(42);
  EXPECT_EQ(encode(q).error(), errc::invalid_field);
  auto o = example_offer();
  o.role = static_cast<responder_role>(0);
  EXPECT_EQ(encode(o, max_datagram).error(), errc::invalid_field);
  o = example_offer();
  o.kind = static_cast<item_kind>(-1);
  EXPECT_EQ(encode(o, max_datagram).error(), errc::invalid_field);
}

// --- errors ------------------------------------------------------------------------------------

TEST(discovery_codec, error_category_names_every_reason) {
  EXPECT_STREQ(discovery_category().name(), "lanrelay.discovery");
  std::vector<std::string> messages;
  for (int e = static_cast<int>(errc::truncated); e <= static_cast<int>(errc::unpadded); ++e) {
    const boost::system::error_code ec = static_cast<errc>(e);
    EXPECT_EQ(&ec.category(), &discovery_category());
    EXPECT_FALSE(ec.message().empty());
    EXPECT_EQ(std::find(messages.begin(), messages.end(), ec.message()), messages.end());
    messages.push_back(ec.message());
  }
  const boost::system::error_code unknown(99, discovery_category());
  EXPECT_NE(unknown.message().find("99"), std::string::npos);
}

// --- fallback reports --------------------------------------------------------------------------

TEST(discovery_codec, fallback_reports_round_trip_and_match_the_spec) {
  const auto encoded = encode(reporting_query());
  ASSERT_TRUE(encoded) << encoded.error().message();
  EXPECT_EQ(encoded->size(), query_datagram_size);
  // The example query's fields, then the fallbacks field before the (shorter) padding.
  std::string expected =
      "4c4e52590101"
      "000100080123456789abcdef"
      "000200081122334455667788"
      "0003000102"
      "0004000469637263"
      "0005000731363637393030"
      "000e0006010003030001"
      "000b03bc";
  expected.resize(query_datagram_size * 2, '0');
  EXPECT_EQ(hex(*encoded), expected);
  EXPECT_EQ(decode_query(*encoded).value(), reporting_query());

  // Every reason at the largest count.
  auto all = example_query();
  for (std::uint8_t code = 1; code <= fallback_reason_count; ++code) {
    all.fallbacks.push_back({static_cast<fallback_reason>(code), 0xffff});
    EXPECT_FALSE(to_string(static_cast<fallback_reason>(code)).empty());
  }
  EXPECT_EQ(decode_query(encode(all).value()).value(), all);
  EXPECT_TRUE(to_string(static_cast<fallback_reason>(0)).empty());
}

TEST(discovery_codec, fallback_entries_are_checked) {
  const auto with = [](std::vector<std::uint8_t> value) {
    bytes raw;
    for (const auto b : value) {
      raw.push_back(std::byte{b});
    }
    return query_error(query_packet().field(field_type::fallbacks, raw).pad_to(query_datagram_size).data());
  };
  EXPECT_EQ(with({1, 0, 5}), boost::system::error_code{});
  EXPECT_EQ(with({}), errc::invalid_field);                    // empty
  EXPECT_EQ(with({1, 0}), errc::invalid_field);                // not whole entries
  EXPECT_EQ(with({1, 0, 5, 2}), errc::invalid_field);
  EXPECT_EQ(with({1, 0, 0}), errc::invalid_field);             // a count of 0
  EXPECT_EQ(with({1, 0, 5, 1, 0, 6}), errc::invalid_field);    // a reason twice
  EXPECT_EQ(with({77, 0, 5, 77, 0, 6}), errc::invalid_field);  // an unknown one twice too
  std::vector<std::uint8_t> nine;
  for (std::uint8_t code = 1; code <= 9; ++code) {
    nine.insert(nine.end(), {code, 0, 1});
  }
  EXPECT_EQ(with(nine), errc::invalid_field);  // more than max_fallback_entries
  nine.resize(fallback_entry_size * max_fallback_entries);
  EXPECT_EQ(with(nine), boost::system::error_code{});

  // A reason this version does not know is skipped; the known ones are kept in order.
  bytes raw{std::byte{200}, std::byte{0}, std::byte{9}, std::byte{4}, std::byte{1}, std::byte{0}};
  const auto q = decode_query(query_packet().field(field_type::fallbacks, raw).pad_to(query_datagram_size).data());
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->fallbacks, (std::vector<fallback_count>{{fallback_reason::holders_failed, 256}}));
  EXPECT_EQ(padded_query_error(query_packet()
                                   .field(field_type::fallbacks, raw)
                                   .field(field_type::fallbacks, raw)),
            errc::duplicate_field);

  // The field is defined for queries only: an offer carrying it is read as before.
  EXPECT_EQ(decode_offer(offer_packet().field(field_type::fallbacks, "x").data()).value(),
            decode_offer(offer_packet().data()).value());
}

TEST(discovery_codec, encode_refuses_fallbacks_a_receiver_would_reject) {
  for (const auto& bad : std::vector<std::vector<fallback_count>>{
           {{fallback_reason::segment_silent, 0}},
           {{static_cast<fallback_reason>(0), 1}},
           {{static_cast<fallback_reason>(fallback_reason_count + 1), 1}},
           {{fallback_reason::holders_busy, 1}, {fallback_reason::holders_busy, 2}},
           std::vector<fallback_count>(max_fallback_entries + 1, {fallback_reason::segment_silent, 1})}) {
    auto q = example_query();
    q.fallbacks = bad;
    EXPECT_EQ(encode(q).error(), errc::invalid_field);
  }
  // The largest query still leaves room for its padding.
  EXPECT_LE(max_query_content_size + field_header_size, query_datagram_size);
}

// --- robustness --------------------------------------------------------------------------------

// A small deterministic stand-in for the fuzzer, so every unit test run exercises mutations.
TEST(discovery_codec, mutated_packets_never_break_the_round_trip) {
  std::mt19937_64 rng(4126);
  const std::vector<bytes> seeds = {
      encode(example_query()).value(), encode(reporting_query()).value(),
      encode(example_offer(), max_datagram).value(),
      encode(largest_offer(), max_datagram).value(), offer_packet().data()};
  for (int round = 0; round < 20'000; ++round) {
    bytes data = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < edits; ++i) {
      switch (rng() % 4) {
        case 0:
          data[rng() % data.size()] = static_cast<std::byte>(rng());
          break;
        case 1:
          data.resize(rng() % (data.size() + 1));
          break;
        case 2:
          data.insert(data.begin() + static_cast<std::ptrdiff_t>(rng() % (data.size() + 1)),
                      static_cast<std::byte>(rng()));
          break;
        default:
          if (data.size() > header_size) {
            data.erase(data.begin() + static_cast<std::ptrdiff_t>(
                                          header_size + rng() % (data.size() - header_size)));
          }
          break;
      }
      if (data.empty()) {
        break;
      }
    }
    if (const auto q = decode_query(data)) {
      const auto again = encode(*q);
      ASSERT_TRUE(again);
      ASSERT_LE(again->size(), data.size());
      ASSERT_EQ(decode_query(*again).value(), *q);
    }
    if (const auto o = decode_offer(data)) {
      const auto again = encode(*o, data.size());
      ASSERT_TRUE(again);
      ASSERT_EQ(decode_offer(*again).value(), *o);
    }
  }
}

// --- fuzz corpus -------------------------------------------------------------------------------

std::filesystem::path corpus_dir() {
  return (std::filesystem::path(__FILE__).parent_path() / "../../fuzz/corpus/discovery")
      .lexically_normal();
}

std::vector<std::pair<std::string, bytes>> seed_packets() {
  auto q_sha = example_query();
  q_sha.kind = item_kind::installer;
  q_sha.name = "agent-x64.msi";
  q_sha.version = "14.0.1234";
  q_sha.sha256 = counting_digest(0x40);
  auto peer = example_offer();
  peer.role = responder_role::peer;
  peer.url = "http://[fe80::1c2:3ff:fe04:506]:4127/cache/pattern/icrc/1667900";
  peer.free_slots = 0;
  auto partial_query = example_query();
  partial_query.partial_ok = true;
  return {
      {"query_pattern", encode(example_query()).value()},
      {"query_installer_sha256", encode(q_sha).value()},
      {"query_fallbacks", encode(reporting_query()).value()},
      {"offer_relay", encode(example_offer(), max_datagram).value()},
      {"offer_peer_ipv6", encode(peer, max_datagram).value()},
      {"offer_largest", encode(largest_offer(), max_datagram).value()},
      {"offer_unknown_fields", offer_packet().raw_field(0x0100, bytes(3, std::byte{0xee})).data()},
      {"query_partial_ok", encode(partial_query).value()}};
}

// --- swarming: partial_ok and pieces_held ----------------------------------------------------

TEST(discovery_codec, partial_ok_and_pieces_held_round_trip) {
  auto q = example_query();
  q.partial_ok = true;
  const auto encoded_query = encode(q).value();
  EXPECT_EQ(encoded_query.size(), query_datagram_size);
  EXPECT_EQ(decode_query(encoded_query).value(), q);
  // Without it, the query's bytes are those of before (golden_bytes_match_the_spec).
  EXPECT_FALSE(decode_query(encode(example_query()).value()).value().partial_ok);

  auto o = example_offer();
  o.pieces_held = 3;
  const auto encoded_offer = encode(o, query_datagram_size).value();
  EXPECT_EQ(encoded_offer.size(), encode(example_offer(), query_datagram_size).value().size() + 8);
  EXPECT_EQ(decode_offer(encoded_offer).value(), o);
  EXPECT_FALSE(decode_offer(encode(example_offer(), query_datagram_size).value()).value().pieces_held);
}

TEST(discovery_codec, partial_ok_and_pieces_held_are_checked) {
  EXPECT_EQ(padded_query_error(query_packet().u8(field_type::partial_ok, 0)), errc::invalid_field);
  EXPECT_EQ(padded_query_error(query_packet().u16(field_type::partial_ok, 1)), errc::invalid_field);
  EXPECT_EQ(padded_query_error(query_packet().u8(field_type::partial_ok, 1).u8(field_type::partial_ok, 1)),
            errc::duplicate_field);
  EXPECT_EQ(offer_error(offer_packet().u16(field_type::pieces_held, 1)), errc::invalid_field);
  EXPECT_EQ(offer_error(offer_packet().u64(field_type::pieces_held, 1)), errc::invalid_field);
  // pieces_held means nothing in a query, partial_ok nothing in an offer: skipped like unknown codes.
  EXPECT_TRUE(decode_query(query_packet().u8(field_type::pieces_held, 9).pad_to(query_datagram_size).data()));
  EXPECT_TRUE(decode_offer(offer_packet().u8(field_type::partial_ok, 0).data()));
}

// Regenerates the seeds: LANRELAY_WRITE_DISCOVERY_SEEDS=1 unit_segment
//   --gtest_also_run_disabled_tests --gtest_filter='*write_fuzz_seeds*'
TEST(discovery_codec, DISABLED_write_fuzz_seeds) {
  if (std::getenv("LANRELAY_WRITE_DISCOVERY_SEEDS") == nullptr) {
    GTEST_SKIP() << "set LANRELAY_WRITE_DISCOVERY_SEEDS=1 to write " << corpus_dir();
  }
  std::filesystem::create_directories(corpus_dir());
  for (const auto& [name, data] : seed_packets()) {
    std::ofstream out(corpus_dir() / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    ASSERT_TRUE(out.good()) << name;
  }
}

TEST(discovery_codec, fuzz_seeds_are_current) {
  if (!std::filesystem::is_directory(corpus_dir())) {
    GTEST_SKIP() << "no corpus at " << corpus_dir();
  }
  for (const auto& [name, data] : seed_packets()) {
    std::ifstream in(corpus_dir() / name, std::ios::binary);
    ASSERT_TRUE(in) << "missing seed " << name;
    const std::vector<char> text(std::istreambuf_iterator<char>(in), {});
    const auto stored =
        bytes(std::as_bytes(std::span(text)).begin(), std::as_bytes(std::span(text)).end());
    EXPECT_EQ(hex(stored), hex(data)) << "seed " << name << " is stale; regenerate it";
    EXPECT_TRUE(decode_query(stored) || decode_offer(stored)) << name;
  }
}

}  // namespace
}  // namespace lanrelay::discovery
