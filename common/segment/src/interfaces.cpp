#include "lanrelay/segment/interfaces.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <map>
#include <memory>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

ip::address_v4 to_v4(const sockaddr* sa) {
  const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  return ip::address_v4(ntohl(in->sin_addr.s_addr));
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
  return v6.is_link_local() && (v6.scope_id() == 0 || v6.scope_id() == index);
}

std::vector<network_interface> list_interfaces() {
  ifaddrs* raw = nullptr;
  if (::getifaddrs(&raw) != 0) {
    return {};
  }
  const std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> list(raw, &::freeifaddrs);

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
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr);
      ip::address_v6::bytes_type bytes;
      std::copy_n(in6->sin6_addr.s6_addr, bytes.size(), bytes.begin());
      ip::address_v6 address(bytes, in6->sin6_scope_id);
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
