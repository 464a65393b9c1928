#include "lanrelay/agent/agent_config.hpp"
#include "lanrelay/agent/discovery_sources.hpp"
#include "lanrelay/agent/dns_sd.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

namespace lanrelay::agent {
namespace {

namespace ip = boost::asio::ip;

TEST(agent_config, reads_the_address_plan_and_dns_sd_settings) {
  const auto loaded = parse_agent_config(R"([discovery]
dns_sd = true
dns_server = "10.0.0.2:5353"
resolver_timeout = "2s"

[[discovery.site]]
networks = ["10.1.0.0/16", "10.2.0.0/16"]
relays = ["relay1.example", "10.1.0.5:4126"]

[[discovery.site]]
networks = ["0.0.0.0/0"]
relays = ["[fd00::5]:4126"]
)",
                                         "agent.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.front().to_string();
  const auto& d = loaded.config.discovery;
  EXPECT_TRUE(d.segment);
  EXPECT_TRUE(d.dns_sd);
  EXPECT_EQ(d.dns_server, "10.0.0.2:5353");
  EXPECT_EQ(d.resolver_timeout, std::chrono::seconds(2));
  ASSERT_EQ(d.sites.size(), 2u);
  EXPECT_EQ(d.sites[0].relays[1], "10.1.0.5:4126");
}

TEST(agent_config, refuses_a_site_with_a_bad_network_or_no_relays) {
  const auto bad = parse_agent_config("[[discovery.site]]\nnetworks = [\"10.1.0.0/99\"]\n"
                                      "relays = [\"r\"]\n",
                                      "agent.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.diagnostics.front().to_string().find("agent.toml:2"), std::string::npos)
      << bad.diagnostics.front().to_string();
  EXPECT_FALSE(parse_agent_config("[[discovery.site]]\nnetworks = [\"10.1.0.0/16\"]\n", "a").ok());
  EXPECT_TRUE(parse_agent_config("", "a").ok());
  EXPECT_FALSE(parse_agent_config("", "a").config.discovery.dns_sd);  // off unless configured
}

TEST(address_plan, the_first_site_holding_an_own_address_wins) {
  const std::vector<discovery_site> sites{{{"10.1.0.0/16"}, {"a"}},
                                          {{"10.0.0.0/8"}, {"b"}},
                                          {{"10.1.2.0/24"}, {"c"}}};
  const auto* site = match_site(sites, {ip::make_address("192.168.1.2"), ip::make_address("10.1.2.3")});
  ASSERT_NE(site, nullptr);
  EXPECT_EQ(site->relays.front(), "a");
  EXPECT_EQ(match_site(sites, {ip::make_address("10.9.0.1")})->relays.front(), "b");
  EXPECT_EQ(match_site(sites, {ip::make_address("172.16.0.1")}), nullptr);
}

TEST(address_plan, global_ipv6_addresses_of_the_machine_match_an_ipv6_site) {
  network_interface eth0;
  eth0.name = "eth0";
  eth0.index = 2;
  eth0.ipv4.push_back(ipv4_binding{ip::make_network_v4("192.168.7.2/24")});
  eth0.ipv6.push_back(ipv6_binding{ip::make_network_v6("2001:db8:20:1::15/64")});
  eth0.ipv6.push_back(ipv6_binding{.network = ip::make_network_v6("2001:db8:99::1/64"),
                                   .tentative = true});
  eth0.ipv6.push_back(ipv6_binding{ip::make_network_v6("fe80::15/64")});
  network_interface lo;
  lo.name = "lo";
  lo.loopback = true;
  lo.ipv6.push_back(ipv6_binding{ip::make_network_v6("2001:db8:30::1/128")});

  const auto own = own_addresses({eth0, lo});
  EXPECT_NE(std::find(own.begin(), own.end(), ip::make_address("2001:db8:20:1::15")), own.end());
  // Not owned yet (duplicate address detection), and not an address the plan may match.
  EXPECT_EQ(std::find(own.begin(), own.end(), ip::make_address("2001:db8:99::1")), own.end());

  const std::vector<discovery_site> sites{{{"2001:db8:30::/48"}, {"loopback-only"}},
                                          {{"2001:db8:99::/48"}, {"tentative-only"}},
                                          {{"2001:db8:20::/48"}, {"[2001:db8:20::5]"}},
                                          {{"192.168.7.0/24"}, {"ipv4"}}};
  const auto* site = match_site(sites, own);
  ASSERT_NE(site, nullptr);
  EXPECT_EQ(site->relays.front(), "[2001:db8:20::5]");
}

TEST(address_plan, relay_names_with_and_without_ports) {
  EXPECT_EQ(parse_relay_name("10.1.0.5", 4126)->port, 4126);
  EXPECT_EQ(parse_relay_name("10.1.0.5:5000", 4126)->port, 5000);
  EXPECT_EQ(parse_relay_name("relay1.example", 4126)->host, "relay1.example");
  EXPECT_EQ(parse_relay_name("[fd00::5]:4000", 4126)->host, "fd00::5");
  EXPECT_EQ(parse_relay_name("[fd00::5]:4000", 4126)->port, 4000);
  EXPECT_EQ(parse_relay_name("fd00::5", 4126)->host, "fd00::5");
  EXPECT_FALSE(parse_relay_name("relay:0", 4126));
  EXPECT_FALSE(parse_relay_name("relay:99999", 4126));
  EXPECT_FALSE(parse_relay_name("[fd00::5", 4126));
  EXPECT_FALSE(parse_relay_name(":4126", 4126));
}

TEST(dns_sd, search_domains_come_from_the_last_search_or_domain_line) {
  char pattern[] = "/tmp/lanrelay-resolv.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  std::ofstream(dir / "resolv.conf") << "nameserver 10.0.0.2\ndomain old.example\n"
                                        "search Cloud.Example. corp.example # comment\n";
  EXPECT_EQ(search_domains(dir / "resolv.conf"),
            (std::vector<std::string>{"cloud.example", "corp.example"}));
  EXPECT_TRUE(search_domains(dir / "missing.conf").empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lanrelay::agent
