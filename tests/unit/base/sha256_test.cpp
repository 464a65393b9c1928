#include "lanrelay/base/sha256.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

namespace lanrelay {
namespace {

constexpr std::string_view empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr std::string_view abc_sha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// FIPS 180-2 two-block message and one million 'a'.
constexpr std::string_view two_block_text =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr std::string_view two_block_sha256 =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr std::string_view million_a_sha256 =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

TEST(sha256_test, known_vectors) {
  EXPECT_EQ(to_hex(sha256_of({})), empty_sha256);
  EXPECT_EQ(to_hex(sha256_of(bytes_of(""))), empty_sha256);
  EXPECT_EQ(to_hex(sha256_of(bytes_of("abc"))), abc_sha256);
  EXPECT_EQ(to_hex(sha256_of(bytes_of(two_block_text))), two_block_sha256);
  const std::string million(1'000'000, 'a');
  EXPECT_EQ(to_hex(sha256_of(bytes_of(million))), million_a_sha256);
}

TEST(sha256_test, incremental_matches_one_shot) {
  const std::string million(1'000'000, 'a');
  sha256_hasher hasher;
  std::string_view rest = million;
  std::size_t step = 1;
  while (!rest.empty()) {
    const auto n = std::min(step, rest.size());
    hasher.update(bytes_of(rest.substr(0, n)));
    rest.remove_prefix(n);
    step = step * 3 + 1;
  }
  EXPECT_EQ(to_hex(hasher.finish()), million_a_sha256);
}

TEST(sha256_test, finish_resets_the_hasher) {
  sha256_hasher hasher;
  hasher.update(bytes_of("abc"));
  EXPECT_EQ(to_hex(hasher.finish()), abc_sha256);
  EXPECT_EQ(to_hex(hasher.finish()), empty_sha256);
  hasher.update(bytes_of("ab"));
  hasher.update(bytes_of("c"));
  EXPECT_EQ(to_hex(hasher.finish()), abc_sha256);
}

TEST(sha256_test, hasher_moves) {
  sha256_hasher a;
  a.update(bytes_of("ab"));
  sha256_hasher b(std::move(a));
  b.update(bytes_of("c"));
  sha256_hasher c;
  c = std::move(b);
  EXPECT_EQ(to_hex(c.finish()), abc_sha256);
}

TEST(sha256_hex_test, round_trip_and_either_case) {
  const auto digest = parse_sha256_hex(abc_sha256);
  ASSERT_TRUE(digest);
  EXPECT_EQ(to_hex(*digest), abc_sha256);
  EXPECT_EQ(*digest, sha256_of(bytes_of("abc")));
  std::string upper(abc_sha256);
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  const auto from_upper = parse_sha256_hex(upper);
  ASSERT_TRUE(from_upper);
  EXPECT_EQ(*from_upper, *digest);
}

TEST(sha256_hex_test, rejects_anything_but_64_hex_digits) {
  const std::string good(abc_sha256);
  const std::string cases[] = {
      "",
      good.substr(0, 63),
      good + "0",
      good.substr(0, 63) + "g",
      " " + good.substr(1),
      good.substr(0, 62) + "0x",
      good.substr(0, 32),
      std::string(64, 'z'),
  };
  for (const auto& text : cases) {
    EXPECT_FALSE(parse_sha256_hex(text)) << '"' << text << '"';
  }
}

class sha256_file_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-sha256-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, std::string_view content) {
    const auto path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(sha256_file_test, hashes_files_of_any_size) {
  EXPECT_EQ(to_hex(*sha256_of_file(write("empty", ""))), empty_sha256);
  EXPECT_EQ(to_hex(*sha256_of_file(write("abc", "abc"))), abc_sha256);
  // Larger than one read chunk, and not a multiple of it.
  const std::string big(3 * (1 << 20) + 12345, 'q');
  EXPECT_EQ(*sha256_of_file(write("big", big)), sha256_of(bytes_of(big)));
}

TEST_F(sha256_file_test, reports_a_missing_file) {
  const auto digest = sha256_of_file(dir_ / "missing");
  ASSERT_FALSE(digest);
  EXPECT_EQ(digest.error(), boost::system::errc::no_such_file_or_directory);
}

TEST_F(sha256_file_test, reports_a_directory) {
  const auto digest = sha256_of_file(dir_);
  ASSERT_FALSE(digest);
  EXPECT_EQ(digest.error(), boost::system::errc::is_a_directory);
}

}  // namespace
}  // namespace lanrelay
