#pragma once

// Partial items: an item a peer is still downloading, piece by piece, and the pieces of it that it
// has verified so far, kept beside the content store so that the peer's lanrelayd serves those
// pieces at once (docs/protocol.md, "Swarming").
//
// Layout under the store's directory (content/store.hpp), one set per distinct content:
//   partial/<sha256>.data    the item's bytes at their offsets; only verified pieces are meaningful
//   partial/<sha256>.pieces  the item's piece list (piece_list.hpp), verified by the writer against
//                            the signed digest before anything else is written
//   partial/<sha256>.item    "<kind> <name> <version>\n": what discovery answers for
//   partial/<sha256>.have    the bitfield of verified pieces (piece i: bit 7 - i % 8 of byte i / 8)
// The writer (`lanrelay fetch --peer`) writes a piece's bytes before it sets the piece's bit, and
// replaces .have by rename, so a reader that sees a bit finds the piece's bytes. The writer holds
// an exclusive flock on .data while it runs: a set whose .data nobody locks was left by a writer
// that died and is ignored by readers (and replaced by the next writer of that content).
// When the item is complete the writer adds it to the store and removes the set.
//
// Trust: the files are written by the machine's own agent, which checked every piece against a
// signed piece list; readers (the peer's lanrelayd) serve them as they are, and every downloader
// checks each piece again.
//
// Thread safety: a partial_item_writer is used by one thread; the free functions may be called
// from any thread and any process.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/file_io.hpp"
#include "lanrelay/content/piece_list.hpp"
#include "lanrelay/content/store.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace lanrelay {

// A piece bitfield: ceil(count / 8) bytes, piece i is bit 7 - i % 8 of byte i / 8; spare bits zero.
class piece_bitfield {
 public:
  piece_bitfield() = default;
  explicit piece_bitfield(std::size_t count, bool all = false);
  // nullopt unless `bytes` is exactly the size for `count` pieces with spare bits zero.
  static std::optional<piece_bitfield> parse(std::span<const std::byte> bytes, std::size_t count);

  std::size_t size() const noexcept { return count_; }
  bool test(std::size_t index) const noexcept;
  void set(std::size_t index) noexcept;
  std::size_t held() const noexcept;
  // Whether every piece overlapping [offset, offset + length) of `list` is held.
  bool covers(const piece_list& list, std::uint64_t offset, std::uint64_t length) const noexcept;
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

 private:
  std::size_t count_ = 0;
  std::vector<std::byte> bytes_;
};

// What a reader finds of a partial item whose writer is alive.
struct partial_item {
  item_key key;
  sha256_digest sha256{};
  piece_list pieces;
  std::vector<std::byte> encoded_pieces;  // encode(pieces), as the writer stored it
  piece_bitfield have;
};

// The partial item of content `sha256` under the store at `store_dir`, when a live writer keeps
// one with a consistent piece list and bitfield.
std::optional<partial_item> read_partial_item(const std::filesystem::path& store_dir,
                                              const sha256_digest& sha256);
// Every partial item of `kind` and `name` with a live writer (at most a few: one per download
// running on this machine).
std::vector<partial_item> find_partial_items(const std::filesystem::path& store_dir,
                                             item_kind kind, std::string_view name);
// Opens .data of a partial item for reading (O_NOFOLLOW); -1 on failure.
unique_fd open_partial_data(const std::filesystem::path& store_dir, const sha256_digest& sha256);

// Writes one partial item (see the top of this file). Removes its files when destroyed.
class partial_item_writer {
 public:
  // Creates the set for `key` / `sha256` with the (verified) piece list `pieces`, replacing a
  // stale one. Fails when another live writer holds it (errc::already_exists) or on a file error.
  static result<std::unique_ptr<partial_item_writer>> create(const std::filesystem::path& store_dir,
                                                             const item_key& key,
                                                             const sha256_digest& sha256,
                                                             const piece_list& pieces);
  ~partial_item_writer();
  partial_item_writer(const partial_item_writer&) = delete;
  partial_item_writer& operator=(const partial_item_writer&) = delete;

  // Writes piece `index` (already verified) and then publishes its bit.
  result<void> write_piece(std::size_t index, std::span<const std::byte> bytes);
  const piece_bitfield& have() const noexcept { return have_; }
  const std::filesystem::path& data_path() const noexcept { return data_path_; }
  int data_fd() const noexcept { return data_.get(); }

 private:
  partial_item_writer() = default;
  result<void> publish_have();

  std::filesystem::path dir_;
  std::string stem_;  // hex SHA-256
  std::filesystem::path data_path_;
  unique_fd data_;
  piece_list pieces_;
  piece_bitfield have_;
};

}  // namespace lanrelay
