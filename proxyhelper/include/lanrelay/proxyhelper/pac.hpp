#pragma once

// The proxy auto-config script served at /proxy.pac and /wpad.dat: the same healthy proxies, in
// the same order, with the same bypass rules (proxy_protocol::bypass_matches) as the UDP
// answers. Pure function; bypass entries and URLs are validated by the codec's rules, whose
// character sets keep them safe inside JavaScript string literals.

#include "lanrelay/segment/proxy_codec.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::proxyhelper {

inline constexpr std::string_view pac_content_type = "application/x-ns-proxy-autoconfig";

// FindProxyForURL returns "PROXY a:p; PROXY b:q" with every proxy whose bypass list does not
// cover the host, best first, and "DIRECT" when there is none (no healthy proxy, or every one
// bypasses the host).
std::string make_pac(const std::vector<proxy_protocol::proxy_entry>& healthy);

}  // namespace lanrelay::proxyhelper
