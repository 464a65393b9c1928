#include "lanrelay/segment/interfaces.hpp"

#include <gtest/gtest.h>

#include <algorithm>

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

TEST(interfaces, on_link_ipv6_inside_the_interfaces_prefixes) {
  auto nic = lan_interface();
  nic.ipv6.push_back({ip::make_network_v6("fd00:77::20/64")});
  EXPECT_TRUE(nic.is_on_link(ip::make_address("fd00:77::99")));
  EXPECT_FALSE(nic.is_on_link(ip::make_address("fd00:78::99")));
  EXPECT_FALSE(nic.is_on_link(ip::make_address("2001:db8::1")));
}

// An interface as list_interfaces() reports it: every address, link-local ones scoped.
network_interface ipv6_interface(std::vector<ipv6_binding> routable) {
  network_interface nic;
  nic.name = "eth0";
  nic.index = 3;
  ip::address_v6 link_local = ip::make_address_v6("fe80::1");
  link_local.scope_id(3);
  nic.ipv6.push_back({ip::network_v6(link_local, 64)});
  nic.ipv6_link_local.push_back(link_local);
  nic.ipv6.insert(nic.ipv6.end(), routable.begin(), routable.end());
  return nic;
}

TEST(interfaces, offered_ipv6_address_is_link_local_without_a_routable_one) {
  const auto from = ip::make_address("fe80::99");
  const auto offered = offered_ipv6_address(ipv6_interface({}), from);
  ASSERT_TRUE(offered);
  EXPECT_EQ(offered->to_bytes(), ip::make_address_v6("fe80::1").to_bytes());
  EXPECT_EQ(offered->scope_id(), 3u);
  // A tentative ULA cannot be answered from yet.
  ipv6_binding tentative{ip::make_network_v6("fd00:77::20/64")};
  tentative.tentative = true;
  EXPECT_EQ(offered_ipv6_address(ipv6_interface({tentative}), from)->to_bytes(),
            ip::make_address_v6("fe80::1").to_bytes());
  EXPECT_FALSE(offered_ipv6_address(network_interface{}, from));
}

TEST(interfaces, offered_ipv6_address_prefers_a_routable_one_on_the_queriers_prefix) {
  ipv6_binding temporary{ip::make_network_v6("2001:db8:1::abcd/64")};
  temporary.temporary = true;
  const auto nic = ipv6_interface({temporary, {ip::make_network_v6("2001:db8:1::20/64")},
                                   {ip::make_network_v6("fd00:77::20/64")}});
  // From a link-local source: the first stable routable address, never the temporary one.
  EXPECT_EQ(offered_ipv6_address(nic, ip::make_address("fe80::99"))->to_string(), "2001:db8:1::20");
  // From a ULA source: the address on that prefix.
  const auto offered = offered_ipv6_address(nic, ip::make_address("fd00:77::99"));
  EXPECT_EQ(offered->to_string(), "fd00:77::20");
  EXPECT_EQ(offered->scope_id(), 0u);
  // Deprecated and temporary addresses only when nothing else is routable.
  ipv6_binding deprecated{ip::make_network_v6("fd00:77::21/64")};
  deprecated.deprecated = true;
  EXPECT_EQ(offered_ipv6_address(ipv6_interface({deprecated}), ip::make_address("fe80::99"))
                ->to_string(),
            "fd00:77::21");
}

TEST(interfaces, a_link_local_address_gets_the_zone_of_the_arrival_interface) {
  EXPECT_EQ(with_arrival_zone(ip::make_address("fe80::1"), 1).to_v6().scope_id(), 1u);
  // A zone already there is replaced: the arrival interface is the one that reaches the sender.
  EXPECT_EQ(with_arrival_zone(ip::address(ip::make_address_v6("fe80::1%9")), 1).to_v6().scope_id(), 1u);
  EXPECT_EQ(with_arrival_zone(ip::make_address("fe80::1"), 0).to_v6().scope_id(), 0u);
  EXPECT_EQ(with_arrival_zone(ip::make_address("fd00::1"), 1).to_v6().scope_id(), 0u);
  EXPECT_EQ(with_arrival_zone(ip::make_address("10.1.2.3"), 1).to_string(), "10.1.2.3");
}

TEST(interfaces, a_proxy_url_at_a_link_local_literal_is_reached_through_the_given_interface) {
  const auto scoped = link_local_url_address("http://[fe80::5]:3128", 3);
  ASSERT_TRUE(scoped);
  EXPECT_EQ(scoped->to_v6(), ip::make_address_v6("fe80::5%3"));
  EXPECT_EQ(scoped->to_v6().scope_id(), 3u);
  EXPECT_EQ(link_local_url_address("http://[fe80::5]:3128/", 0)->to_v6().scope_id(), 0u);
  EXPECT_FALSE(link_local_url_address("http://[fd00::5]:3128", 3));
  EXPECT_FALSE(link_local_url_address("http://10.1.2.3:3128", 3));
  EXPECT_FALSE(link_local_url_address("http://proxy.example:3128", 3));
  EXPECT_FALSE(link_local_url_address("not a url", 3));
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

TEST(interfaces, every_ipv6_address_is_listed_with_its_prefix) {
  const auto all = list_interfaces();
  const auto lo = std::find_if(all.begin(), all.end(),
                               [](const network_interface& n) { return n.loopback; });
  ASSERT_NE(lo, all.end());
  if (lo->ipv6.empty()) {
    GTEST_SKIP() << "IPv6 is disabled on loopback";
  }
  EXPECT_EQ(lo->ipv6.front().network.to_string(), "::1/128");
  EXPECT_FALSE(lo->ipv6.front().tentative);
  EXPECT_TRUE(lo->ipv6_link_local.empty());
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
