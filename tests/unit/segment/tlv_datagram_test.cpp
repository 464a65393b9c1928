// tlv::walk_fields: the field rules both segment codecs parse with (allowed, mandatory,
// repeatable), reported in the caller's error category; tlv::describe, read_fields and
// write_fields: the field tables the codecs state their messages with. The codecs' own tests cover each
// protocol's fields and golden bytes.

#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/tlv_datagram.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::tlv {
namespace {

using errc = discovery::errc;  // any codec's enum with the walker's enumerators

constexpr framing test{{std::byte{'T'}, std::byte{'E'}, std::byte{'S'}, std::byte{'T'}}, 1, 1200, 1,
                        64};
constexpr std::uint8_t answer = 2;
constexpr std::uint16_t id = 1, entry = 2, optional = 3, unknown = 4, beyond = 40;
constexpr field_rules rules{bit(id) | bit(entry) | bit(optional), bit(id) | bit(entry),
                             bit(entry)};

std::vector<std::byte> datagram(const std::vector<std::uint16_t>& codes) {
  writer<std::uint16_t> w(test, answer);
  for (const auto code : codes) {
    w.field(code, "x");
  }
  return std::move(w).take();
}

struct walked {
  boost::system::error_code ec;
  std::vector<std::uint16_t> visited;
  std::uint32_t seen = 0;
};

walked walk_rules(const std::vector<std::uint16_t>& codes) {
  walked out;
  const auto bytes = datagram(codes);
  out.ec = walk_fields<errc>(bytes, test, answer, rules, out.seen,
                             [&](const field& f) -> boost::system::error_code {
                               out.visited.push_back(f.code);
                               return {};
                             });
  return out;
}

TEST(tlv_walk_fields, visits_allowed_fields_in_order_and_skips_the_rest) {
  const auto r = walk_rules({entry, unknown, id, beyond, entry, optional});
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.visited, (std::vector<std::uint16_t>{entry, id, entry, optional}));
  EXPECT_EQ(r.seen, bit(id) | bit(entry) | bit(optional));
}

TEST(tlv_walk_fields, a_field_that_is_not_repeatable_twice_is_a_duplicate) {
  const auto r = walk_rules({id, entry, optional, optional});
  EXPECT_EQ(r.ec, errc::duplicate_field);
  EXPECT_EQ(r.ec.category(), discovery::discovery_category());
  EXPECT_EQ(r.visited.size(), 3u) << "the duplicate is not handed to the caller";
}

TEST(tlv_walk_fields, a_missing_mandatory_field_is_reported_after_the_walk) {
  EXPECT_EQ(walk_rules({entry, entry, optional}).ec, errc::missing_field);
  EXPECT_EQ(walk_rules({id, unknown}).ec, errc::missing_field);
  EXPECT_FALSE(walk_rules({id, entry}).ec);
}

TEST(tlv_walk_fields, the_callers_error_ends_the_walk) {
  const auto bytes = datagram({id, entry, optional});
  std::uint32_t seen = 0;
  int calls = 0;
  const auto ec = walk_fields<errc>(bytes, test, answer, rules, seen,
                                    [&](const field&) -> boost::system::error_code {
                                      return ++calls == 2 ? errc::invalid_field
                                                          : boost::system::error_code{};
                                    });
  EXPECT_EQ(ec, errc::invalid_field);
  EXPECT_EQ(calls, 2);
}

// A message of the kind a codec describes: an id, a list of at least one entry, optional bytes.
struct message {
  std::uint32_t id = 0;
  std::vector<std::string> entries;
  std::optional<std::array<std::byte, 2>> extra;
};

using message_field = field_spec<std::uint16_t, message>;

bool not_empty(std::string_view text) noexcept { return !text.empty(); }

constexpr auto message_fields = describe(answer, std::to_array<message_field>({
    uint_field<message_field, id, &message::id>(presence::mandatory),
    {entry, presence::at_least_one,
     [](const field& f, message& out) {
       out.entries.emplace_back(as_text(f.value));
       return not_empty(out.entries.back());
     },
     [](writer<std::uint16_t>& w, const message& in) {
       for (const auto& e : in.entries) {
         w.field(entry, e);
       }
     }},
    bytes_field<message_field, optional, &message::extra>(presence::optional),
    {unknown, presence::any_number},
}));

TEST(tlv_field_table, rules_follow_each_rows_presence) {
  EXPECT_EQ(message_fields.rules.allowed, bit(id) | bit(entry) | bit(optional) | bit(unknown));
  EXPECT_EQ(message_fields.rules.mandatory, bit(id) | bit(entry));
  EXPECT_EQ(message_fields.rules.repeatable, bit(entry) | bit(unknown));
}

TEST(tlv_field_table, writes_in_table_order_and_reads_back) {
  const message sent{7, {"a", "bc"}, std::array{std::byte{1}, std::byte{2}}};
  writer<std::uint16_t> w(test, answer);
  write_fields(w, message_fields, sent);
  const auto bytes = std::move(w).take();
  // id (4 + 4), two entries (4 + 1, 4 + 2), extra (4 + 2) after the 6-byte header.
  ASSERT_EQ(bytes.size(), header_size + 8 + 5 + 6 + 6);
  EXPECT_EQ(load_be<std::uint16_t>(std::span(bytes).subspan(header_size)), id);

  message got;
  const auto ec = read_fields<errc>(bytes, test, message_fields, got);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(got.id, 7u);
  EXPECT_EQ(got.entries, sent.entries);
  EXPECT_EQ(got.extra, sent.extra);
}

TEST(tlv_field_table, a_value_its_row_refuses_is_an_invalid_field) {
  writer<std::uint16_t> w(test, answer);
  w.field_uint(id, std::uint32_t{1});
  w.field(entry, "");
  message got;
  EXPECT_EQ(read_fields<errc>(w.bytes(), test, message_fields, got), errc::invalid_field);

  writer<std::uint16_t> short_id(test, answer);
  short_id.field_uint(id, std::uint16_t{1});
  short_id.field(entry, "a");
  EXPECT_EQ(read_fields<errc>(short_id.bytes(), test, message_fields, got),
            errc::invalid_field);
}

TEST(tlv_field_table, a_skipped_row_is_still_counted_and_an_absent_optional_is_not_written) {
  const message sent{1, {"a"}, std::nullopt};
  writer<std::uint16_t> w(test, answer);
  write_fields(w, message_fields, sent);
  w.field(unknown, "x");
  w.field(unknown, "y");
  message got;
  EXPECT_FALSE(read_fields<errc>(w.bytes(), test, message_fields, got));
  EXPECT_FALSE(got.extra);
  EXPECT_EQ(w.size(), header_size + 8 + 5 + 5 + 5);
  writer<std::uint16_t> no_entry(test, answer);
  no_entry.field_uint(id, std::uint32_t{1});
  EXPECT_EQ(read_fields<errc>(no_entry.bytes(), test, message_fields, got),
            errc::missing_field);
}

}  // namespace
}  // namespace lanrelay::tlv
