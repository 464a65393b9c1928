#pragma once

// The service manager's end of the sd_notify protocol, for tests: a datagram socket at a path in
// a private temporary directory. Give the daemon under test environment() (NOTIFY_SOCKET=...),
// then wait for its messages (READY=1, RELOADING=1, WATCHDOG=1, STOPPING=1) with deadlines.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::test {

class notify_socket {
 public:
  notify_socket();  // throws std::runtime_error when the socket cannot be made
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;
  ~notify_socket();

  // "NOTIFY_SOCKET=<path>", for process::options::environment.
  std::string environment() const;

  // The next message (its assignments separated by newlines), or nullopt when none arrives
  // within `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout);

  // Reads messages until one has `assignment` (such as "READY=1") as one of its lines; returns
  // that message, or nullopt when `timeout` passes first. Every message read is kept in seen().
  std::optional<std::string> wait_for(std::string_view assignment,
                                      std::chrono::milliseconds timeout);

  const std::vector<std::string>& seen() const noexcept { return seen_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<std::string> seen_;
};

}  // namespace lanrelay::test
