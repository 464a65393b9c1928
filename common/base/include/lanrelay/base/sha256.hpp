#pragma once

#include "lanrelay/base/error.hpp"

#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lanrelay {

using sha256_digest = std::array<std::byte, 32>;

std::string to_hex(const sha256_digest& digest);
// Accepts exactly 64 hex digits, either case.
std::optional<sha256_digest> parse_sha256_hex(std::string_view hex) noexcept;

// Incremental SHA-256 over OpenSSL's EVP interface. Not thread safe; one per stream.
class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(sha256_hasher&&) noexcept;
  sha256_hasher& operator=(sha256_hasher&&) noexcept;

  void update(std::span<const std::byte> data);
  sha256_digest finish();  // the hasher is reset afterwards

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

sha256_digest sha256_of(std::span<const std::byte> data);
result<sha256_digest> sha256_of_file(const std::filesystem::path& file);

}  // namespace lanrelay
