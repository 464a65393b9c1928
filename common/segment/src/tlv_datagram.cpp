#include "lanrelay/segment/tlv_datagram.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>

namespace lanrelay::tlv {

bool is_http_url(std::string_view text, std::size_t max_length) noexcept {
  if (text.size() > max_length || !text.starts_with("http://") ||
      !std::all_of(text.begin(), text.end(), is_visible_ascii)) {
    return false;
  }
  const auto url = boost::urls::parse_absolute_uri(text);
  if (!url || url->scheme_id() != boost::urls::scheme::http || !url->has_authority() ||
      url->has_userinfo() || url->has_fragment() || url->encoded_host().empty()) {
    return false;
  }
  switch (url->host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
    case boost::urls::host_type::name:
      break;
    default:
      return false;
  }
  if (url->has_port()) {
    const auto port = url->port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || port.size() > 5 || ec != std::errc{} || end != port.data() + port.size() ||
        value == 0 || value > 65535) {
      return false;
    }
  }
  return true;
}

}  // namespace lanrelay::tlv
