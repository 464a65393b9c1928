// Opens N keep-alive connections to an HTTP server on loopback, sends one small request on each so
// the server holds them as idle keep-alive connections, then keeps them open until stdin closes or
// the time limit passes. Used by http_bench.sh to measure the server's memory with idle clients.
//
// Usage: idle_connections HOST PORT COUNT SECONDS
// Prints "open N" once every connection has its response, then waits.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int connect_to(const char* host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s HOST PORT COUNT SECONDS\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  if (std::strncmp(host, "127.", 4) != 0) {
    std::fprintf(stderr, "idle_connections: only loopback addresses (127.x) are allowed\n");
    return 2;
  }
  const int port = std::atoi(argv[2]);
  const int count = std::atoi(argv[3]);
  const int seconds = std::atoi(argv[4]);

  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);

  const std::string request = "GET /-/healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = connect_to(host, port);
    if (fd < 0 || ::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      std::fprintf(stderr, "idle_connections: connection %d failed: %s\n", i, std::strerror(errno));
      return 1;
    }
    fds.push_back(fd);
  }
  char buffer[4096];
  for (const int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1 || ::read(fd, buffer, sizeof buffer) <= 0) {
      std::fprintf(stderr, "idle_connections: no response on a connection\n");
      return 1;
    }
  }
  std::printf("open %d\n", count);
  std::fflush(stdout);

  pollfd in{STDIN_FILENO, POLLIN, 0};
  ::poll(&in, 1, seconds * 1000);
  for (const int fd : fds) {
    ::close(fd);
  }
  return 0;
}
