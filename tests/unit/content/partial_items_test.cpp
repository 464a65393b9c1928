#include "lanrelay/content/partial_items.hpp"

#include <gtest/gtest.h>

#include <sys/file.h>
#include <unistd.h>

#include <fstream>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

struct temp_dir {
  temp_dir() {
    char pattern[] = "/tmp/partial-items-test.XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~temp_dir() { fs::remove_all(path); }
  fs::path path;
};

piece_list three_pieces() {
  piece_list list;
  list.item_size = 2 * min_piece_size + 10;
  list.piece_size = min_piece_size;
  for (int i = 0; i < 3; ++i) {
    sha256_digest d{};
    d[0] = static_cast<std::byte>(i + 1);
    list.pieces.push_back(d);
  }
  return list;
}

sha256_digest content_sha() {
  sha256_digest d{};
  d[31] = std::byte{7};
  return d;
}

TEST(piece_bitfield, bits_are_most_significant_first_and_spare_bits_must_be_zero) {
  piece_bitfield b(10);
  b.set(0);
  b.set(9);
  ASSERT_EQ(b.bytes().size(), 2u);
  EXPECT_EQ(std::to_integer<int>(b.bytes()[0]), 0x80);
  EXPECT_EQ(std::to_integer<int>(b.bytes()[1]), 0x40);
  EXPECT_EQ(b.held(), 2u);
  EXPECT_TRUE(piece_bitfield::parse(b.bytes(), 10));
  const std::byte spare[] = {std::byte{0}, std::byte{0x20}};
  EXPECT_FALSE(piece_bitfield::parse(spare, 10));
  EXPECT_FALSE(piece_bitfield::parse(b.bytes(), 17));
  EXPECT_EQ(piece_bitfield(10, true).held(), 10u);
  EXPECT_TRUE(piece_bitfield::parse(piece_bitfield(10, true).bytes(), 10));
}

TEST(piece_bitfield, covers_only_ranges_within_held_pieces) {
  const auto list = three_pieces();
  piece_bitfield b(3);
  b.set(1);
  EXPECT_TRUE(b.covers(list, min_piece_size, min_piece_size));
  EXPECT_TRUE(b.covers(list, min_piece_size + 5, 10));
  EXPECT_FALSE(b.covers(list, min_piece_size - 1, 2));    // reaches into piece 0
  EXPECT_FALSE(b.covers(list, min_piece_size, min_piece_size + 1));  // into piece 2
  b.set(2);
  EXPECT_TRUE(b.covers(list, min_piece_size, min_piece_size + 10));
  EXPECT_FALSE(b.covers(list, min_piece_size, min_piece_size + 11));  // past the end
  EXPECT_FALSE(b.covers(list, 0, 0));
}

TEST(partial_items, a_live_writer_publishes_its_pieces_and_removes_them_at_the_end) {
  temp_dir store;
  const auto list = three_pieces();
  const item_key key{item_kind::file, "payload", "1"};
  {
    auto writer = partial_item_writer::create(store.path, key, content_sha(), list);
    ASSERT_TRUE(writer) << writer.error().message();
    auto found = read_partial_item(store.path, content_sha());
    ASSERT_TRUE(found);
    EXPECT_EQ(found->key, key);
    EXPECT_EQ(found->pieces, list);
    EXPECT_EQ(found->encoded_pieces, encode(list));
    EXPECT_EQ(found->have.held(), 0u);

    const std::vector<std::byte> piece(min_piece_size, std::byte{'x'});
    ASSERT_TRUE((*writer)->write_piece(1, piece));
    EXPECT_FALSE((*writer)->write_piece(2, piece));  // the last piece is 10 bytes
    found = read_partial_item(store.path, content_sha());
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->have.test(1));
    EXPECT_EQ(found->have.held(), 1u);
    auto fd = open_partial_data(store.path, content_sha());
    ASSERT_TRUE(fd);
    char c = 0;
    ASSERT_EQ(::pread(fd.get(), &c, 1, min_piece_size), 1);
    EXPECT_EQ(c, 'x');

    const auto named = find_partial_items(store.path, item_kind::file, "payload");
    ASSERT_EQ(named.size(), 1u);
    EXPECT_TRUE(find_partial_items(store.path, item_kind::file, "other").empty());
    // A second writer of the same content is refused while the first runs.
    EXPECT_FALSE(partial_item_writer::create(store.path, key, content_sha(), list));
  }
  EXPECT_FALSE(read_partial_item(store.path, content_sha()));
  EXPECT_TRUE(fs::is_empty(store.path / "partial"));
}

TEST(partial_items, a_set_whose_writer_died_is_ignored) {
  temp_dir store;
  const auto list = three_pieces();
  auto writer = partial_item_writer::create(store.path, {item_kind::file, "payload", "1"},
                                            content_sha(), list);
  ASSERT_TRUE(writer);
  // The writer's lock goes when its process dies; here: unlock its descriptor.
  ASSERT_EQ(::flock((*writer)->data_fd(), LOCK_UN), 0);
  EXPECT_FALSE(read_partial_item(store.path, content_sha()));
  EXPECT_TRUE(find_partial_items(store.path, item_kind::file, "payload").empty());
}

TEST(partial_items, inconsistent_files_are_ignored) {
  temp_dir store;
  const auto list = three_pieces();
  auto writer = partial_item_writer::create(store.path, {item_kind::file, "payload", "1"},
                                            content_sha(), list);
  ASSERT_TRUE(writer);
  const auto have = store.path / "partial" / (to_hex(content_sha()) + ".have");
  std::ofstream(have, std::ios::trunc) << "toolong";
  EXPECT_FALSE(read_partial_item(store.path, content_sha()));
  std::ofstream(store.path / "partial" / (to_hex(content_sha()) + ".item"), std::ios::trunc)
      << "file ../etc 1\n";
  EXPECT_FALSE(read_partial_item(store.path, content_sha()));
}

}  // namespace
}  // namespace lanrelay
