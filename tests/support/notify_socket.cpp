#include "notify_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace lanrelay::test {

notify_socket::notify_socket() {
  char pattern[] = "/tmp/lanrelay-notify.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error(std::string("notify_socket: mkdtemp failed: ") + std::strerror(errno));
  }
  dir_ = pattern;
  path_ = dir_ / "notify";
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string text = path_.string();
  if (fd_ < 0 || text.size() >= sizeof addr.sun_path) {
    throw std::runtime_error("notify_socket: cannot create a unix datagram socket");
  }
  std::memcpy(addr.sun_path, text.c_str(), text.size() + 1);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd_);
    throw std::runtime_error("notify_socket: cannot bind " + text + ": " + error);
  }
}

notify_socket::~notify_socket() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string notify_socket::environment() const { return "NOTIFY_SOCKET=" + path_.string(); }

std::optional<std::string> notify_socket::next(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) {
    return std::nullopt;
  }
  char buffer[4096];
  const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n < 0) {
    return std::nullopt;
  }
  std::string message(buffer, static_cast<std::size_t>(n));
  seen_.push_back(message);
  return message;
}

std::optional<std::string> notify_socket::wait_for(std::string_view assignment,
                                                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    auto message = next(left);
    if (!message) {
      return std::nullopt;
    }
    std::string_view rest = *message;
    while (!rest.empty()) {
      const auto end = rest.find('\n');
      if (rest.substr(0, end) == assignment) {
        return message;
      }
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
  }
}

}  // namespace lanrelay::test
