// The test network itself: broadcast reaches every host of a segment, block_broadcast() stops it
// while unicast still flows. Every other segment test relies on both.

#include "segment.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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

// Each datagram carries a tag, so a late copy of an earlier one (a busy machine delays them) is
// told apart from the one a step of the test waits for.
bool send_tagged(int tx, const sockaddr_in& to, const std::string& tag) {
  return ::sendto(tx, tag.data(), tag.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                  sizeof to) == static_cast<ssize_t>(tag.size());
}

// The next datagram within `timeout_ms`, or nullopt.
std::optional<std::string> next_datagram(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) {
    return std::nullopt;
  }
  char buffer[64];
  const auto n = ::recv(fd, buffer, sizeof buffer, 0);
  return n > 0 ? std::optional<std::string>(std::string(buffer, static_cast<std::size_t>(n)))
               : std::nullopt;
}

// Sends a datagram tagged `tag` every 200 ms until `rx` receives one with that tag, for at most
// 60 s: a bridge port that is still coming up, or a busy machine, loses or delays the first ones,
// which says nothing about whether the path works. Every other datagram received meanwhile goes
// to `others`.
bool arrives(int tx, const sockaddr_in& to, int rx, const std::string& tag,
             std::vector<std::string>* others = nullptr) {
  for (int attempt = 0; attempt < 300; ++attempt) {
    if (!send_tagged(tx, to, tag)) {
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        break;
      }
      const auto got = next_datagram(rx, static_cast<int>(left.count()));
      if (!got) {
        break;
      }
      if (*got == tag) {
        return true;
      }
      if (others != nullptr) {
        others->push_back(*got);
      }
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

  EXPECT_TRUE(arrives(tx.fd, broadcast, rx.fd, "before"))
      << "directed broadcast did not cross the bridge";

  lan.block_broadcast();
  // Events, not a quiet period: broadcasts tagged "blocked" go first, then unicast tagged
  // "marker" until one arrives. The bridge forwards a sender's frames in order, so by the time a
  // marker is received, any "blocked" broadcast that passed the switch has been received too.
  // Late copies of "before" (still queued on a busy machine) are ignored by their tag.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(send_tagged(tx.fd, broadcast, "blocked"));
  }
  std::vector<std::string> seen;
  EXPECT_TRUE(arrives(tx.fd, unicast, rx.fd, "marker", &seen)) << "unicast must still pass";
  while (const auto more = next_datagram(rx.fd, 0)) {
    seen.push_back(*more);
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "blocked"), 0)
      << "broadcast passed a blocking switch";
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
