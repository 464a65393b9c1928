// The test network itself: broadcast reaches every host of a segment, block_broadcast() stops it
// while unicast still flows. Every other segment test relies on both.

#include "segment.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lanrelay::test {
namespace {

struct fd_guard {
  int fd;
  ~fd_guard() { ::close(fd); }
};

sockaddr_in endpoint(const std::string& address, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  return addr;
}

bool receives(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) {
    return false;
  }
  char buffer[64];
  return ::recv(fd, buffer, sizeof buffer, 0) > 0;
}

// Sends one datagram every 200 ms until `rx` receives one, for at most 30 s: a bridge port that
// is still coming up, or a busy machine, loses or delays the first ones, which says nothing about
// whether the path works.
bool arrives(int tx, const sockaddr_in& to, int rx) {
  for (int attempt = 0; attempt < 150; ++attempt) {
    if (::sendto(tx, "q", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 1) {
      return false;
    }
    if (receives(rx, 200)) {
      return true;
    }
  }
  return false;
}

class segment_harness : public testing::Test {
 protected:
  void SetUp() override {
    if (!segment::supported()) {
      GTEST_SKIP() << "segment tests need root, iproute2 and nftables";
    }
  }
};

TEST_F(segment_harness, broadcast_reaches_hosts_until_blocked) {
  segment lan;
  const auto& listener = lan.add_host("listener");
  const auto& sender = lan.add_host("sender");

  fd_guard rx{socket_in_netns(listener.netns, AF_INET, SOCK_DGRAM)};
  const auto any = endpoint("0.0.0.0", 4126);
  ASSERT_EQ(::bind(rx.fd, reinterpret_cast<const sockaddr*>(&any), sizeof any), 0);

  fd_guard tx{socket_in_netns(sender.netns, AF_INET, SOCK_DGRAM)};
  const int on = 1;
  ASSERT_EQ(::setsockopt(tx.fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on), 0);
  const auto broadcast = endpoint(lan.broadcast_address(), 4126);
  const auto unicast = endpoint(listener.address, 4126);

  EXPECT_TRUE(arrives(tx.fd, broadcast, rx.fd)) << "directed broadcast did not cross the bridge";

  lan.block_broadcast();
  while (receives(rx.fd, 0)) {
  }
  // Unicast first: once one has passed, the path is up, so a broadcast lost now was blocked.
  EXPECT_TRUE(arrives(tx.fd, unicast, rx.fd)) << "unicast must still pass";
  while (receives(rx.fd, 300)) {
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::sendto(tx.fd, "q", 1, 0, reinterpret_cast<const sockaddr*>(&broadcast), sizeof broadcast), 1);
  }
  EXPECT_FALSE(receives(rx.fd, 1000)) << "broadcast passed a blocking switch";
}

TEST_F(segment_harness, namespaces_are_removed_with_the_segment) {
  std::string netns;
  {
    segment lan(78);
    netns = lan.add_host("only").netns;
    EXPECT_TRUE(std::filesystem::exists("/var/run/netns/" + netns));
  }
  EXPECT_FALSE(std::filesystem::exists("/var/run/netns/" + netns));
}

}  // namespace
}  // namespace lanrelay::test
