#pragma once

// A loopback port that nothing is bound to right now (bound to port 0, read back, closed): for
// a server a test starts next, or for a port a connection must find closed. Another process may
// take it in between; that is the price of a port chosen before the server exists.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace lanrelay::test {

// `type`: SOCK_STREAM (TCP) or SOCK_DGRAM (UDP).
inline std::uint16_t free_port(int type = SOCK_STREAM) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace lanrelay::test
