#include "lanrelay/content/partial_items.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <sstream>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_item_line = 256;

fs::path partial_dir(const fs::path& store_dir) { return store_dir / "partial"; }

boost::system::error_code last_error() {
  return {errno, boost::system::system_category()};
}

// Whether a live writer holds .data: it keeps an exclusive flock for as long as it runs.
bool writer_alive(int data_fd) {
  if (::flock(data_fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(data_fd, LOCK_UN);
    return false;
  }
  return errno == EWOULDBLOCK;
}

std::optional<item_key> parse_item_line(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return std::nullopt;
  }
  std::istringstream in{std::string(text)};
  std::string kind, name, version, rest;
  if (!(in >> kind >> name >> version) || (in >> rest)) {
    return std::nullopt;
  }
  const auto parsed_kind = parse_item_kind(kind);
  if (!parsed_kind || !is_valid_name(name)) {
    return std::nullopt;
  }
  return item_key{*parsed_kind, name, version};
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

piece_bitfield::piece_bitfield(std::size_t count, bool all)
    : count_(count), bytes_((count + 7) / 8, all ? std::byte{0xff} : std::byte{0}) {
  if (all && count % 8 != 0) {
    bytes_.back() = std::byte(0xff << (8 - count % 8));
  }
}

std::optional<piece_bitfield> piece_bitfield::parse(std::span<const std::byte> bytes,
                                                    std::size_t count) {
  if (bytes.size() != (count + 7) / 8) {
    return std::nullopt;
  }
  if (count % 8 != 0 && (std::to_integer<unsigned>(bytes.back()) & (0xffu >> (count % 8))) != 0) {
    return std::nullopt;
  }
  piece_bitfield out(count);
  std::copy(bytes.begin(), bytes.end(), out.bytes_.begin());
  return out;
}

bool piece_bitfield::test(std::size_t index) const noexcept {
  return index < count_ && (std::to_integer<unsigned>(bytes_[index / 8]) & (0x80u >> (index % 8))) != 0;
}

void piece_bitfield::set(std::size_t index) noexcept {
  if (index < count_) {
    bytes_[index / 8] |= std::byte(0x80u >> (index % 8));
  }
}

std::size_t piece_bitfield::held() const noexcept {
  std::size_t n = 0;
  for (const auto b : bytes_) {
    n += static_cast<std::size_t>(std::popcount(std::to_integer<unsigned>(b)));
  }
  return n;
}

bool piece_bitfield::covers(const piece_list& list, std::uint64_t offset,
                            std::uint64_t length) const noexcept {
  if (length == 0 || offset >= list.item_size || length > list.item_size - offset ||
      list.pieces.size() != count_) {
    return false;
  }
  const std::uint64_t first = offset / list.piece_size;
  const std::uint64_t last = (offset + length - 1) / list.piece_size;
  for (auto i = first; i <= last; ++i) {
    if (!test(static_cast<std::size_t>(i))) {
      return false;
    }
  }
  return true;
}

unique_fd open_partial_data(const fs::path& store_dir, const sha256_digest& sha256) {
  return open_fd(partial_dir(store_dir) / (to_hex(sha256) + ".data"), O_RDONLY | O_NOFOLLOW);
}

std::optional<partial_item> read_partial_item(const fs::path& store_dir, const sha256_digest& sha256) {
  const auto dir = partial_dir(store_dir);
  const auto stem = to_hex(sha256);
  const auto data = open_partial_data(store_dir, sha256);
  if (!data || !writer_alive(data.get())) {
    return std::nullopt;
  }
  const auto item_line = read_small_file(dir / (stem + ".item"), max_item_line);
  const auto encoded = read_small_file(dir / (stem + ".pieces"), max_piece_list_size);
  const auto have = read_small_file(dir / (stem + ".have"), max_piece_count / 8);
  if (!item_line || !encoded || !have) {
    return std::nullopt;
  }
  auto key = parse_item_line(*item_line);
  auto list = parse_piece_list(as_bytes(*encoded));
  if (!key || !list) {
    return std::nullopt;
  }
  auto bits = piece_bitfield::parse(as_bytes(*have), list->pieces.size());
  if (!bits) {
    return std::nullopt;
  }
  partial_item out{std::move(*key), sha256, std::move(*list), {}, std::move(*bits)};
  const auto bytes = as_bytes(*encoded);
  out.encoded_pieces.assign(bytes.begin(), bytes.end());
  return out;
}

std::vector<partial_item> find_partial_items(const fs::path& store_dir, item_kind kind,
                                             std::string_view name) {
  std::vector<partial_item> out;
  std::error_code ec;
  for (fs::directory_iterator it(partial_dir(store_dir), ec), end; !ec && it != end; it.increment(ec)) {
    const auto file = it->path().filename().string();
    if (!file.ends_with(".data")) {
      continue;
    }
    const auto sha = parse_sha256_hex(std::string_view(file).substr(0, file.size() - 5));
    if (!sha) {
      continue;
    }
    if (auto found = read_partial_item(store_dir, *sha);
        found && found->key.kind == kind && found->key.name == name) {
      out.push_back(std::move(*found));
    }
  }
  return out;
}

result<std::unique_ptr<partial_item_writer>> partial_item_writer::create(
    const fs::path& store_dir, const item_key& key, const sha256_digest& sha256,
    const piece_list& pieces) {
  std::unique_ptr<partial_item_writer> w(new partial_item_writer());
  w->dir_ = partial_dir(store_dir);
  w->stem_ = to_hex(sha256);
  w->pieces_ = pieces;
  w->have_ = piece_bitfield(pieces.pieces.size());
  std::error_code ec;
  fs::create_directories(w->dir_, ec);
  if (ec) {
    return boost::system::error_code(ec.value(), boost::system::system_category());
  }
  w->data_path_ = w->dir_ / (w->stem_ + ".data");
  w->data_ = open_fd(w->data_path_, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
  if (!w->data_) {
    const auto error = last_error();
    w->data_path_.clear();  // not ours to remove
    return error;
  }
  if (::flock(w->data_.get(), LOCK_EX | LOCK_NB) != 0) {
    w->data_.reset();  // not ours to remove
    w->data_path_.clear();
    return make_error_code(errc::already_exists);
  }
  if (::ftruncate(w->data_.get(), 0) != 0 ||
      ::ftruncate(w->data_.get(), static_cast<off_t>(pieces.item_size)) != 0) {
    return last_error();
  }
  const auto write_file = [&](const std::string& suffix, std::span<const std::byte> bytes) -> result<void> {
    const auto tmp = w->dir_ / (w->stem_ + suffix + ".tmp");
    auto fd = open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
    if (!fd) {
      return last_error();
    }
    if (auto written = write_all(fd.get(), bytes); !written) {
      return written;
    }
    fs::rename(tmp, w->dir_ / (w->stem_ + suffix), ec);
    if (ec) {
      return boost::system::error_code(ec.value(), boost::system::system_category());
    }
    return {};
  };
  const auto encoded = encode(pieces);
  const std::string item_line = std::string(to_string(key.kind)) + " " + key.name + " " + key.version + "\n";
  if (auto r = write_file(".pieces", encoded); !r) {
    return r.error();
  }
  if (auto r = write_file(".item", as_bytes(item_line)); !r) {
    return r.error();
  }
  if (auto r = w->publish_have(); !r) {
    return r.error();
  }
  return w;
}

partial_item_writer::~partial_item_writer() {
  if (data_path_.empty()) {
    return;
  }
  std::error_code ignored;
  for (const auto* suffix : {".have", ".item", ".pieces", ".have.tmp"}) {
    fs::remove(dir_ / (stem_ + suffix), ignored);
  }
  fs::remove(data_path_, ignored);  // last: while it exists and is locked, readers trust the set
}

result<void> partial_item_writer::write_piece(std::size_t index, std::span<const std::byte> bytes) {
  if (index >= pieces_.pieces.size() || bytes.size() != pieces_.piece_length(index)) {
    return make_error_code(errc::size_mismatch);
  }
  auto offset = static_cast<off_t>(pieces_.piece_offset(index));
  while (!bytes.empty()) {
    const auto n = ::pwrite(data_.get(), bytes.data(), bytes.size(), offset);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_error();
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    offset += n;
  }
  have_.set(index);
  return publish_have();
}

result<void> partial_item_writer::publish_have() {
  const auto tmp = dir_ / (stem_ + ".have.tmp");
  auto fd = open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
  if (!fd) {
    return last_error();
  }
  if (auto written = write_all(fd.get(), have_.bytes()); !written) {
    return written;
  }
  if (::rename(tmp.c_str(), (dir_ / (stem_ + ".have")).c_str()) != 0) {
    return last_error();
  }
  return {};
}

}  // namespace lanrelay
