#include "lanrelay/segment/interfaces.hpp"

#include <boost/url/parse.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

ip::address_v4 to_v4(const sockaddr* sa) {
  const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  return ip::address_v4(ntohl(in->sin_addr.s_addr));
}

ip::address_v6 to_v6(const sockaddr* sa) {
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  ip::address_v6::bytes_type bytes;
  std::copy_n(in6->sin6_addr.s6_addr, bytes.size(), bytes.begin());
  return ip::address_v6(bytes, in6->sin6_scope_id);
}

unsigned short prefix_length(const sockaddr* mask) {
  if (mask == nullptr) {
    return 128;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(mask);
  unsigned short bits = 0;
  for (const auto byte : in6->sin6_addr.s6_addr) {
    bits += static_cast<unsigned short>(std::popcount(static_cast<unsigned>(byte)));
  }
  return bits;
}

// IFA_F_* flags of the kernel's IPv6 addresses, by (interface index, address), from
// /proc/net/if_inet6 ("<32 hex digits> <index> <prefix> <scope> <flags> <name>", all hex).
// Empty when the file cannot be read (then every address counts as usable).
using address_flags = std::map<std::pair<unsigned, ip::address_v6::bytes_type>, unsigned>;

constexpr unsigned ifa_f_temporary = 0x01;
constexpr unsigned ifa_f_dadfailed = 0x08;
constexpr unsigned ifa_f_deprecated = 0x20;
constexpr unsigned ifa_f_tentative = 0x40;

address_flags read_address_flags() {
  address_flags out;
  std::ifstream in("/proc/net/if_inet6");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string hex;
    unsigned index = 0;
    unsigned prefix = 0;
    unsigned scope = 0;
    unsigned flags = 0;
    if (!(fields >> hex >> std::hex >> index >> prefix >> scope >> flags) || hex.size() != 32) {
      continue;
    }
    ip::address_v6::bytes_type bytes{};
    bool valid = true;
    for (std::size_t i = 0; i < bytes.size() && valid; ++i) {
      unsigned value = 0;
      valid = std::sscanf(hex.c_str() + 2 * i, "%2x", &value) == 1;
      bytes[i] = static_cast<unsigned char>(value);
    }
    if (valid) {
      out[{index, bytes}] = flags;
    }
  }
  return out;
}

bool is_routable(const ipv6_binding& b) {
  const auto a = b.network.address();
  return !b.tentative && !a.is_link_local() && !a.is_loopback() && !a.is_unspecified() &&
         !a.is_multicast() && !a.is_v4_mapped() && !a.is_site_local();
}

