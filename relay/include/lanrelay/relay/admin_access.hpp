#pragma once

// Who may use the relay's monitoring and admin endpoints: the one decision the request handler
// asks for every such endpoint, so that a new endpoint gets it by declaring its access level.
//
//   read  (/, /-/status, /-/metrics, /-/stats, GET /-/log-level): clients in [admin]
//         read_networks, or anyone when the list is empty.
//   admin (PUT /-/log-level, and whatever changes state later: mirror sync, cache edits, reload):
//         the read rule, and `Authorization: Bearer <[admin] token>`. Without a configured token
//         every admin request is refused with 403; a missing or wrong token gets 401 with
//         `WWW-Authenticate: Bearer`.
//
// The token is compared in constant time (SHA-256 of both sides, then CRYPTO_memcmp), so neither
// its content nor its length leaks through timing. Item downloads and /-/healthz, /-/catalog are
// not covered: agents must always reach them.
//
// Thread safety: immutable after construction; check() may run on any thread.

#include "lanrelay/common/config.hpp"
#include "lanrelay/common/error.hpp"
#include "lanrelay/common/sha256.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/beast/http/status.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::relay {

enum class endpoint_access { read, admin };

struct access_decision {
  bool allowed = false;
  boost::beast::http::status status = boost::beast::http::status::forbidden;  // when refused
  bool challenge = false;  // refused for want of a valid token: send WWW-Authenticate: Bearer
  std::string message;     // for the client, when refused
};

class access_policy {
 public:
  // Everything allowed for reading, admin endpoints refused (no token): the handler's default.
  access_policy() = default;

  // Parses read_networks (as validated by the configuration); invalid_argument on a bad entry.
  static result<access_policy> from_config(const admin_settings& settings);

  // `client`: the peer's address (IPv4-mapped IPv6 is matched as IPv4); nullopt when unknown,
  // which only passes when no networks are listed. `authorization`: the Authorization field.
  access_decision check(endpoint_access access, const std::optional<boost::asio::ip::address>& client,
                        std::string_view authorization) const;

  bool token_configured() const noexcept { return token_digest_.has_value(); }

 private:
  std::optional<sha256_digest> token_digest_;
  std::vector<boost::asio::ip::network_v4> networks_v4_;
  std::vector<boost::asio::ip::network_v6> networks_v6_;
};

}  // namespace lanrelay::relay
