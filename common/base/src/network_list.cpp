#include "lanrelay/base/network_list.hpp"

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

ip::address unmapped(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

}  // namespace

bool network_list::is_valid(std::string_view entry) {
  return parse({std::string(entry)}).has_value();
}

result<network_list> network_list::parse(const std::vector<std::string>& entries) {
  network_list list;
  for (const auto& text : entries) {
    boost::system::error_code ec;
    if (text.find('/') == std::string::npos) {
      const auto address = unmapped(ip::make_address(text, ec));
      if (ec) {
        return boost::system::error_code(boost::system::errc::invalid_argument,
                                         boost::system::generic_category());
      }
      if (address.is_v4()) {
        list.v4_.emplace_back(address.to_v4(), 32);
      } else {
        list.v6_.emplace_back(address.to_v6(), 128);
      }
    } else if (auto v4 = ip::make_network_v4(text, ec); !ec) {
      list.v4_.push_back(v4);
    } else {
      ec.clear();
      auto v6 = ip::make_network_v6(text, ec);
      if (ec) {
        return boost::system::error_code(boost::system::errc::invalid_argument,
                                         boost::system::generic_category());
      }
      list.v6_.push_back(v6);
    }
  }
  return list;
}

bool network_list::contains(const ip::address& address) const {
  const auto a = unmapped(address);
  if (a.is_v4()) {
    const ip::network_v4 host{a.to_v4(), 32};
    for (const auto& n : v4_) {
      if (host == n.canonical() || host.is_subnet_of(n.canonical())) {
        return true;
      }
    }
    return false;
  }
  auto v6 = a.to_v6();
  v6.scope_id(0);
  const ip::network_v6 host{v6, 128};
  for (const auto& n : v6_) {
    if (host == n.canonical() || host.is_subnet_of(n.canonical())) {
      return true;
    }
  }
  return false;
}

}  // namespace lanrelay
