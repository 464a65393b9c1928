#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/text_format.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <new>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace lanrelay {
namespace {

// Large reads keep the syscall count low for multi-gigabyte installers.
constexpr std::size_t file_chunk_size = std::size_t{1} << 20;

boost::system::error_code last_system_error() {
  return {errno, boost::system::system_category()};
}

}  // namespace

std::string to_hex(const sha256_digest& digest) { return hex_encode(digest); }

std::optional<sha256_digest> parse_sha256_hex(std::string_view hex) noexcept {
  sha256_digest digest{};
  if (hex.size() != digest.size() * 2) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const auto hi = hex_digit_value(hex[2 * i]);
    const auto lo = hex_digit_value(hex[2 * i + 1]);
    if (!hi || !lo) {
      return std::nullopt;
    }
    digest[i] = static_cast<std::byte>((*hi << 4) | *lo);
  }
  return digest;
}

// OpenSSL failures here mean allocation failure or a broken library, never bad input: they are
// broken invariants and surface as exceptions.
struct sha256_hasher::impl {
  EVP_MD_CTX* ctx = nullptr;

  impl() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr) {
      throw std::bad_alloc();
    }
    reset();
  }
  ~impl() { EVP_MD_CTX_free(ctx); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  void reset() {
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("OpenSSL EVP_DigestInit_ex(SHA-256) failed");
    }
  }
};

sha256_hasher::sha256_hasher() : impl_(std::make_unique<impl>()) {}
sha256_hasher::~sha256_hasher() = default;
sha256_hasher::sha256_hasher(sha256_hasher&&) noexcept = default;
sha256_hasher& sha256_hasher::operator=(sha256_hasher&&) noexcept = default;

void sha256_hasher::update(std::span<const std::byte> data) {
  if (data.empty()) {
    return;
  }
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) {
    throw std::runtime_error("OpenSSL EVP_DigestUpdate(SHA-256) failed");
  }
}

sha256_digest sha256_hasher::finish() {
  sha256_digest digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, reinterpret_cast<unsigned char*>(digest.data()), &length) != 1 ||
      length != digest.size()) {
    throw std::runtime_error("OpenSSL EVP_DigestFinal_ex(SHA-256) failed");
  }
  impl_->reset();
  return digest;
}

sha256_digest sha256_of(std::span<const std::byte> data) {
  sha256_hasher hasher;
  hasher.update(data);
  return hasher.finish();
}

result<sha256_digest> sha256_of_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return last_system_error();
  }
  sha256_hasher hasher;
  std::vector<std::byte> buffer(file_chunk_size);
  while (true) {
    const ::ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const auto ec = last_system_error();
      ::close(fd);
      return ec;
    }
    if (n == 0) {
      break;
    }
    hasher.update(std::span(buffer.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return hasher.finish();
}

}  // namespace lanrelay