bool prefix_holds(const ip::network_v6& network, const ip::address_v6& peer) {
  const auto net = network.address().to_bytes();
  const auto bytes = peer.to_bytes();
  const unsigned length = network.prefix_length();
  for (unsigned bit = 0; bit < length; ++bit) {
    const unsigned mask = 0x80u >> (bit % 8);
    if ((net[bit / 8] & mask) != (bytes[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool network_interface::is_on_link(const ip::address& peer) const {
  if (peer.is_v4() || (peer.is_v6() && peer.to_v6().is_v4_mapped())) {
    const auto v4 = peer.is_v4() ? peer.to_v4() : ip::make_address_v4(ip::v4_mapped, peer.to_v6());
    return std::any_of(ipv4.begin(), ipv4.end(), [&](const ipv4_binding& b) {
      const auto net = b.network.canonical();
      return (v4.to_uint() & net.netmask().to_uint()) == net.address().to_uint();
    });
  }
  const auto v6 = peer.to_v6();
  if (v6.is_link_local()) {
    return v6.scope_id() == 0 || v6.scope_id() == index;
  }
  return std::any_of(ipv6.begin(), ipv6.end(), [&](const ipv6_binding& b) {
    return !b.network.address().is_link_local() && b.network.prefix_length() > 0 &&
           prefix_holds(b.network, v6);
  });
}

std::optional<ip::address_v6> offered_ipv6_address(const network_interface& arrival,
                                                   const ip::address& querier) {
  const ipv6_binding* chosen = nullptr;
  int chosen_rank = -1;
  const bool querier_routable = querier.is_v6() && !querier.to_v6().is_link_local();
  for (const auto& b : arrival.ipv6) {
    if (!is_routable(b)) {
      continue;
    }
    // Higher is better: the querier's own prefix, then a stable address, then the rest.
    int rank = 0;
    if (!b.deprecated && !b.temporary) {
      rank += 1;
    }
    if (querier_routable && prefix_holds(b.network, querier.to_v6())) {
      rank += 2;
    }
    if (rank > chosen_rank) {
      chosen = &b;
      chosen_rank = rank;
    }
  }
  if (chosen != nullptr) {
    return chosen->network.address();
  }
  const ipv6_binding* link_local = nullptr;
  for (const auto& b : arrival.ipv6) {
    if (b.network.address().is_link_local() && (link_local == nullptr || link_local->tentative)) {
      link_local = &b;
    }
  }
  if (link_local != nullptr) {
    auto address = link_local->network.address();
    address.scope_id(arrival.index);
    return address;
  }
  if (!arrival.ipv6_link_local.empty()) {
    return arrival.ipv6_link_local.front();
  }
  return std::nullopt;
}

ip::address answer_source(const network_interface* arrival, const ip::address& querier) {
  if (arrival == nullptr || !querier.is_v6() || querier.to_v6().is_v4_mapped()) {
    return {};
  }
  auto address = offered_ipv6_address(*arrival, querier);
  if (!address) {
    return {};
  }
  address->scope_id(0);
  return *address;
}

ip::address with_arrival_zone(const ip::address& address, unsigned interface_index) {
  if (!address.is_v6() || !address.to_v6().is_link_local() || interface_index == 0) {
    return address;
  }
  auto scoped = address.to_v6();
  scoped.scope_id(interface_index);
  return scoped;
}

std::optional<ip::address> link_local_url_address(std::string_view url,
                                                  unsigned interface_index) {
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || parsed->host_type() != boost::urls::host_type::ipv6) {
    return std::nullopt;
  }
  const ip::address_v6 address(parsed->host_ipv6_address().to_bytes());
  if (!address.is_link_local()) {
    return std::nullopt;
  }
  return with_arrival_zone(address, interface_index);
}

std::vector<network_interface> list_interfaces() {
  ifaddrs* raw = nullptr;
  if (::getifaddrs(&raw) != 0) {
    return {};
  }
  const std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> list(raw, &::freeifaddrs);
  std::optional<address_flags> flags;

  std::map<std::string, network_interface> by_name;
  for (const ifaddrs* ifa = raw; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr || (ifa->ifa_flags & IFF_UP) == 0 ||
        (ifa->ifa_flags & IFF_RUNNING) == 0) {
      continue;
    }
    auto& nic = by_name[ifa->ifa_name];
    nic.name = ifa->ifa_name;
    nic.index = ::if_nametoindex(ifa->ifa_name);
    nic.loopback = (ifa->ifa_flags & IFF_LOOPBACK) != 0;
    nic.multicast = (ifa->ifa_flags & IFF_MULTICAST) != 0;
    if (ifa->ifa_addr->sa_family == AF_INET && ifa->ifa_netmask != nullptr) {
      const auto address = to_v4(ifa->ifa_addr);
      const auto mask = to_v4(ifa->ifa_netmask).to_uint();
      const auto prefix = static_cast<unsigned short>(std::popcount(mask));
      ipv4_binding binding{ip::network_v4(address, prefix), std::nullopt};
      if ((ifa->ifa_flags & IFF_BROADCAST) != 0 && ifa->ifa_broadaddr != nullptr) {
        binding.broadcast = to_v4(ifa->ifa_broadaddr);
      }
      nic.ipv4.push_back(binding);
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      auto address = to_v6(ifa->ifa_addr);
      if (!address.is_link_local()) {
        address.scope_id(0);
      }
      if (!flags) {
        flags = read_address_flags();
      }
      const auto found = flags->find({nic.index, address.to_bytes()});
      const unsigned state = found == flags->end() ? 0 : found->second;
      nic.ipv6.push_back({ip::network_v6(address, prefix_length(ifa->ifa_netmask)),
                          (state & (ifa_f_tentative | ifa_f_dadfailed)) != 0,
                          (state & ifa_f_deprecated) != 0, (state & ifa_f_temporary) != 0});
      if (address.is_link_local()) {
        nic.ipv6_link_local.push_back(address);
      }
    }
  }

  std::vector<network_interface> out;
  for (auto& [name, nic] : by_name) {
    out.push_back(std::move(nic));
  }
  return out;
}

std::string segment_id(const std::vector<network_interface>& interfaces) {
  std::vector<std::string> networks;
  for (const auto& nic : interfaces) {
    if (nic.loopback) {
      continue;
    }
    for (const auto& binding : nic.ipv4) {
      networks.push_back(binding.network.canonical().to_string());
    }
  }
  std::sort(networks.begin(), networks.end());
  networks.erase(std::unique(networks.begin(), networks.end()), networks.end());
  std::string out;
  for (const auto& n : networks) {
    out += out.empty() ? "" : ",";
    out += n;
  }
  return out;
}

}  // namespace lanrelay
