#pragma once

// The machine's own proxy settings, step 1 of proxy resolution: the environment variables that
// curl, wget and most agents honour (https_proxy, http_proxy, no_proxy, and their upper-case
// forms, lower case first), and a configured PAC URL.

#include <boost/url/url_view.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::proxy_resolution {

struct system_proxy_settings {
  std::optional<std::string> http_proxy;   // for http:// targets
  std::optional<std::string> https_proxy;  // for https:// targets
  std::vector<std::string> no_proxy;       // entries of no_proxy, split at commas
  std::optional<std::string> pac_url;      // evaluated when no variable names a proxy

  // From the process environment. pac_url is not an environment convention; callers set it.
  static system_proxy_settings from_environment();
};

// Whether `no_proxy` exempts `host` (and `port`): "*" exempts everything; "example.com" and
// ".example.com" exempt example.com and its subdomains; an IPv4 address or prefix
// ("10.0.0.0/8") exempts literal addresses in it; "host:port" only that port. Case-insensitive.
bool no_proxy_matches(const std::vector<std::string>& no_proxy, std::string_view host,
                      std::uint16_t port);

// The proxy the environment names for `target` ("http://host:port"; a value without a scheme
// gets "http://"), or nullopt when none applies (not set, or exempt by no_proxy).
std::optional<std::string> environment_proxy_for(const system_proxy_settings& settings,
                                                 boost::urls::url_view target);

}  // namespace lanrelay::proxy_resolution
