#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <net/if.h>
#include <poll.h>

#include <array>

namespace lanrelay {
namespace {

namespace net = boost::asio;

bool readable(net::ip::udp::socket& s) {
  pollfd p{s.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 2000) == 1;
}

TEST(datagram, receive_reports_source_and_arrival_interface) {
  net::io_context ioc;
  net::ip::udp::socket rx(ioc, net::ip::udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  ASSERT_FALSE(enable_arrival_interface(rx));
  net::ip::udp::socket tx(ioc, net::ip::udp::endpoint(net::ip::make_address("127.0.0.1"), 0));

  const std::array<std::byte, 3> payload{std::byte{1}, std::byte{2}, std::byte{3}};
  ASSERT_FALSE(send_datagram(tx, payload, rx.local_endpoint(), ::if_nametoindex("lo")));
  ASSERT_TRUE(readable(rx));

  std::array<std::byte, 2> small{};
  received_datagram got;
  ASSERT_FALSE(receive_datagram(rx, small, got));
  EXPECT_EQ(got.source, tx.local_endpoint());
  EXPECT_EQ(got.interface_index, ::if_nametoindex("lo"));
  EXPECT_TRUE(got.truncated);
  EXPECT_EQ(receive_datagram(rx, small, got), net::error::would_block);
}

TEST(datagram, ipv6_arrival_interface) {
  net::io_context ioc;
  boost::system::error_code ec;
  net::ip::udp::socket rx(ioc);
  rx.open(net::ip::udp::v6(), ec);
  if (!ec) {
    rx.bind(net::ip::udp::endpoint(net::ip::make_address("::1"), 0), ec);
  }
  if (ec) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  ASSERT_FALSE(enable_arrival_interface(rx));
  net::ip::udp::socket tx(ioc, net::ip::udp::endpoint(net::ip::make_address("::1"), 0));
  const std::array<std::byte, 1> payload{std::byte{7}};
  ASSERT_FALSE(send_datagram(tx, payload, rx.local_endpoint(), 0));
  ASSERT_TRUE(readable(rx));
  std::array<std::byte, 16> buffer{};
  received_datagram got;
  ASSERT_FALSE(receive_datagram(rx, buffer, got));
  EXPECT_EQ(got.size, 1u);
  EXPECT_FALSE(got.truncated);
  EXPECT_EQ(got.interface_index, ::if_nametoindex("lo"));
}

}  // namespace
}  // namespace lanrelay
