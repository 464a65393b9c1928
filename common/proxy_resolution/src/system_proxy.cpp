#include "lanrelay/base/text_format.hpp"
#include "lanrelay/proxy_resolution/system_proxy.hpp"

#include <boost/asio/ip/network_v4.hpp>

#include <algorithm>
#include <cstdlib>

namespace lanrelay::proxy_resolution {
namespace {

std::optional<std::string> variable(const char* lower, const char* upper) {
  for (const char* name : {lower, upper}) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') {
      return std::string(value);
    }
  }
  return std::nullopt;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::uint16_t default_port(boost::urls::url_view url) {
  if (url.has_port()) {
    return url.port_number();
  }
  return url.scheme_id() == boost::urls::scheme::https ? 443 : 80;
}

}  // namespace

system_proxy_settings system_proxy_settings::from_environment() {
  system_proxy_settings s;
  s.http_proxy = variable("http_proxy", "HTTP_PROXY");
  s.https_proxy = variable("https_proxy", "HTTPS_PROXY");
  if (const auto list = variable("no_proxy", "NO_PROXY")) {
    std::string_view rest = *list;
    while (!rest.empty()) {
      const auto comma = std::min(rest.find(','), rest.size());
      const auto entry = trim(rest.substr(0, comma));
      if (!entry.empty()) {
        s.no_proxy.emplace_back(entry);
      }
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return s;
}

bool no_proxy_matches(const std::vector<std::string>& no_proxy, std::string_view host,
                      std::uint16_t port) {
  const std::string name = to_lower(host);
  for (const auto& raw : no_proxy) {
    std::string entry = to_lower(raw);
    if (entry == "*") {
      return true;
    }
    // "host:port", but not an IPv6 literal's colons.
    if (const auto colon = entry.rfind(':');
        colon != std::string::npos && entry.find(':') == colon && entry.find('/') == std::string::npos) {
      if (entry.substr(colon + 1) != std::to_string(port)) {
        continue;
      }
      entry.resize(colon);
    }
    if (entry.starts_with("[") && entry.ends_with("]")) {
      entry = entry.substr(1, entry.size() - 2);
    }
    if (entry.find('/') != std::string::npos) {
      boost::system::error_code network_ec;
      boost::system::error_code address_ec;
      const auto network = boost::asio::ip::make_network_v4(entry, network_ec);
      const auto address = boost::asio::ip::make_address_v4(name, address_ec);
      if (!network_ec && !address_ec && (address.to_uint() & network.netmask().to_uint()) ==
                     (network.network().to_uint() & network.netmask().to_uint())) {
        return true;
      }
      continue;
    }
    if (entry.starts_with(".")) {
      entry.erase(0, 1);
    }
    if (!entry.empty() && (name == entry || (name.size() > entry.size() &&
                                             name.ends_with(entry) &&
                                             name[name.size() - entry.size() - 1] == '.'))) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> environment_proxy_for(const system_proxy_settings& settings,
                                                 boost::urls::url_view target) {
  const bool https = target.scheme_id() == boost::urls::scheme::https;
  const auto& value = https ? settings.https_proxy : settings.http_proxy;
  if (!value) {
    return std::nullopt;
  }
  if (no_proxy_matches(settings.no_proxy, target.host_address(), default_port(target))) {
    return std::nullopt;
  }
  std::string proxy = *value;
  if (proxy.find("://") == std::string::npos) {
    proxy = "http://" + proxy;
  }
  return proxy;
}

}  // namespace lanrelay::proxy_resolution
