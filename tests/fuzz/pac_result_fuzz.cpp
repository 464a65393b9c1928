// libFuzzer target for the PAC result parser (parse_pac_result in common/proxy_resolution/src/pac_script.cpp): the
// text FindProxyForURL returns, which a hostile PAC script chooses. Seeds:
// tests/fuzz/corpus/pac_result/.
//
// Beyond "never crash": there is always at least one route; there are no more routes than
// ';'-separated entries; a PROXY route's URL is http:// followed by the entry's argument, with no
// whitespace, '/' or '@' (so no userinfo or path can be smuggled into the proxy URL).

#include "lanrelay/proxy_resolution/pac_script.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

void require(bool condition) {
  if (!condition) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto routes = lanrelay::proxy_resolution::parse_pac_result(text);
  require(!routes.empty());
  require(routes.size() <= static_cast<std::size_t>(std::count(text.begin(), text.end(), ';')) + 1);
  for (const auto& route : routes) {
    require(route.text.find(';') == std::string::npos);
    if (route.type == lanrelay::proxy_resolution::pac_route::kind::proxy) {
      require(route.proxy_url.starts_with("http://"));
      const std::string_view host_port = std::string_view(route.proxy_url).substr(7);
      require(!host_port.empty());
      require(host_port.find_first_of(" \t/@") == std::string_view::npos);
    } else {
      require(route.proxy_url.empty());
    }
  }
  return 0;
}
