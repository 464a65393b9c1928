#include "lanrelay/base/text_format.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <string>

namespace lanrelay {
namespace {

TEST(text_format_trim, drops_the_given_blanks_at_both_ends_only) {
  EXPECT_EQ(trim(" \t a b \t "), "a b");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t "), "");
  // The default is HTTP's optional white space: a CR stays.
  EXPECT_EQ(trim(" x\r"), "x\r");
  EXPECT_EQ(trim(" x\r", " \t\r"), "x");
  EXPECT_EQ(trim("\n\v x \f\r", ascii_whitespace), "x");
}

TEST(text_format_hex, two_lower_case_digits_a_byte) {
  const std::array bytes{std::byte{0x00}, std::byte{0x0f}, std::byte{0xa5}, std::byte{0xff}};
  EXPECT_EQ(hex_encode(bytes), "000fa5ff");
  EXPECT_EQ(hex_encode({}), "");
  std::string out = "\\x";
  append_hex(out, static_cast<unsigned char>(0x7f));
  EXPECT_EQ(out, "\\x7f");
  append_hex(out, bytes);
  EXPECT_EQ(out, "\\x7f000fa5ff");
}

TEST(text_format_hex, digit_values_in_either_case) {
  EXPECT_EQ(hex_digit_value('0'), 0);
  EXPECT_EQ(hex_digit_value('9'), 9);
  EXPECT_EQ(hex_digit_value('a'), 10);
  EXPECT_EQ(hex_digit_value('F'), 15);
  EXPECT_FALSE(hex_digit_value('g'));
  EXPECT_FALSE(hex_digit_value('/'));
  EXPECT_FALSE(hex_digit_value(':'));
  EXPECT_FALSE(hex_digit_value('\0'));
}

}  // namespace
}  // namespace lanrelay
