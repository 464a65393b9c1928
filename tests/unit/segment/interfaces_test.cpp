#include "lanrelay/segment/interfaces.hpp"

#include <gtest/gtest.h>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

network_interface lan_interface() {
  network_interface nic;
  nic.name = "eth0";
  nic.index = 3;
  nic.ipv4.push_back({ip::make_network_v4("10.77.1.20/16"), ip::make_address_v4("10.77.255.255")});
  nic.ipv6_link_local.push_back(ip::make_address_v6("fe80::1%3"));
  return nic;
}

TEST(interfaces, on_link_ipv4) {
  const auto nic = lan_interface();
  EXPECT_TRUE(nic.is_on_link(ip::make_address("10.77.200.3")));
  EXPECT_TRUE(nic.is_on_link(ip::make_address("::ffff:10.77.0.9")));
  EXPECT_FALSE(nic.is_on_link(ip::make_address("10.78.0.1")));
  EXPECT_FALSE(nic.is_on_link(ip::make_address("192.168.1.1")));
}

TEST(interfaces, on_link_ipv6_only_link_local_on_this_interface) {
  const auto nic = lan_interface();
  ip::address_v6 same = ip::make_address_v6("fe80::99");
  same.scope_id(3);
  ip::address_v6 other = ip::make_address_v6("fe80::99");
  other.scope_id(4);
  EXPECT_TRUE(nic.is_on_link(same));
  EXPECT_FALSE(nic.is_on_link(other));
  EXPECT_FALSE(nic.is_on_link(ip::make_address("2001:db8::1")));
}

TEST(interfaces, segment_id_is_sorted_canonical_networks_without_loopback) {
  auto a = lan_interface();
  network_interface b;
  b.name = "eth1";
  b.ipv4.push_back({ip::make_network_v4("10.5.0.7/24"), std::nullopt});
  network_interface lo;
  lo.loopback = true;
  lo.ipv4.push_back({ip::make_network_v4("127.0.0.1/8"), std::nullopt});
  EXPECT_EQ(segment_id({a, b, lo}), "10.5.0.0/24,10.77.0.0/16");
  EXPECT_EQ(segment_id({lo}), "");
}

TEST(interfaces, loopback_is_listed) {
  const auto all = list_interfaces();
  const bool has_loopback = std::any_of(all.begin(), all.end(), [](const network_interface& n) {
    return n.loopback && !n.ipv4.empty();
  });
  EXPECT_TRUE(has_loopback);
}

}  // namespace
}  // namespace lanrelay
