#pragma once

// Child processes for integration and segment tests: started with fork/exec (optionally inside a
// network namespace), output captured to a file, killed and reaped by the destructor so a failing
// test never leaves them running.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace lanrelay::test {

class process {
 public:
  struct options {
    std::string netns;                     // empty: the test's own namespace
    std::filesystem::path output;          // stdout and stderr; empty: /dev/null
    std::vector<std::string> environment;  // extra NAME=value entries
  };

  process() = default;
  process(std::vector<std::string> argv, const options& opts);
  process(process&& other) noexcept;
  process& operator=(process&& other) noexcept;
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process();

  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }

  // Waits for exit; nullopt when it still runs after `timeout`. Returns the wait status.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  void signal(int sig) const;
  // SIGKILL to the process and its process group (its own children), and reap.
  void kill();

 private:
  pid_t pid_ = -1;
};

// Reads a whole file (a process's output), empty when missing.
std::string read_file(const std::filesystem::path& file);

// Waits until `predicate` holds, checking every 20 ms; false when `timeout` passes first.
template <typename Predicate>
bool eventually(std::chrono::milliseconds timeout, Predicate&& predicate);

}  // namespace lanrelay::test

#include <thread>

template <typename Predicate>
bool lanrelay::test::eventually(std::chrono::milliseconds timeout, Predicate&& predicate) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}
