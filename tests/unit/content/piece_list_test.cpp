#include "lanrelay/content/piece_list.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace lanrelay {
namespace {

std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The example of docs/protocol.md ("Piece lists"): 16385 bytes of 'a' in 16 KiB pieces.
constexpr std::string_view golden_hex =
    "4c52504c0001000000000000000040010000400000000002"
    "f3336bea752b5a28743033dd2c844a4a63fba08871aaee2586a2bf2d69be83a2"
    "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
constexpr std::string_view golden_digest =
    "ebf1eea2ae4c556b03747c069411e939b4eaf774eafc865a5f965d05ef56390e";

class piece_list_file : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-pieces.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& content) {
    const auto path = dir_ / "item";
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(piece_list_file, golden_bytes_of_the_documented_example) {
  const std::string content(16385, 'a');
  const auto built = build_piece_list(write(content), min_piece_size);
  ASSERT_TRUE(built) << built.error().message();
  EXPECT_EQ(built->list.item_size, 16385u);
  EXPECT_EQ(built->list.pieces.size(), 2u);
  EXPECT_EQ(encode(built->list), from_hex(golden_hex));
  EXPECT_EQ(to_hex(piece_list_digest(built->list)), golden_digest);
  EXPECT_EQ(built->sha256, sha256_of(std::as_bytes(std::span(content))));

  const auto parsed = parse_piece_list(from_hex(golden_hex));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(*parsed, built->list);
  EXPECT_EQ(parsed->piece_offset(1), 16384u);
  EXPECT_EQ(parsed->piece_length(0), 16384u);
  EXPECT_EQ(parsed->piece_length(1), 1u);
}

TEST_F(piece_list_file, sizes_on_and_off_piece_boundaries) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{3} << 20,
                                 (std::size_t{3} << 20) + 5}) {
    std::string content(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
      content[i] = static_cast<char>(i * 31 >> 4);
    }
    const auto built = build_piece_list(write(content));
    ASSERT_TRUE(built) << built.error().message();
    EXPECT_EQ(built->list.piece_size, default_piece_size);
    EXPECT_EQ(built->list.pieces.size(), piece_count(size, default_piece_size)) << size;
    for (std::size_t i = 0; i < built->list.pieces.size(); ++i) {
      const auto piece = std::as_bytes(std::span(content))
                             .subspan(built->list.piece_offset(i), built->list.piece_length(i));
      EXPECT_EQ(built->list.pieces[i], sha256_of(piece)) << size << " piece " << i;
    }
    const auto round_trip = parse_piece_list(encode(built->list));
    ASSERT_TRUE(round_trip);
    EXPECT_EQ(*round_trip, built->list);
  }
}

TEST(piece_list, every_broken_field_is_refused) {
  const auto golden = from_hex(golden_hex);
  const auto refused = [&](auto mutate, piece_list_errc expected) {
    auto bytes = golden;
    mutate(bytes);
    const auto parsed = parse_piece_list(bytes);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error(), make_error_code(expected)) << parsed.error().message();
  };
  refused([](auto& b) { b.resize(2); }, piece_list_errc::truncated);
  refused([](auto& b) { b.resize(20); }, piece_list_errc::truncated);
  refused([](auto& b) { b[0] = std::byte{'X'}; }, piece_list_errc::bad_magic);
  refused([](auto& b) { b[5] = std::byte{2}; }, piece_list_errc::unsupported_version);
  refused([](auto& b) { b[7] = std::byte{1}; }, piece_list_errc::unsupported_version);
  // Piece size 16385: not a power of two; 8 KiB: too small; 128 MiB: too large.
  refused([](auto& b) { b[19] = std::byte{1}; }, piece_list_errc::bad_piece_size);
  refused([](auto& b) { b[18] = std::byte{0x20}; }, piece_list_errc::bad_piece_size);
  refused([](auto& b) { b[16] = std::byte{0x08}; b[18] = std::byte{0}; }, piece_list_errc::bad_piece_size);
  // Count 3 for 16385 bytes; item size 16384 for 2 pieces; a byte after the last digest.
  refused([](auto& b) { b[23] = std::byte{3}; }, piece_list_errc::inconsistent);
  refused([](auto& b) { b[15] = std::byte{0}; }, piece_list_errc::inconsistent);
  refused([](auto& b) { b.push_back(std::byte{0}); }, piece_list_errc::inconsistent);
  refused([](auto& b) { b.pop_back(); }, piece_list_errc::truncated);
  // 2^20 + 1 pieces is refused before the body is looked at.
  refused([](auto& b) {
    b[8] = std::byte{0x01};  // item size 2^56 + 16385
    b[20] = std::byte{0x00}; b[21] = std::byte{0x10}; b[22] = std::byte{0}; b[23] = std::byte{1};
  }, piece_list_errc::too_large);
  EXPECT_EQ(parse_piece_list(std::vector<std::byte>(max_piece_list_size + 1)).error(),
            make_error_code(piece_list_errc::too_large));
}

TEST(piece_list, an_empty_item_has_no_pieces) {
  const piece_list empty{0, default_piece_size, {}};
  const auto parsed = parse_piece_list(encode(empty));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, empty);
  EXPECT_EQ(encode(empty).size(), piece_list_header_size);
}

TEST(piece_list, a_bad_piece_size_is_refused_when_building) {
  EXPECT_EQ(build_piece_list(-1, 1000).error(), make_error_code(piece_list_errc::bad_piece_size));
  EXPECT_FALSE(build_piece_list(std::filesystem::path("/nonexistent/lanrelay-item")));
}

}  // namespace
}  // namespace lanrelay
