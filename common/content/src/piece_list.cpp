#include "lanrelay/content/piece_list.hpp"

#include "lanrelay/base/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace lanrelay {
namespace {

constexpr std::array<std::byte, 4> magic{std::byte{'L'}, std::byte{'R'}, std::byte{'P'},
                                          std::byte{'L'}};
constexpr std::uint16_t format_version = 1;

std::string piece_list_message(piece_list_errc value) {
  switch (value) {
    case piece_list_errc::truncated:
      return "the piece list is shorter than its header says";
    case piece_list_errc::bad_magic:
      return "not a lanrelay piece list (it does not start with \"LRPL\")";
    case piece_list_errc::unsupported_version:
      return "the piece list has an unknown format version; upgrade this machine";
    case piece_list_errc::bad_piece_size:
      return "the piece size is not a power of two between 16 KiB and 64 MiB";
    case piece_list_errc::inconsistent:
      return "the piece list's count of pieces does not match its item size and piece size";
    case piece_list_errc::too_large:
      return "the item has more pieces than a piece list may hold";
  }
  return "unknown piece list error";
}

void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  out.push_back(static_cast<std::byte>(v >> 8));
  out.push_back(static_cast<std::byte>(v));
}
void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>(v >> shift));
  }
}
void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>(v >> shift));
  }
}

std::uint64_t get_be(std::span<const std::byte> bytes) {
  std::uint64_t v = 0;
  for (const std::byte b : bytes) {
    v = (v << 8) | std::to_integer<std::uint64_t>(b);
  }
  return v;
}

}  // namespace

const boost::system::error_category& piece_list_category() noexcept {
  static const error_category_of<piece_list_errc> category(
      "lanrelay.piece_list", 0x6c6e72792d70636cULL, piece_list_message);
  return category;
}

std::uint64_t piece_count(std::uint64_t item_size, std::uint32_t piece_size) noexcept {
  return item_size / piece_size + (item_size % piece_size != 0 ? 1 : 0);
}

bool valid_piece_size(std::uint32_t piece_size) noexcept {
  return piece_size >= min_piece_size && piece_size <= max_piece_size &&
         (piece_size & (piece_size - 1)) == 0;
}

std::vector<std::byte> encode(const piece_list& list) {
  std::vector<std::byte> out;
  out.reserve(piece_list_header_size + list.pieces.size() * 32);
  out.insert(out.end(), magic.begin(), magic.end());
  put_u16(out, format_version);
  put_u16(out, 0);
  put_u64(out, list.item_size);
  put_u32(out, list.piece_size);
  put_u32(out, static_cast<std::uint32_t>(list.pieces.size()));
  for (const auto& digest : list.pieces) {
    out.insert(out.end(), digest.begin(), digest.end());
  }
  return out;
}

result<piece_list> parse_piece_list(std::span<const std::byte> bytes) {
  if (bytes.size() > max_piece_list_size) {
    return make_error_code(piece_list_errc::too_large);
  }
  if (bytes.size() < magic.size() || !std::equal(magic.begin(), magic.end(), bytes.begin())) {
    return make_error_code(bytes.size() < magic.size() ? piece_list_errc::truncated
                                                        : piece_list_errc::bad_magic);
  }
  if (bytes.size() < piece_list_header_size) {
    return make_error_code(piece_list_errc::truncated);
  }
  if (get_be(bytes.subspan(4, 2)) != format_version || get_be(bytes.subspan(6, 2)) != 0) {
    return make_error_code(piece_list_errc::unsupported_version);
  }
  piece_list list;
  list.item_size = get_be(bytes.subspan(8, 8));
  list.piece_size = static_cast<std::uint32_t>(get_be(bytes.subspan(16, 4)));
  const auto count = get_be(bytes.subspan(20, 4));
  if (!valid_piece_size(list.piece_size)) {
    return make_error_code(piece_list_errc::bad_piece_size);
  }
  if (count > max_piece_count) {
    return make_error_code(piece_list_errc::too_large);
  }
  if (count != piece_count(list.item_size, list.piece_size)) {
    return make_error_code(piece_list_errc::inconsistent);
  }
  const std::size_t body = bytes.size() - piece_list_header_size;
  if (body < count * 32) {
    return make_error_code(piece_list_errc::truncated);
  }
  if (body != count * 32) {
    return make_error_code(piece_list_errc::inconsistent);
  }
  list.pieces.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(list.pieces[i].data(), bytes.data() + piece_list_header_size + 32 * i, 32);
  }
  return list;
}

sha256_digest piece_list_digest(const piece_list& list) { return sha256_of(encode(list)); }

result<built_piece_list> build_piece_list(int fd, std::uint32_t piece_size) {
  if (!valid_piece_size(piece_size)) {
    return make_error_code(piece_list_errc::bad_piece_size);
  }
  built_piece_list out;
  out.list.piece_size = piece_size;
  sha256_hasher whole;
  sha256_hasher piece;
  std::uint64_t in_piece = 0;
  std::vector<std::byte> buffer(std::min<std::size_t>(piece_size, std::size_t{256} << 10));
  for (;;) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), piece_size - in_piece));
    const ssize_t n = ::read(fd, buffer.data(), want);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_errno();
    }
    if (n == 0) {
      break;
    }
    const std::span<const std::byte> chunk(buffer.data(), static_cast<std::size_t>(n));
    whole.update(chunk);
    piece.update(chunk);
    in_piece += chunk.size();
    out.list.item_size += chunk.size();
    if (in_piece == piece_size) {
      if (out.list.pieces.size() == max_piece_count) {
        return make_error_code(piece_list_errc::too_large);
      }
      out.list.pieces.push_back(piece.finish());
      in_piece = 0;
    }
  }
  if (in_piece > 0) {
    if (out.list.pieces.size() == max_piece_count) {
      return make_error_code(piece_list_errc::too_large);
    }
    out.list.pieces.push_back(piece.finish());
  }
  out.sha256 = whole.finish();
  return out;
}

result<built_piece_list> build_piece_list(const std::filesystem::path& file,
                                          std::uint32_t piece_size) {
  const unique_fd fd = open_fd(file, O_RDONLY);
  if (!fd) {
    return last_errno();
  }
  return build_piece_list(fd.get(), piece_size);
}

}  // namespace lanrelay
