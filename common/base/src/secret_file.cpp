#include "lanrelay/base/secret_file.hpp"

#include "lanrelay/base/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lanrelay {

std::optional<std::string> read_secret_file(const std::filesystem::path& path,
                                            std::size_t max_bytes, std::string& problem) {
  const std::string name = path.string();
  const unique_fd fd = open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  if (!fd) {
    problem = errno == ELOOP ? name + " is a symbolic link: name the file itself"
                             : "cannot open " + name + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct ::stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    problem = "cannot stat " + name + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    problem = name + " is not a regular file";
    return std::nullopt;
  }
  if (st.st_uid != ::geteuid()) {
    problem = name + " is owned by uid " + std::to_string(st.st_uid) +
              ", not by the user this runs as (uid " + std::to_string(::geteuid()) +
              "): chown it to the service user";
    return std::nullopt;
  }
  const auto mode = st.st_mode & 07777;
  if (mode != 0600 && mode != 0400) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    problem = name + " has mode " + octal +
              ": it holds a secret, so it must be 0600 or 0400 (chmod 600 " + name + ")";
    return std::nullopt;
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ::ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      problem = "cannot read " + name + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) {
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      problem = name + " is larger than " + std::to_string(max_bytes) + " bytes";
      return std::nullopt;
    }
  }
}

}  // namespace lanrelay
