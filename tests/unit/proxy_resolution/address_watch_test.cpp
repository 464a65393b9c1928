// Address changes come from the kernel only: a netlink datagram from another process (port id
// not 0) is dropped and counted, never taken as a change of the machine's addresses.

#include "lanrelay/proxy_resolution/address_watch.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

namespace lanrelay::proxy_resolution {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;

// One RTM_NEWADDR message, as the kernel would send it (the payload does not matter here).
std::array<std::byte, NLMSG_SPACE(sizeof(ifaddrmsg))> new_address_message() {
  std::array<std::byte, NLMSG_SPACE(sizeof(ifaddrmsg))> out{};
  nlmsghdr header{};
  header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  header.nlmsg_type = RTM_NEWADDR;
  std::memcpy(out.data(), &header, sizeof header);
  return out;
}

sockaddr_nl from(std::uint32_t port_id) {
  sockaddr_nl sender{};
  sender.nl_family = AF_NETLINK;
  sender.nl_pid = port_id;
  return sender;
}

TEST(address_watch, counts_changes_from_the_kernel_only) {
  const auto message = new_address_message();
  EXPECT_EQ(count_address_changes(message, from(0)), 1u);
  EXPECT_EQ(count_address_changes(message, from(4242)), 0u);
  EXPECT_EQ(count_address_changes(std::span<const std::byte>(message).first(8), from(0)), 0u);
  sockaddr_nl not_netlink = from(0);
  not_netlink.nl_family = AF_INET;
  EXPECT_EQ(count_address_changes(message, not_netlink), 0u);
}

// A process on the machine sends a forged RTM_NEWADDR straight to the watch's socket: it is
// dropped (counted), and wait() goes on waiting for the kernel.
TEST(address_watch, a_forged_change_from_a_process_is_dropped) {
  net::io_context ioc;
  address_watch watch(ioc.get_executor());
  if (!watch.ok()) {
    GTEST_SKIP() << "no netlink here: " << watch.open_error().message();
  }
  const int forger = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  ASSERT_GE(forger, 0);
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  to.nl_pid = watch.port_id();
  ASSERT_NE(to.nl_pid, 0u);
  const auto message = new_address_message();
  if (::sendto(forger, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
               sizeof to) < 0) {
    const int error = errno;
    ::close(forger);
    GTEST_SKIP() << "cannot send to another netlink socket here (not root?): "
                 << std::strerror(error);
  }
  ::close(forger);

  bool forged_change_taken = false;
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        net::steady_timer poll(co_await net::this_coro::executor);
        const auto dropped = [&]() -> net::awaitable<void> {
          while (watch.dropped() == 0) {
            poll.expires_after(5ms);
            co_await poll.async_wait(net::use_awaitable);
          }
        };
        // Whichever ends first: wait() taking the forged message, or the drop being counted.
        const auto raced = co_await (watch.wait() || dropped());
        forged_change_taken = raced.index() == 0;
      },
      net::detached);
  ioc.run_for(60s);  // hang guard
  EXPECT_FALSE(forged_change_taken);
  EXPECT_EQ(watch.dropped(), 1u);
}

}  // namespace
}  // namespace lanrelay::proxy_resolution
