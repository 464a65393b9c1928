#pragma once

// Who may use a daemon's monitoring and admin endpoints: the one decision the request handlers of
// lanrelayd and proxyhelperd ask for every such endpoint, so that a new endpoint gets it by
// declaring its access level.
//
//   read  (/, /-/status, /-/metrics, /-/stats, /-/mirror, GET /-/log-level): clients on loopback,
//         or in [admin] read_networks. Nobody else: monitoring shows client addresses, upstream
//         URLs and routes, so it is off by default for the LAN.
//   admin (PUT /-/log-level, POST /-/mirror/sync, and whatever changes state later): the read
//         rule; then the channel: HTTPS, or loopback (checked before the token, so that a token
//         is never accepted, nor compared, after it crossed the LAN in clear); then
//         `Authorization: Bearer <[admin] token>`. Without a configured token every admin request
//         is refused with 403; a missing or wrong token gets 401 with `WWW-Authenticate: Bearer`.
//
// The token is compared in constant time (SHA-256 of both sides, then CRYPTO_memcmp), so neither
// its content nor its length leaks through timing. Item downloads and /-/healthz, /-/catalog are
// not covered: agents must always reach them.
//
// Thread safety: immutable after construction; check() may run on any thread.

#include "lanrelay/common/shared_settings.hpp"
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

namespace lanrelay {

enum class endpoint_access { read, admin };

struct access_decision {
  bool allowed = false;
  boost::beast::http::status status = boost::beast::http::status::forbidden;  // when refused
  bool challenge = false;  // refused for want of a valid token: send WWW-Authenticate: Bearer
  std::string message;     // for the client, when refused
};

// "10.0.0.0/8", "fd00::/8", or one address: what read_networks entries may be.
bool is_valid_network(std::string_view text);

// The address as the peer is, without "::ffff:" (IPv4-mapped IPv6 is IPv4).
boost::asio::ip::address unmapped(const boost::asio::ip::address& address);

class access_policy {
 public:
  // Loopback reads, admin endpoints refused (no token): the handlers' default.
  access_policy() = default;

  // Parses read_networks (as validated by the configuration); invalid_argument on a bad entry.
  static result<access_policy> from_config(const admin_settings& settings);
  // For a daemon without admin endpoints (proxyhelperd): read_networks only, no token.
  static result<access_policy> from_networks(const std::vector<std::string>& read_networks);

  // `client`: the peer's address (IPv4-mapped IPv6 is matched as IPv4); nullopt when unknown,
  // which never passes. `secure`: the request came over HTTPS. `authorization`: the
  // Authorization field.
  access_decision check(endpoint_access access, const std::optional<boost::asio::ip::address>& client,
                        bool secure, std::string_view authorization) const;

  bool token_configured() const noexcept { return token_digest_.has_value(); }

 private:
  std::optional<sha256_digest> token_digest_;
  std::vector<boost::asio::ip::network_v4> networks_v4_;
  std::vector<boost::asio::ip::network_v6> networks_v6_;
};

}  // namespace lanrelay
