#include "lanrelay/relay/range.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lanrelay::relay {
namespace {

struct range_case {
  std::string value;
  std::uint64_t size;
  range_result expected;
};

constexpr range_result ignore{range_verdict::ignore, 0, 0};
constexpr range_result unsatisfiable{range_verdict::unsatisfiable, 0, 0};
constexpr range_result bytes(std::uint64_t first, std::uint64_t length) {
  return {range_verdict::satisfiable, first, length};
}

void PrintTo(const range_case& c, std::ostream* os) { *os << '"' << c.value << "\" size " << c.size; }

class relay_range : public testing::TestWithParam<range_case> {};

TEST_P(relay_range, parses) {
  const auto& c = GetParam();
  const range_result got = parse_range(c.value, c.size);
  EXPECT_EQ(got.verdict, c.expected.verdict);
  EXPECT_EQ(got.first, c.expected.first);
  EXPECT_EQ(got.length, c.expected.length);
}

INSTANTIATE_TEST_SUITE_P(
    table, relay_range,
    testing::Values(
        // a-b
        range_case{"bytes=0-99", 1000, bytes(0, 100)},
        range_case{"bytes=0-0", 1000, bytes(0, 1)},
        range_case{"bytes=999-999", 1000, bytes(999, 1)},
        range_case{"bytes=500-2000", 1000, bytes(500, 500)},
        range_case{"bytes=0-18446744073709551615", 1000, bytes(0, 1000)},
        range_case{"bytes=0-99999999999999999999999", 1000, bytes(0, 1000)},
        range_case{"BYTES=1-2", 1000, bytes(1, 2)},
        range_case{"Bytes=1-2", 1000, bytes(1, 2)},
        range_case{"  bytes=1-2  ", 1000, bytes(1, 2)},
        range_case{"bytes= 1-2 ", 1000, bytes(1, 2)},
        range_case{"bytes=1-2,", 1000, bytes(1, 2)},
        range_case{"bytes=,1-2", 1000, bytes(1, 2)},
        // a-
        range_case{"bytes=0-", 1000, bytes(0, 1000)},
        range_case{"bytes=999-", 1000, bytes(999, 1)},
        range_case{"bytes=1000-", 1000, unsatisfiable},
        range_case{"bytes=1000-2000", 1000, unsatisfiable},
        range_case{"bytes=99999999999999999999999-", 1000, unsatisfiable},
        range_case{"bytes=0-", 0, unsatisfiable},
        range_case{"bytes=0-0", 0, unsatisfiable},
        // -n
        range_case{"bytes=-1", 1000, bytes(999, 1)},
        range_case{"bytes=-100", 1000, bytes(900, 100)},
        range_case{"bytes=-1000", 1000, bytes(0, 1000)},
        range_case{"bytes=-5000", 1000, bytes(0, 1000)},
        range_case{"bytes=-99999999999999999999999", 1000, bytes(0, 1000)},
        range_case{"bytes=-0", 1000, unsatisfiable},
        range_case{"bytes=-5", 0, ignore},
        // several ranges: serve everything
        range_case{"bytes=0-1,5-6", 1000, ignore},
        range_case{"bytes=0-1, -5", 1000, ignore},
        range_case{"bytes=0-1,2000-3000", 1000, ignore},
        range_case{"bytes=0-1, bytes=2-3", 1000, ignore},
        // invalid syntax: ignored
        range_case{"", 1000, ignore},
        range_case{"bytes", 1000, ignore},
        range_case{"bytes=", 1000, ignore},
        range_case{"bytes=,", 1000, ignore},
        range_case{"bytes=-", 1000, ignore},
        range_case{"bytes=5", 1000, ignore},
        range_case{"bytes=5-4", 1000, ignore},
        range_case{"bytes=a-b", 1000, ignore},
        range_case{"bytes=1-2x", 1000, ignore},
        range_case{"bytes=+1-2", 1000, ignore},
        range_case{"bytes=-1-2", 1000, ignore},
        range_case{"bytes=1 - 2", 1000, ignore},
        range_case{"bytes=0x10-0x20", 1000, ignore},
        range_case{"bytes=1--2", 1000, ignore},
        range_case{"items=0-1", 1000, ignore},
        range_case{"bytes 0-1", 1000, ignore},
        range_case{"bytes:0-1", 1000, ignore},
        range_case{"bytesx=0-1", 1000, ignore}));

TEST(relay_content_range, formats) {
  EXPECT_EQ(content_range(bytes(0, 100), 1000), "bytes 0-99/1000");
  EXPECT_EQ(content_range(bytes(999, 1), 1000), "bytes 999-999/1000");
}

class relay_etag : public testing::Test {
 protected:
  relay_etag() {
    digest_.fill(std::byte{0xab});
    etag_ = make_etag(digest_);
    other_ = "\"" + std::string(64, '0') + "\"";
  }
  sha256_digest digest_{};
  std::string etag_;
  std::string other_;
};

TEST_F(relay_etag, is_the_quoted_sha256) {
  std::string hex;
  for (int i = 0; i < 32; ++i) {
    hex += "ab";
  }
  EXPECT_EQ(etag_, "\"" + hex + "\"");
}

TEST_F(relay_etag, if_none_match_uses_weak_comparison) {
  const auto weak = etag_comparison::weak;
  EXPECT_TRUE(etag_list_matches(etag_, etag_, weak));
  EXPECT_TRUE(etag_list_matches("W/" + etag_, etag_, weak));
  EXPECT_TRUE(etag_list_matches("*", etag_, weak));
  EXPECT_TRUE(etag_list_matches("  *  ", etag_, weak));
  EXPECT_TRUE(etag_list_matches(other_ + ", " + etag_, etag_, weak));
  EXPECT_TRUE(etag_list_matches(other_ + "," + etag_ + ",", etag_, weak));
  EXPECT_TRUE(etag_list_matches(",," + other_ + " ,\t W/" + etag_, etag_, weak));
  EXPECT_TRUE(etag_list_matches("garbage, " + etag_, etag_, weak));
  EXPECT_FALSE(etag_list_matches(other_, etag_, weak));
  EXPECT_FALSE(etag_list_matches("", etag_, weak));
  EXPECT_FALSE(etag_list_matches(etag_.substr(1, 64), etag_, weak));  // unquoted
  EXPECT_FALSE(etag_list_matches("w/" + etag_, etag_, weak));         // W/ is case-sensitive
  EXPECT_FALSE(etag_list_matches("\"" + etag_, etag_, weak));
  EXPECT_FALSE(etag_list_matches(etag_.substr(0, 65), etag_, weak));  // unterminated
}

TEST_F(relay_etag, if_match_uses_strong_comparison) {
  const auto strong = etag_comparison::strong;
  EXPECT_TRUE(etag_list_matches(etag_, etag_, strong));
  EXPECT_TRUE(etag_list_matches("*", etag_, strong));
  EXPECT_TRUE(etag_list_matches(other_ + ", " + etag_, etag_, strong));
  EXPECT_FALSE(etag_list_matches("W/" + etag_, etag_, strong));
  EXPECT_FALSE(etag_list_matches(other_, etag_, strong));
}

TEST_F(relay_etag, if_range_needs_a_strong_equal_tag) {
  EXPECT_TRUE(if_range_matches(etag_, etag_));
  EXPECT_TRUE(if_range_matches(" " + etag_ + " ", etag_));
  EXPECT_FALSE(if_range_matches("W/" + etag_, etag_));
  EXPECT_FALSE(if_range_matches(other_, etag_));
  EXPECT_FALSE(if_range_matches("Wed, 21 Oct 2015 07:28:00 GMT", etag_));
  EXPECT_FALSE(if_range_matches(etag_ + ", " + etag_, etag_));
  EXPECT_FALSE(if_range_matches("*", etag_));
  EXPECT_FALSE(if_range_matches("", etag_));
}

}  // namespace
}  // namespace lanrelay::relay
