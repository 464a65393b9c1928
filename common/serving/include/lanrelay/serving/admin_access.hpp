#pragma once

// The access policy: every rule about who may do what over a daemon's HTTP listeners, in one type
// with one decision function per request class. The request handlers of lanrelayd and
// proxyhelperd ask it and nothing else; the transport (server, listener) decides nothing about
// access. A new endpoint gets its rule by naming its request class.
//
//   content      (items, /activeupdate/ files, /-/healthz, /-/catalog, /-/pieces, PAC and WPAD):
//                everyone. Agents must always reach them.
//   monitoring   (/, /-/status, /-/metrics, /-/stats, /-/mirror, GET /-/log-level): clients on
//                loopback, or in [admin] read_networks. Nobody else: monitoring shows client
//                addresses, upstream URLs and routes, so it is off by default for the LAN.
//   admin        (PUT /-/log-level, and whatever changes state later): the monitoring rule; then
//                the channel: HTTPS, or loopback (checked before the token, so that a token is
//                never accepted, nor compared, after it crossed the LAN in clear); then
//                `Authorization: Bearer <[admin] token>`. Without a configured token every admin
//                request is refused with 403; a missing or wrong token gets 401 with
//                `WWW-Authenticate: Bearer`.
//   mirror sync  (POST /-/mirror/sync[/<source>]): the admin rule; from another host only over
//                HTTPS (the rule the content server used to repeat before running a sync).
//
// The token is compared in constant time (SHA-256 of both sides, then CRYPTO_memcmp), so neither
// its content nor its length leaks through timing. Item downloads and /-/healthz, /-/catalog are
// not covered: agents must always reach them.
//
// Thread safety: immutable after construction; check() may run on any thread.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/network_list.hpp"
#include "lanrelay/base/sha256.hpp"
#include "lanrelay/serving/settings.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/status.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanrelay {

enum class endpoint_access { read, admin };

// Who sent a request, and how: what every decision looks at besides the Authorization field.
struct request_origin {
  std::optional<boost::asio::ip::address> client;  // the peer; nullopt: unknown (never passes)
  bool secure = false;                              // the request came over HTTPS
};

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

  // One decision per request class (the table at the top). `origin.client` is matched as IPv4
  // when IPv4-mapped; `authorization` is the request's Authorization field.
  access_decision content(const request_origin& origin) const;
  access_decision monitoring(const request_origin& origin) const;
  access_decision admin(const request_origin& origin, std::string_view authorization) const;
  access_decision mirror_sync(const request_origin& origin, std::string_view authorization) const;

  // The monitoring (read) or admin rule by level, for callers that carry the level as data (the
  // fuzz target). `client`: nullopt when unknown, which never passes.
  access_decision check(endpoint_access access, const std::optional<boost::asio::ip::address>& client,
                        bool secure, std::string_view authorization) const;

  bool token_configured() const noexcept { return token_digest_.has_value(); }

 private:
  std::optional<sha256_digest> token_digest_;
  network_list read_networks_;  // base/network_list.hpp: the one parser of IP networks
};

}  // namespace lanrelay
