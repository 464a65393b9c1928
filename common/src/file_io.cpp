#include "lanrelay/common/file_io.hpp"

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

}  // namespace lanrelay
