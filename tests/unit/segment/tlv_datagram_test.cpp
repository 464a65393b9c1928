// tlv::walk_fields: the field rules both segment codecs parse with (allowed, mandatory,
// repeatable), reported in the caller's error category. The codecs' own tests cover each
// protocol's fields and golden bytes.

#include "lanrelay/segment/discovery_codec.hpp"
#include "lanrelay/segment/tlv_datagram.hpp"

#include <gtest/gtest.h>

#include <cstdint>
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

}  // namespace
}  // namespace lanrelay::tlv
