#include "process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace lanrelay::test {

process::process(std::vector<std::string> argv, const options& opts) {
  if (argv.empty()) {
    throw std::invalid_argument("process: empty argv");
  }
  int netns_fd = -1;
  if (!opts.netns.empty()) {
    const std::string path = "/var/run/netns/" + opts.netns;
    netns_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      throw std::runtime_error("process: cannot open " + path + ": " + std::strerror(errno));
    }
  }
  const std::string output = opts.output.empty() ? "/dev/null" : opts.output.string();
  std::vector<char*> args;
  for (auto& a : argv) {
    args.push_back(a.data());
  }
  args.push_back(nullptr);
  std::vector<std::string> env_text = opts.environment;
  for (char** e = environ; *e != nullptr; ++e) {
    env_text.emplace_back(*e);
  }
  std::vector<char*> env;
  for (auto& e : env_text) {
    env.push_back(e.data());
  }
  env.push_back(nullptr);

  pid_ = ::fork();
  if (pid_ < 0) {
    throw std::runtime_error(std::string("process: fork failed: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec.
    ::setpgid(0, 0);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
      ::_exit(126);
    }
    const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || in < 0) {
      ::_exit(126);
    }
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::execve(args[0], args.data(), env.data());
    ::_exit(127);
  }
  if (netns_fd >= 0) {
    ::close(netns_fd);
  }
}

process::process(process&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

process& process::operator=(process&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

process::~process() { kill(); }

std::optional<int> process::wait_for(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return std::nullopt;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void process::signal(int sig) const {
  if (pid_ > 0) {
    ::kill(pid_, sig);
  }
}

void process::kill() {
  if (pid_ > 0) {
    // The whole process group: servers such as nginx leave workers behind otherwise.
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace lanrelay::test
