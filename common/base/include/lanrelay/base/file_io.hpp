#pragma once

// Small POSIX file helpers shared by everything that writes crash-safely (the store, the mirror):
// an owning descriptor, EINTR-safe open and write, fsync of a file and of a directory.

#include "lanrelay/base/error.hpp"

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace lanrelay {

// errno of the last failed call as an error_code.
boost::system::error_code last_errno() noexcept;

// Owns a file descriptor; closes it on destruction. Move-only.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// open(2), retried on EINTR, always with O_CLOEXEC. Empty on failure (errno set).
unique_fd open_fd(const std::filesystem::path& path, int flags, ::mode_t mode = 0);

// Writes all of `data`, retrying short writes and EINTR.
result<void> write_all(int fd, std::span<const std::byte> data);

result<void> sync_fd(int fd);
// fsync of a directory, so that renames and creations in it survive a power loss.
result<void> sync_dir(const std::filesystem::path& dir);

// Writes `text` to `tmp`, fsyncs it, renames it over `target` and fsyncs target's directory:
// after a crash `target` holds either the old or the new text. `tmp` is removed on failure.
result<void> write_atomically(const std::filesystem::path& tmp, const std::filesystem::path& target,
                              std::string_view text);

// The whole file (not following a symbolic link at `path`), or nothing when it cannot be read or
// is larger than `max_bytes`.
std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes);

}  // namespace lanrelay
