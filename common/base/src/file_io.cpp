#include "lanrelay/base/file_io.hpp"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace lanrelay {

boost::system::error_code last_errno() noexcept { return {errno, boost::system::system_category()}; }

void unique_fd::reset() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

unique_fd open_fd(const std::filesystem::path& path, int flags, ::mode_t mode) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return unique_fd(fd);
}

result<void> write_all(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    const ::ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_errno();
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

result<void> sync_fd(int fd) {
  if (::fsync(fd) != 0) {
    return last_errno();
  }
  return {};
}

result<void> sync_dir(const std::filesystem::path& dir) {
  const unique_fd fd = open_fd(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) {
    return last_errno();
  }
  return sync_fd(fd.get());
}

// Writes `text` to `tmp`, fsyncs it, renames it over `target` and fsyncs target's directory.
result<void> write_atomically(const std::filesystem::path& tmp, const std::filesystem::path& target, std::string_view text) {
  {
    const unique_fd fd = open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
    if (!fd) {
      return last_errno();
    }
    auto written = write_all(fd.get(), std::as_bytes(std::span(text.data(), text.size())));
    if (written) {
      written = sync_fd(fd.get());
    }
    if (!written) {
      ::unlink(tmp.c_str());
      return written.error();
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const auto ec = last_errno();
    ::unlink(tmp.c_str());
    return ec;
  }
  return sync_dir(target.parent_path());
}

std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes) {
  const unique_fd fd = open_fd(path, O_RDONLY | O_NOFOLLOW);
  if (!fd) {
    return std::nullopt;
  }
  std::string text;
  char buffer[65536];
  for (;;) {
    const ::ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return std::nullopt;
    }
    if (n == 0) {
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      return std::nullopt;
    }
  }
}

}  // namespace lanrelay
