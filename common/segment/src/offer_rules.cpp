#include "lanrelay/segment/offer_rules.hpp"

#include <boost/url/parse.hpp>

namespace lanrelay::discovery {

boost::asio::ip::address without_zone(boost::asio::ip::address address) {
  if (address.is_v6()) {
    auto v6 = address.to_v6();
    v6.scope_id(0);
    return v6;
  }
  return address;
}

bool url_names(std::string_view url, const boost::asio::ip::address& sender) {
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return false;
  }
  const auto host = without_zone(sender);
  switch (parsed->host_type()) {
    case boost::urls::host_type::ipv4:
      return host.is_v4() && host.to_v4().to_bytes() == parsed->host_ipv4_address().to_bytes();
    case boost::urls::host_type::ipv6:
      return host.is_v6() && host.to_v6().to_bytes() == parsed->host_ipv6_address().to_bytes();
    default:
      return false;
  }
}

bool answers(const offer& o, item_kind kind, std::string_view name, std::string_view version,
             const std::optional<sha256_digest>& sha256) {
  return o.kind == kind && o.name == name && version_satisfies(kind, o.version, version) &&
         (!sha256 || *sha256 == o.sha256);
}

}  // namespace lanrelay::discovery
