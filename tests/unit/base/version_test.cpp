#include "lanrelay/base/version.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lanrelay {
namespace {

TEST(item_kind_test, round_trips_through_text) {
  for (const auto kind : {item_kind::installer, item_kind::pattern, item_kind::file}) {
    EXPECT_EQ(parse_item_kind(to_string(kind)), kind);
  }
  EXPECT_EQ(to_string(item_kind::installer), "installer");
  EXPECT_EQ(to_string(item_kind::pattern), "pattern");
  EXPECT_EQ(to_string(item_kind::file), "file");
}

TEST(item_kind_test, rejects_unknown_text) {
  for (const char* text : {"", "Installer", "PATTERN", "files", " file", "file ", "engine"}) {
    EXPECT_FALSE(parse_item_kind(text)) << text;
  }
}

struct dotted_case {
  const char* text;
  dotted_version expected;
};

TEST(dotted_version_test, parses_one_to_four_components) {
  const dotted_case cases[] = {
      {"14", {14, 0, 0, 0}},
      {"14.0", {14, 0, 0, 0}},
      {"14.0.1234", {14, 0, 1234, 0}},
      {"12.500.1004", {12, 500, 1004, 0}},
      {"1.2.3.4", {1, 2, 3, 4}},
      {"0", {0, 0, 0, 0}},
      {"007.01", {7, 1, 0, 0}},
      {"4294967295.4294967295.4294967295.4294967295",
       {4294967295U, 4294967295U, 4294967295U, 4294967295U}},
  };
  for (const auto& c : cases) {
    const auto parsed = dotted_version::parse(c.text);
    ASSERT_TRUE(parsed) << c.text;
    EXPECT_EQ(*parsed, c.expected) << c.text;
  }
}

TEST(dotted_version_test, rejects_malformed_text) {
  const char* cases[] = {
      "",           ".",          "1.",         ".1",        "1..2",      "1.2.3.4.5",
      "-1",         "+1",         "1.-2",       " 1",        "1 ",        "1. 2",
      "1.2a",       "a",          "1,2",        "4294967296", "1.99999999999", "0x10",
      "1.2.3.4.",   "1e3",        "１",
  };
  for (const char* text : cases) {
    EXPECT_FALSE(dotted_version::parse(text)) << '"' << text << '"';
    EXPECT_EQ(dotted_version::parse(text).error(), make_error_code(errc::invalid_version)) << text;
  }
  EXPECT_FALSE(dotted_version::parse(std::string(129, '0')));
}

TEST(dotted_version_test, displays_build_always_and_patch_when_set) {
  const std::pair<dotted_version, const char*> cases[] = {
      {{14, 0, 0, 0}, "14.0.0"},
      {{14, 0, 1234, 0}, "14.0.1234"},
      {{1, 2, 3, 4}, "1.2.3.4"},
      {{1, 2, 0, 4}, "1.2.0.4"},
  };
  for (const auto& [version, text] : cases) {
    EXPECT_EQ(version.to_string(), text);
  }
}

TEST(dotted_version_test, orders_component_by_component) {
  const auto v = [](const char* text) { return *dotted_version::parse(text); };
  EXPECT_LT(v("14.0"), v("14.0.1"));
  EXPECT_LT(v("9.9.9.9"), v("10"));
  EXPECT_LT(v("1.2"), v("1.10"));
  EXPECT_EQ(v("14"), v("14.0.0.0"));
  EXPECT_GT(v("1.0.0.1"), v("1.0.0"));
}

struct pattern_case {
  const char* text;
  std::uint64_t value;
};

TEST(pattern_version_test, parses_integer_and_display_forms) {
  const pattern_case cases[] = {
      {"1667900", 1667900},
      {"16.679.00", 1667900},
      {"0016.679.00", 1667900},
      {"01667900", 1667900},
      {"1667700", 1667700},
      {"16.677.00", 1667700},
      {"1.234.56", 123456},
      {"0.000.01", 1},
      {"0.000.00", 0},
      {"0", 0},
      {"99999.999.99", 9999999999},
      {"18446744073709551615", 18446744073709551615ULL},
      {"184467440737095.516.15", 18446744073709551615ULL},
  };
  for (const auto& c : cases) {
    const auto parsed = pattern_version::parse(c.text);
    ASSERT_TRUE(parsed) << c.text;
    EXPECT_EQ(parsed->value, c.value) << c.text;
  }
}

TEST(pattern_version_test, rejects_malformed_text) {
  const char* cases[] = {
      "",
      ".",
      "16.679",
      "16.679.0",
      "16.679.000",
      "16.67.00",
      "16.6790.00",
      ".679.00",
      "16..00",
      "16.679.00.1",
      "-1667900",
      "+1667900",
      " 1667900",
      "1667900 ",
      "16.679.0a",
      "16.-79.00",
      "1,667,900",
      "18446744073709551616",
      "99999999999999999999",
      "184467440737095.516.16",
      "999999999999999.999.99",
      "1e6",
  };
  for (const char* text : cases) {
    EXPECT_FALSE(pattern_version::parse(text)) << '"' << text << '"';
  }
}

TEST(pattern_version_test, displays_release_vvv_bb) {
  const std::pair<std::uint64_t, const char*> cases[] = {
      {1667900, "16.679.00"}, {1667700, "16.677.00"}, {123456, "1.234.56"},
      {1, "0.000.01"},        {0, "0.000.00"},        {100, "0.001.00"},
      {9999999999, "99999.999.99"},
  };
  for (const auto& [value, text] : cases) {
    EXPECT_EQ(pattern_version{value}.to_display(), text);
    EXPECT_EQ(pattern_version::parse(text)->value, value) << text;
  }
}

struct canonical_case {
  item_kind kind;
  const char* text;
  const char* canonical;  // nullptr: invalid_version
};

TEST(canonical_version_test, table) {
  const canonical_case cases[] = {
      {item_kind::pattern, "1667900", "1667900"},
      {item_kind::pattern, "16.679.00", "1667900"},
      {item_kind::pattern, "01667900", "1667900"},
      {item_kind::pattern, "16.679", nullptr},
      {item_kind::pattern, "abc", nullptr},
      {item_kind::installer, "14.0", "14.0"},
      {item_kind::installer, "14.0.1234", "14.0.1234"},
      {item_kind::installer, "14.0.0.0", "14.0.0.0"},
      {item_kind::installer, "14.0.x", nullptr},
      {item_kind::installer, "", nullptr},
      {item_kind::installer, "v14", nullptr},
      {item_kind::file, "2024-05-01_a", "2024-05-01_a"},
      {item_kind::file, "v1+build.7", "v1+build.7"},
      {item_kind::file, "", nullptr},
      {item_kind::file, ".hidden", nullptr},
      {item_kind::file, "-x", nullptr},
      {item_kind::file, "a/b", nullptr},
      {item_kind::file, "a b", nullptr},
  };
  for (const auto& c : cases) {
    const auto canonical = canonical_version(c.kind, c.text);
    if (c.canonical == nullptr) {
      ASSERT_FALSE(canonical) << to_string(c.kind) << " " << c.text;
      EXPECT_EQ(canonical.error(), make_error_code(errc::invalid_version));
    } else {
      ASSERT_TRUE(canonical) << to_string(c.kind) << " " << c.text;
      EXPECT_EQ(*canonical, c.canonical);
    }
  }
}

struct satisfies_case {
  item_kind kind;
  const char* held;
  const char* wanted;
  bool expected;
};

TEST(version_satisfies_test, table) {
  const satisfies_case cases[] = {
      // Installers: Major.Minor at least the wanted one; Build and Patch never matter.
      {item_kind::installer, "14.0.1234", "14.0", true},
      {item_kind::installer, "14.0.1000", "14.0.2000", true},
      {item_kind::installer, "14.0", "14.0.9999.9", true},
      {item_kind::installer, "14.1", "14.0", true},
      {item_kind::installer, "15.0", "14.9", true},
      {item_kind::installer, "14.0", "14.1", false},
      {item_kind::installer, "13.99.9999", "14.0", false},
      {item_kind::installer, "14", "14.0", true},
      {item_kind::installer, "14.0", "14", true},
      {item_kind::installer, "bad", "14.0", false},
      {item_kind::installer, "14.0", "bad", false},
      // Patterns: the exact version, either spelling; a newer pattern does not answer.
      {item_kind::pattern, "1667900", "1667900", true},
      {item_kind::pattern, "1667900", "16.679.00", true},
      {item_kind::pattern, "16.679.00", "1667900", true},
      {item_kind::pattern, "1667900", "1667700", false},
      {item_kind::pattern, "1667700", "1667900", false},
      {item_kind::pattern, "1667900", "16.679", false},
      {item_kind::pattern, "x", "x", false},
      // Files: exact text only.
      {item_kind::file, "v1", "v1", true},
      {item_kind::file, "v1", "V1", false},
      {item_kind::file, "v1.0", "v1", false},
      {item_kind::file, "v2", "v1", false},
      {item_kind::file, "a b", "a b", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(version_satisfies(c.kind, c.held, c.wanted), c.expected)
        << to_string(c.kind) << " held=" << c.held << " wanted=" << c.wanted;
  }
}

struct compare_case {
  item_kind kind;
  const char* a;
  const char* b;
  std::strong_ordering expected;
};

TEST(compare_versions_test, table) {
  const auto less = std::strong_ordering::less;
  const auto equal = std::strong_ordering::equal;
  const auto greater = std::strong_ordering::greater;
  const compare_case cases[] = {
      {item_kind::installer, "14.0", "14.0.1", less},
      {item_kind::installer, "14.0.1", "14.0", greater},
      {item_kind::installer, "14.0", "14.0.0", equal},
      {item_kind::installer, "9.0", "10.0", less},
      {item_kind::installer, "1.2.3.4", "1.2.3.5", less},
      {item_kind::installer, "bad", "0", less},
      {item_kind::installer, "0", "bad", greater},
      {item_kind::installer, "bad", "bad", equal},
      {item_kind::pattern, "1667900", "16.679.00", equal},
      {item_kind::pattern, "1667700", "1667900", less},
      {item_kind::pattern, "9999999", "10000000", less},
      {item_kind::pattern, "x", "0", less},
      {item_kind::pattern, "0", "x", greater},
      {item_kind::file, "a", "b", less},
      {item_kind::file, "b", "a", greater},
      {item_kind::file, "a", "a", equal},
      {item_kind::file, "a b", "a", less},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(compare_versions(c.kind, c.a, c.b), c.expected)
        << to_string(c.kind) << " " << c.a << " vs " << c.b;
  }
}

TEST(compare_versions_test, unparsable_texts_have_a_total_order) {
  EXPECT_EQ(compare_versions(item_kind::installer, "abc", "abd"), std::strong_ordering::less);
  EXPECT_EQ(compare_versions(item_kind::pattern, "abd", "abc"), std::strong_ordering::greater);
}

TEST(is_valid_name_test, table) {
  const std::pair<std::string, bool> cases[] = {
      {"a", true},
      {"OfficeScan_Agent-x64", true},
      {"pattern.icrc+ioth", true},
      {"0day", true},
      {"_x", true},
      {"+x", true},
      {"a.", true},
      {"a-", true},
      {std::string(128, 'n'), true},
      {std::string(129, 'n'), false},
      {"", false},
      {".", false},
      {"..", false},
      {".a", false},
      {"-a", false},
      {"a/b", false},
      {"a\\b", false},
      {"a b", false},
      {"a\tb", false},
      {"a\nb", false},
      {std::string("a\0b", 3), false},
      {"ä", false},
      {"a:b", false},
      {"a*b", false},
  };
  for (const auto& [text, valid] : cases) {
    EXPECT_EQ(is_valid_name(text), valid) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace lanrelay
