#pragma once

// Piece lists: an item cut into fixed-size pieces, with the SHA-256 of each, so that bytes from an
// untrusted holder can be checked piece by piece as they arrive instead of only at the end.
//
// Trust: a piece list is only as good as the digest that vouches for it. The relay's signed
// catalog carries, per item, the SHA-256 of the item's encoded piece list (catalog_entry::pieces);
// an agent fetches the list from any holder (GET /-/pieces/<sha256>), keeps it only when its
// digest is the signed one, then checks each piece against it. A bad piece costs that piece and
// that holder, never the pieces verified before it.
//
// Encoding (docs/protocol.md, "Piece lists"; integers big-endian):
//   4 bytes  magic "LRPL"
//   u16      format version, 1
//   u16      reserved, 0
//   u64      item size in bytes
//   u32      piece size in bytes: a power of two in [min_piece_size, max_piece_size]
//   u32      piece count: ceil(item size / piece size) (0 for an empty item)
//   32 bytes × count: SHA-256 of each piece in order; the last piece is shorter when the item
//            size is not a multiple of the piece size
// Nothing follows the last digest. Every field is checked: the encoding of a list is unique, so
// the digest of the encoded bytes names exactly one list.
//
// Thread safety: free functions are pure (build_* read the file they are given) and safe from any
// thread.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lanrelay {

// Why bytes are not a piece list. Values are stable so that callers can count by reason.
enum class piece_list_errc {
  truncated = 1,        // shorter than its header says
  bad_magic,            // does not start with "LRPL"
  unsupported_version,  // a format version other than 1, or reserved bits set
  bad_piece_size,       // not a power of two in [min_piece_size, max_piece_size]
  inconsistent,         // piece count does not match item size / piece size, or bytes follow
  too_large,            // more than max_piece_count pieces
};

const boost::system::error_category& piece_list_category() noexcept;

inline boost::system::error_code make_error_code(piece_list_errc e) noexcept {
  return {static_cast<int>(e), piece_list_category()};
}

inline constexpr std::uint32_t default_piece_size = std::uint32_t{1} << 20;  // 1 MiB
inline constexpr std::uint32_t min_piece_size = std::uint32_t{16} << 10;     // 16 KiB
inline constexpr std::uint32_t max_piece_size = std::uint32_t{64} << 20;     // 64 MiB
// 1 Mi pieces: 1 TiB items at the default piece size, a 32 MiB list at most.
inline constexpr std::uint32_t max_piece_count = std::uint32_t{1} << 20;
inline constexpr std::size_t piece_list_header_size = 24;
inline constexpr std::size_t max_piece_list_size =
    piece_list_header_size + std::size_t{max_piece_count} * 32;

struct piece_list {
  std::uint64_t item_size = 0;
  std::uint32_t piece_size = default_piece_size;
  std::vector<sha256_digest> pieces;

  // Byte range [offset, offset + length) of piece `index` (< pieces.size()).
  std::uint64_t piece_offset(std::size_t index) const noexcept {
    return std::uint64_t{piece_size} * index;
  }
  std::uint64_t piece_length(std::size_t index) const noexcept {
    const auto offset = piece_offset(index);
    return item_size - offset < piece_size ? item_size - offset : piece_size;
  }

  bool operator==(const piece_list&) const = default;
};

// The number of pieces an item of `item_size` bytes has at `piece_size`.
std::uint64_t piece_count(std::uint64_t item_size, std::uint32_t piece_size) noexcept;

// Whether `piece_size` is one this format allows (a power of two within the bounds).
bool valid_piece_size(std::uint32_t piece_size) noexcept;

// The bytes of `list` (see the top of this file). `list` must be consistent (as parse returns).
std::vector<std::byte> encode(const piece_list& list);

// Checks every field; never reads past `bytes`. Refuses input over max_piece_list_size before
// looking further (too_large).
result<piece_list> parse_piece_list(std::span<const std::byte> bytes);

// SHA-256 of encode(list): what a signed catalog entry names.
sha256_digest piece_list_digest(const piece_list& list);

// A piece list and the SHA-256 of the whole item, from one read of its bytes.
struct built_piece_list {
  piece_list list;
  sha256_digest sha256{};
};

// Reads the file open at `fd` (from its current position to the end; not closed) or at `file`.
// Fails with the system error of a failed read, bad_piece_size, or too_large for an item of more
// than max_piece_count pieces.
result<built_piece_list> build_piece_list(int fd, std::uint32_t piece_size = default_piece_size);
result<built_piece_list> build_piece_list(const std::filesystem::path& file,
                                          std::uint32_t piece_size = default_piece_size);

}  // namespace lanrelay

template <>
struct boost::system::is_error_code_enum<lanrelay::piece_list_errc> : std::true_type {};
